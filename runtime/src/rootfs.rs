//! The container's root filesystem, built by its init process inside its own mount
//! namespace: the root bind-mounted (or an overlay of image layers), the spec's mounts,
//! Docker's device nodes, then pivot_root, masked and read-only paths.
//!
//! Every target is resolved inside the root (see `linux::fs`) and mounted on through its
//! descriptor. /dev/null is checked to be the real null device before it is bound over
//! masked paths (CVE-2025-31133).

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::{Mode, SFlag, fstat, major, makedev, minor, mknodat};
use nix::unistd::{Gid, Uid, fchownat};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, Mount};

use crate::linux::fs::{ensure_file_in_root, fd_path, mkdir_all_in_root, open_in_root};
use crate::linux::mount::mount_on;

/// Why building the root failed: the step and the system error.
#[derive(Debug, thiserror::Error)]
#[error("{step} {target}: {errno}")]
pub struct RootfsError {
    pub step: &'static str,
    pub target: String,
    pub errno: Errno,
}

fn err(step: &'static str, target: impl AsRef<Path>) -> impl FnOnce(Errno) -> RootfsError {
    let target = target.as_ref().display().to_string();
    move |errno| RootfsError { step, target, errno }
}

/// An overlay of read-only image layers under a writable upper directory.
#[derive(Debug, Clone)]
pub struct Overlay {
    /// Topmost first, as overlayfs lists them.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
    pub work: PathBuf,
}

/// A cgroup v1 hierarchy to show inside the container: its directory name under
/// /sys/fs/cgroup and the mount data that selects it ("memory", "cpu,cpuacct",
/// "none,name=systemd").
#[derive(Debug, Clone)]
pub struct CgroupV1Mount {
    pub name: String,
    pub data: String,
}

/// How /sys/fs/cgroup looks on this host, so the container gets the same shape.
#[derive(Debug, Clone)]
pub enum CgroupFs {
    V2,
    V1 {
        hierarchies: Vec<CgroupV1Mount>,
        unified: bool,
    },
}

impl CgroupFs {
    /// Reads the host's cgroup mounts from /proc/self/mountinfo.
    pub fn detect() -> CgroupFs {
        let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        Self::from_mountinfo(&text)
    }

    pub fn from_mountinfo(text: &str) -> CgroupFs {
        let mut hierarchies = Vec::new();
        let mut unified_at_root = false;
        let mut unified = false;
        for line in text.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let fields: Vec<&str> = left.split_whitespace().collect();
            let rest: Vec<&str> = right.split_whitespace().collect();
            if fields.len() < 5 || rest.len() < 3 {
                continue;
            }
            let mount_point = fields[4];
            match rest[0] {
                "cgroup2" => {
                    if mount_point == "/sys/fs/cgroup" {
                        unified_at_root = true;
                    } else if mount_point.starts_with("/sys/fs/cgroup/") {
                        unified = true;
                    }
                }
                "cgroup" if mount_point.starts_with("/sys/fs/cgroup/") => {
                    let name = mount_point.trim_start_matches("/sys/fs/cgroup/").to_string();
                    let data: Vec<&str> = rest[2]
                        .split(',')
                        .filter(|o| {
                            !matches!(
                                *o,
                                "rw" | "ro" | "xattr" | "clone_children" | "noprefix" | "cpuset_v2_mode"
                            )
                        })
                        .filter(|o| !o.starts_with("release_agent="))
                        .collect();
                    let data = if data.iter().all(|d| d.starts_with("name=")) {
                        format!("none,{}", data.join(","))
                    } else {
                        data.join(",")
                    };
                    if !hierarchies.iter().any(|h: &CgroupV1Mount| h.name == name) {
                        hierarchies.push(CgroupV1Mount { name, data });
                    }
                }
                _ => {}
            }
        }
        if unified_at_root || hierarchies.is_empty() {
            CgroupFs::V2
        } else {
            CgroupFs::V1 { hierarchies, unified }
        }
    }
}

/// What the init needs to build the root.
pub struct RootfsConfig<'a> {
    /// The root on the host: the bundle's rootfs, or where the overlay goes.
    pub rootfs: &'a Path,
    pub overlay: Option<&'a Overlay>,
    /// Relative bind-mount sources are relative to the bundle.
    pub bundle: &'a Path,
    pub mounts: &'a [Mount],
    pub devices: &'a [LinuxDevice],
    pub propagation: MsFlags,
    pub cgroup_fs: &'a CgroupFs,
    /// Make /dev/console a mount point for the console's pty.
    pub console: bool,
}

struct Options {
    flags: MsFlags,
    clear: MsFlags,
    propagation: MsFlags,
    data: Vec<String>,
    bind: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            flags: MsFlags::empty(),
            clear: MsFlags::empty(),
            propagation: MsFlags::empty(),
            data: Vec::new(),
            bind: false,
        }
    }
}

/// fstab-style options, as the OCI spec lists them.
fn parse_options(options: &[String]) -> Options {
    let mut o = Options::default();
    for opt in options {
        let (set, clear) = match opt.as_str() {
            "ro" => (MsFlags::MS_RDONLY, MsFlags::empty()),
            "rw" => (MsFlags::empty(), MsFlags::MS_RDONLY),
            "nosuid" => (MsFlags::MS_NOSUID, MsFlags::empty()),
            "suid" => (MsFlags::empty(), MsFlags::MS_NOSUID),
            "nodev" => (MsFlags::MS_NODEV, MsFlags::empty()),
            "dev" => (MsFlags::empty(), MsFlags::MS_NODEV),
            "noexec" => (MsFlags::MS_NOEXEC, MsFlags::empty()),
            "exec" => (MsFlags::empty(), MsFlags::MS_NOEXEC),
            "sync" => (MsFlags::MS_SYNCHRONOUS, MsFlags::empty()),
            "async" => (MsFlags::empty(), MsFlags::MS_SYNCHRONOUS),
            "dirsync" => (MsFlags::MS_DIRSYNC, MsFlags::empty()),
            "mand" => (MsFlags::MS_MANDLOCK, MsFlags::empty()),
            "nomand" => (MsFlags::empty(), MsFlags::MS_MANDLOCK),
            "atime" => (MsFlags::empty(), MsFlags::MS_NOATIME),
            "noatime" => (MsFlags::MS_NOATIME, MsFlags::empty()),
            "diratime" => (MsFlags::empty(), MsFlags::MS_NODIRATIME),
            "nodiratime" => (MsFlags::MS_NODIRATIME, MsFlags::empty()),
            "relatime" => (MsFlags::MS_RELATIME, MsFlags::empty()),
            "norelatime" => (MsFlags::empty(), MsFlags::MS_RELATIME),
            "strictatime" => (MsFlags::MS_STRICTATIME, MsFlags::empty()),
            "nostrictatime" => (MsFlags::empty(), MsFlags::MS_STRICTATIME),
            "remount" => (MsFlags::MS_REMOUNT, MsFlags::empty()),
            "bind" => {
                o.bind = true;
                (MsFlags::MS_BIND, MsFlags::empty())
            }
            "rbind" => {
                o.bind = true;
                (MsFlags::MS_BIND | MsFlags::MS_REC, MsFlags::empty())
            }
            "private" => {
                o.propagation = MsFlags::MS_PRIVATE;
                continue;
            }
            "rprivate" => {
                o.propagation = MsFlags::MS_PRIVATE | MsFlags::MS_REC;
                continue;
            }
            "shared" => {
                o.propagation = MsFlags::MS_SHARED;
                continue;
            }
            "rshared" => {
                o.propagation = MsFlags::MS_SHARED | MsFlags::MS_REC;
                continue;
            }
            "slave" => {
                o.propagation = MsFlags::MS_SLAVE;
                continue;
            }
            "rslave" => {
                o.propagation = MsFlags::MS_SLAVE | MsFlags::MS_REC;
                continue;
            }
            "unbindable" => {
                o.propagation = MsFlags::MS_UNBINDABLE;
                continue;
            }
            "runbindable" => {
                o.propagation = MsFlags::MS_UNBINDABLE | MsFlags::MS_REC;
                continue;
            }
            "tmpcopyup" => continue,
            other => {
                o.data.push(other.to_string());
                continue;
            }
        };
        o.flags.insert(set);
        o.flags.remove(clear);
        o.clear.insert(clear);
    }
    o
}

/// Flags a read-only remount must keep: the kernel refuses to drop locked ones.
fn kept_flags(fd: &OwnedFd) -> MsFlags {
    let Ok(st) = nix::sys::statvfs::fstatvfs(fd) else {
        return MsFlags::empty();
    };
    let f = st.flags();
    use nix::sys::statvfs::FsFlags;
    let mut out = MsFlags::empty();
    for (from, to) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
    ] {
        if f.contains(from) {
            out.insert(to);
        }
    }
    out
}

/// Builds the root and pivots into it. Runs in the init, in its new mount namespace.
pub fn prepare(cfg: &RootfsConfig) -> Result<(), RootfsError> {
    // Nothing done below may reach the host's mount table.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        cfg.propagation | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(err("making / private", "/"))?;

    match cfg.overlay {
        Some(o) => mount_overlay(o, cfg.rootfs)?,
        // pivot_root needs the root to be a mount point.
        None => mount(
            Some(cfg.rootfs),
            cfg.rootfs,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err("binding the root", cfg.rootfs))?,
    }
    let root = nix::fcntl::open(
        cfg.rootfs,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("opening the root", cfg.rootfs))?;

    let mut dev_is_tmpfs = false;
    for m in cfg.mounts {
        mount_one(root.as_fd(), m, cfg)?;
        if m.destination() == Path::new("/dev") && m.typ().as_deref() == Some("tmpfs") {
            dev_is_tmpfs = true;
        }
    }
    make_devices(root.as_fd(), cfg.devices, dev_is_tmpfs, cfg.console)?;
    pivot(&root, cfg.rootfs)
}

fn mount_overlay(o: &Overlay, target: &Path) -> Result<(), RootfsError> {
    std::fs::create_dir_all(target).map_err(|e| RootfsError {
        step: "creating the overlay mount point",
        target: target.display().to_string(),
        errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
    })?;
    let lower: Vec<String> = o.lower.iter().map(|p| p.display().to_string()).collect();
    let data = format!(
        "lowerdir={},upperdir={},workdir={}",
        lower.join(":"),
        o.upper.display(),
        o.work.display()
    );
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(data.as_str()),
    )
    .map_err(err("mounting the overlay", target))
}

fn mount_one(root: std::os::fd::BorrowedFd<'_>, m: &Mount, cfg: &RootfsConfig) -> Result<(), RootfsError> {
    let dest = m.destination();
    let options = parse_options(m.options().as_deref().unwrap_or(&[]));
    let typ = m.typ().as_deref().unwrap_or("none");
    let bind = options.bind || typ == "bind";
    let data = options.data.join(",");
    let data = (!data.is_empty()).then_some(data);

    if bind {
        let source = m.source().as_ref().ok_or(RootfsError {
            step: "bind mount without a source",
            target: dest.display().to_string(),
            errno: Errno::EINVAL,
        })?;
        let source = if source.is_absolute() {
            source.clone()
        } else {
            cfg.bundle.join(source)
        };
        // A source under another process's root (a playground node's, for `docker run -v`)
        // is resolved inside that root, so a symlink there cannot lead to the host's files;
        // the mount then takes the opened descriptor, which nothing can swap.
        let pinned = pinned_source(&source)?;
        let source = pinned.as_ref().map(fd_path).unwrap_or(source);
        let is_dir = std::fs::metadata(&source)
            .map(|m| m.is_dir())
            .map_err(|e| RootfsError {
                step: "reading the bind source",
                target: source.display().to_string(),
                errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::ENOENT)),
            })?;
        let target = if is_dir {
            mkdir_all_in_root(root, dest, 0o755)
        } else {
            ensure_file_in_root(root, dest)
        }
        .map_err(err("creating the mount point", dest))?;
        let bind_flags = MsFlags::MS_BIND | (options.flags & MsFlags::MS_REC);
        mount_on(Some(&source), &target, None, bind_flags, None).map_err(err("bind-mounting onto", dest))?;
        let remount = options.flags & !(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if !remount.is_empty() {
            // The descriptor still names what was under the mount; reopen to reach the mount.
            let mounted = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopening the mount", dest))?;
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | remount | (kept_flags(&mounted) & !options.clear);
            mount_on(None, &mounted, None, flags, None).map_err(err("remounting", dest))?;
        }
    } else if typ == "cgroup" || typ == "cgroup2" {
        let target = mkdir_all_in_root(root, dest, 0o755).map_err(err("creating the mount point", dest))?;
        mount_cgroup_fs(root, dest, &target, options.flags, cfg.cgroup_fs)?;
    } else {
        let target = mkdir_all_in_root(root, dest, 0o755).map_err(err("creating the mount point", dest))?;
        let source = m.source().as_ref().map(|s| s.as_path()).unwrap_or(Path::new(typ));
        mount_on(Some(source), &target, Some(typ), options.flags, data.as_deref()).map_err(err("mounting", dest))?;
    }
    if !options.propagation.is_empty() {
        let mounted = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopening the mount", dest))?;
        mount_on(None, &mounted, None, options.propagation, None).map_err(err("setting propagation on", dest))?;
    }
    Ok(())
}

/// For `/proc/<pid>/root/<rest>`: `<rest>` opened (O_PATH) inside that process's root.
fn pinned_source(source: &Path) -> Result<Option<OwnedFd>, RootfsError> {
    let Ok(rest) = source.strip_prefix("/proc") else {
        return Ok(None);
    };
    let mut parts = rest.components();
    let (Some(pid), Some(root)) = (parts.next(), parts.next()) else {
        return Ok(None);
    };
    let pid = pid.as_os_str().to_string_lossy();
    if root.as_os_str() != "root" || pid.parse::<u32>().is_err() {
        return Ok(None);
    }
    let root_path = Path::new("/proc").join(pid.as_ref()).join("root");
    let root_fd = nix::fcntl::open(
        &root_path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("opening the bind source's root", &root_path))?;
    let inner = Path::new("/").join(parts.as_path());
    open_in_root(root_fd.as_fd(), &inner, OFlag::O_PATH | OFlag::O_CLOEXEC)
        .map(Some)
        .map_err(err("opening the bind source", source))
}

/// /sys/fs/cgroup shaped like the host's, rooted at the container's own cgroup (the init
/// is in a new cgroup namespace by then).
fn mount_cgroup_fs(
    root: std::os::fd::BorrowedFd<'_>,
    dest: &Path,
    target: &OwnedFd,
    flags: MsFlags,
    fs: &CgroupFs,
) -> Result<(), RootfsError> {
    match fs {
        CgroupFs::V2 => mount_on(Some(Path::new("cgroup2")), target, Some("cgroup2"), flags, None)
            .map_err(err("mounting cgroup2 on", dest)),
        CgroupFs::V1 { hierarchies, unified } => {
            let base = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount_on(Some(Path::new("tmpfs")), target, Some("tmpfs"), base, Some("mode=755"))
                .map_err(err("mounting tmpfs on", dest))?;
            for h in hierarchies {
                let sub = dest.join(&h.name);
                let fd = mkdir_all_in_root(root, &sub, 0o755).map_err(err("creating", &sub))?;
                mount_on(
                    Some(Path::new("cgroup")),
                    &fd,
                    Some("cgroup"),
                    flags,
                    Some(h.data.as_str()),
                )
                .map_err(err("mounting cgroup on", &sub))?;
            }
            if *unified {
                let sub = dest.join("unified");
                let fd = mkdir_all_in_root(root, &sub, 0o755).map_err(err("creating", &sub))?;
                mount_on(Some(Path::new("cgroup2")), &fd, Some("cgroup2"), flags, None)
                    .map_err(err("mounting cgroup2 on", &sub))?;
            }
            if flags.contains(MsFlags::MS_RDONLY) {
                let top = open_in_root(root, dest, OFlag::O_PATH).map_err(err("reopening", dest))?;
                mount_on(
                    None,
                    &top,
                    None,
                    MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY | base,
                    None,
                )
                .map_err(err("making read-only", dest))?;
            }
            Ok(())
        }
    }
}

/// The devices every container has (OCI's default devices), then the spec's own.
const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

fn make_devices(
    root: std::os::fd::BorrowedFd<'_>,
    devices: &[LinuxDevice],
    dev_is_tmpfs: bool,
    console: bool,
) -> Result<(), RootfsError> {
    let dev = open_in_root(root, Path::new("/dev"), OFlag::O_DIRECTORY).map_err(err("opening", "/dev"))?;
    let mknod = |dir: &OwnedFd,
                 name: &Path,
                 kind: SFlag,
                 major_: u64,
                 minor_: u64,
                 mode: u32,
                 uid: u32,
                 gid: u32|
     -> Result<(), RootfsError> {
        if !dev_is_tmpfs {
            // An image's own /dev entry (a file, a symlink) must not stay in the way.
            let _ = nix::unistd::unlinkat(dir, name, nix::unistd::UnlinkatFlags::NoRemoveDir);
        }
        match mknodat(dir, name, kind, Mode::from_bits_truncate(mode), makedev(major_, minor_)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err("creating device", Path::new("/dev").join(name))(e)),
        }
        // mknod applies the umask; set the mode the spec asked for.
        nix::sys::stat::fchmodat(
            dir,
            name,
            Mode::from_bits_truncate(mode),
            nix::sys::stat::FchmodatFlags::NoFollowSymlink,
        )
        .or_else(|e| if e == Errno::EOPNOTSUPP { Ok(()) } else { Err(e) })
        .map_err(err("setting the mode of", name))?;
        fchownat(
            dir,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(err("setting the owner of", name))
    };
    for (name, ma, mi) in DEFAULT_DEVICES {
        mknod(&dev, Path::new(name), SFlag::S_IFCHR, ma, mi, 0o666, 0, 0)?;
    }
    for d in devices {
        let path = d.path();
        let rel = path.strip_prefix("/dev").map_err(|_| RootfsError {
            step: "a device outside /dev",
            target: path.display().to_string(),
            errno: Errno::EINVAL,
        })?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        let dir = if parent.as_os_str().is_empty() {
            open_in_root(root, Path::new("/dev"), OFlag::O_DIRECTORY)
        } else {
            mkdir_all_in_root(root, &Path::new("/dev").join(parent), 0o755)
                .and_then(|_| open_in_root(root, &Path::new("/dev").join(parent), OFlag::O_DIRECTORY))
        }
        .map_err(err("creating the directory of", path))?;
        let kind = match d.typ() {
            LinuxDeviceType::B => SFlag::S_IFBLK,
            LinuxDeviceType::P => SFlag::S_IFIFO,
            _ => SFlag::S_IFCHR,
        };
        let name = rel.file_name().map(Path::new).unwrap_or(Path::new(""));
        mknod(
            &dir,
            name,
            kind,
            d.major() as u64,
            d.minor() as u64,
            d.file_mode().unwrap_or(0o666),
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
        )?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        match nix::unistd::symlinkat(target, &dev, link) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err("linking", Path::new("/dev").join(link))(e)),
        }
    }
    if console {
        match nix::fcntl::openat(
            &dev,
            "console",
            OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC | OFlag::O_WRONLY,
            Mode::from_bits_truncate(0o600),
        ) {
            Ok(_) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(err("creating", "/dev/console")(e)),
        }
    }
    Ok(())
}

fn pivot(root: &OwnedFd, path: &Path) -> Result<(), RootfsError> {
    nix::unistd::fchdir(root).map_err(err("entering the root", path))?;
    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves the
    // container's root alone, with no path back to the host's.
    nix::unistd::pivot_root(".", ".").map_err(err("pivot_root into", path))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detaching the old root", "/"))?;
    nix::unistd::chdir("/").map_err(err("entering", "/"))
}

/// After the pivot: sysctls, masked paths, read-only paths, a read-only root.
pub fn finish(
    masked: &[String],
    readonly: &[String],
    sysctl: &HashMap<String, String>,
    readonly_root: bool,
) -> Result<(), RootfsError> {
    for (key, value) in sysctl {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, value).map_err(|e| RootfsError {
            step: "setting sysctl",
            target: key.clone(),
            errno: Errno::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        })?;
    }
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("opening", "/"))?;
    if !masked.is_empty() {
        let null = nix::fcntl::open(
            "/dev/null",
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(err("opening", "/dev/null"))?;
        // Only the real null device may be bound over masked paths.
        let st = fstat(&null).map_err(err("checking", "/dev/null"))?;
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        if kind != SFlag::S_IFCHR || major(st.st_rdev) != 1 || minor(st.st_rdev) != 3 {
            return Err(RootfsError {
                step: "checking",
                target: "/dev/null (not the null device)".into(),
                errno: Errno::EPERM,
            });
        }
        for path in masked {
            let target = match open_in_root(root.as_fd(), Path::new(path), OFlag::O_PATH | OFlag::O_NOFOLLOW) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => continue,
                Err(e) => return Err(err("opening masked path", path)(e)),
            };
            let st = fstat(&target).map_err(err("checking masked path", path))?;
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            if kind == SFlag::S_IFDIR {
                mount_on(
                    Some(Path::new("tmpfs")),
                    &target,
                    Some("tmpfs"),
                    MsFlags::MS_RDONLY,
                    Some("size=0,nr_inodes=1"),
                )
                .map_err(err("masking", path))?;
            } else if kind != SFlag::S_IFLNK {
                mount_on(Some(&fd_path(&null)), &target, None, MsFlags::MS_BIND, None).map_err(err("masking", path))?;
            }
        }
    }
    for path in readonly {
        let target = match open_in_root(root.as_fd(), Path::new(path), OFlag::O_PATH | OFlag::O_NOFOLLOW) {
            Ok(fd) => fd,
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err("opening read-only path", path)(e)),
        };
        mount_on(
            Some(&fd_path(&target)),
            &target,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )
        .map_err(err("binding read-only path", path))?;
        let mounted = open_in_root(root.as_fd(), Path::new(path), OFlag::O_PATH | OFlag::O_NOFOLLOW)
            .map_err(err("reopening", path))?;
        let flags =
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | MsFlags::MS_REC | kept_flags(&mounted);
        mount_on(None, &mounted, None, flags, None).map_err(err("making read-only", path))?;
    }
    if readonly_root {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | kept_flags(&root);
        mount(None::<&str>, "/", None::<&str>, flags, None::<&str>).map_err(err("making the root read-only", "/"))?;
    }
    Ok(())
}

/// Binds the console's pty over /dev/console (created empty by `prepare`). Both paths are
/// opened without following links, so a planted symlink cannot redirect the bind
/// (CVE-2025-52565).
pub fn bind_console(slave_path: &Path) -> Result<(), RootfsError> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(err("opening", "/"))?;
    let console = open_in_root(
        root.as_fd(),
        Path::new("/dev/console"),
        OFlag::O_PATH | OFlag::O_NOFOLLOW,
    )
    .map_err(err("opening", "/dev/console"))?;
    let slave = open_in_root(root.as_fd(), slave_path, OFlag::O_PATH | OFlag::O_NOFOLLOW)
        .map_err(err("opening", slave_path))?;
    // UNIX98 pty slaves are character devices with majors 136 to 143.
    let st = fstat(&slave).map_err(err("checking", slave_path))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind != SFlag::S_IFCHR || !(136..=143).contains(&major(st.st_rdev)) {
        return Err(RootfsError {
            step: "checking",
            target: format!("{} (not a pty)", slave_path.display()),
            errno: Errno::EPERM,
        });
    }
    mount_on(Some(&fd_path(&slave)), &console, None, MsFlags::MS_BIND, None)
        .map_err(err("binding the console onto", "/dev/console"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_cgroup_layout() {
        let hybrid = "30 25 0:26 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755\n\
31 30 0:27 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:10 - cgroup2 cgroup2 rw\n\
32 30 0:28 / /sys/fs/cgroup/systemd rw shared:11 - cgroup cgroup rw,xattr,name=systemd\n\
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw shared:12 - cgroup cgroup rw,cpu,cpuacct\n\
34 30 0:30 / /sys/fs/cgroup/memory rw shared:13 - cgroup cgroup rw,memory\n";
        match CgroupFs::from_mountinfo(hybrid) {
            CgroupFs::V1 { hierarchies, unified } => {
                assert!(unified);
                let got: Vec<(&str, &str)> = hierarchies.iter().map(|h| (h.name.as_str(), h.data.as_str())).collect();
                assert_eq!(
                    got,
                    [
                        ("systemd", "none,name=systemd"),
                        ("cpu,cpuacct", "cpu,cpuacct"),
                        ("memory", "memory")
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
        let pure = "30 25 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert!(matches!(CgroupFs::from_mountinfo(pure), CgroupFs::V2));
    }

    #[test]
    fn mount_options() {
        let o = parse_options(&[
            "rbind".into(),
            "ro".into(),
            "rprivate".into(),
            "mode=755".into(),
            "nosuid".into(),
        ]);
        assert!(o.bind);
        assert!(
            o.flags
                .contains(MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_RDONLY | MsFlags::MS_NOSUID)
        );
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(o.data, ["mode=755"]);
    }
}
