//! A container's files from outside it: `docker cp` (stat, read and write a path), `docker
//! export` and `docker diff`. No HTTP here.
//!
//! Every path is resolved by the kernel INSIDE the container's root (openat2 with
//! RESOLVE_IN_ROOT, then *at() calls on single names with O_NOFOLLOW), so a symlink the
//! container made (`/x -> /`, `/y -> ../../..`) can never take a copy onto the node or host.
//!
//! The root is the running container's own (`/proc/<pid>/root`, with its volumes), or, for
//! a container that is not running, an overlay of its image and writable layer mounted on
//! a thread of its own in a private mount namespace: nobody else sees that mount, and it
//! goes away with the thread.

use std::ffi::{OsStr, OsString};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{FileStat, Mode, SFlag, fstatat};
use serde::Serialize;
use slipway_runtime::linux::fs::{mkdir_all_in_root, open_in_root};

use super::Node;
use super::error::{ApiError, ApiResult};
use super::state::ContainerRecord;

/// Which root a job works in.
#[derive(Debug, Clone)]
pub enum Root {
    /// A running container's root, by the host PID of its init.
    Live(i32),
    /// The container's image and writable layer, to be mounted privately.
    Overlay {
        lower: Vec<PathBuf>,
        upper: PathBuf,
        work: PathBuf,
        target: PathBuf,
        /// Volume data directories bound at their destinations (source, destination,
        /// read-only), so a stopped container's volumes are copied from as a running one's.
        volumes: Vec<(PathBuf, String, bool)>,
    },
}

impl Root {
    /// The root `docker cp` works in: the running container's (so its volumes are seen),
    /// else its layers. `live` false always takes the layers (export: no /proc, no volumes).
    pub fn of(node: &Node, rec: &ContainerRecord, live: bool) -> ApiResult<Root> {
        if live && rec.state.running() && rec.state.pid > 0 {
            return Ok(Root::Live(rec.state.pid as i32));
        }
        let image = node.engine.images.image(&rec.image_id)?;
        let lower = node.engine.images.lower_dirs(&image);
        let (upper, work) = node.container_layer(&rec.id);
        let target = node.paths.container(&rec.id).join("archive-root");
        for d in [&upper, &work, &target] {
            std::fs::create_dir_all(d).map_err(|e| ApiError::internal(format!("{}: {e}", d.display())))?;
        }
        // Export takes the layers alone, as Docker's does; cp sees the volumes too.
        let volumes = if live {
            rec.mounts
                .iter()
                .filter(|m| m.typ.as_deref() == Some("volume"))
                .filter_map(|m| {
                    Some((
                        node.paths.volume_data(m.name.as_deref()?),
                        m.destination.clone()?,
                        m.rw == Some(false),
                    ))
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Root::Overlay {
            lower,
            upper,
            work,
            target,
            volumes,
        })
    }

    /// Opens the root on the calling thread; for an overlay, the thread first leaves the
    /// server's mount namespace, so this must be a thread of its own (see [`run_in`]).
    fn open(&self) -> ApiResult<OwnedFd> {
        let dir_flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        match self {
            Root::Live(pid) => nix::fcntl::open(format!("/proc/{pid}/root").as_str(), dir_flags, Mode::empty())
                .map_err(|e| ApiError::internal(format!("opening the container's root: {e}"))),
            Root::Overlay {
                lower,
                upper,
                work,
                target,
                volumes,
            } => {
                use nix::mount::{MsFlags, mount};
                use nix::sched::{CloneFlags, unshare};
                let fail = |what: &str, e: Errno| ApiError::internal(format!("{what}: {e}"));
                unshare(CloneFlags::CLONE_FS | CloneFlags::CLONE_NEWNS).map_err(|e| fail("unshare", e))?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(|e| fail("making mounts private", e))?;
                let lowers: Vec<String> = lower.iter().map(|l| l.to_string_lossy().into_owned()).collect();
                let options = format!(
                    "lowerdir={},upperdir={},workdir={}",
                    lowers.join(":"),
                    upper.display(),
                    work.display()
                );
                mount(
                    Some("overlay"),
                    target,
                    Some("overlay"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(options.as_str()),
                )
                .map_err(|e| fail("mounting the container's layers", e))?;
                let root = nix::fcntl::open(target, dir_flags, Mode::empty())
                    .map_err(|e| fail("opening the container's layers", e))?;
                for (source, dest, ro) in volumes {
                    // The mount point is found inside the root, whatever links the image has.
                    let at = mkdir_all_in_root(root.as_fd(), Path::new(dest), 0o755)
                        .map_err(|e| fail(&format!("the mount point {dest}"), e))?;
                    let at = slipway_runtime::linux::fs::fd_path(&at);
                    mount(
                        Some(source),
                        &at,
                        None::<&str>,
                        MsFlags::MS_BIND | MsFlags::MS_REC,
                        None::<&str>,
                    )
                    .map_err(|e| fail(&format!("binding a volume at {dest}"), e))?;
                    if *ro {
                        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
                        mount(None::<&str>, &at, None::<&str>, flags, None::<&str>)
                            .map_err(|e| fail(&format!("making {dest} read-only"), e))?;
                    }
                }
                Ok(root)
            }
        }
    }
}

/// Runs `job` with the root open, on a thread of its own (it blocks, and an overlay's
/// private namespace must not leak onto a shared thread).
pub async fn run_in<T: Send + 'static>(
    root: Root,
    job: impl FnOnce(BorrowedFd<'_>) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("engine-archive".into())
        .spawn(move || {
            let result = root.open().and_then(|fd| job(fd.as_fd()));
            let _ = tx.send(result);
        })
        .map_err(ApiError::internal)?;
    rx.await
        .map_err(|_| ApiError::internal("the archive thread ended without an answer"))?
}

/// What `X-Docker-Container-Path-Stat` carries.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode` bits, which the CLI decodes.
    pub mode: u32,
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

/// Go's `os.FileMode` for a stat's `st_mode`.
pub fn go_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut m = st_mode & 0o777;
    m |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR,
        libc::S_IFIFO => PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        m |= SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        m |= SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        m |= STICKY;
    }
    m
}

/// `/a/./b/../c` → `/a/c`, with `..` stopping at the root, as a path inside a container.
pub fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// A path split into its directory and last name (`None` for the root itself).
fn split(path: &str) -> (PathBuf, Option<OsString>) {
    let p = clean(Path::new(path));
    match p.file_name() {
        Some(n) => (
            p.parent().unwrap_or(Path::new("/")).to_path_buf(),
            Some(n.to_os_string()),
        ),
        None => (p, None),
    }
}

fn not_found(path: &str, container: &str) -> ApiError {
    ApiError::NotFound(format!("Could not find the file {path} in container {container}"))
}

fn io_err(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(e)
}

/// The directory holding `path`'s last name, opened inside the root, and that name.
/// A trailing `/` or `/.` asks for the directory itself, links followed.
fn locate(root: BorrowedFd<'_>, path: &str, container: &str) -> ApiResult<(OwnedFd, OsString)> {
    let follow_all = path.ends_with('/') || path.ends_with("/.");
    let (dir, name) = split(path);
    let missing = |e: Errno| match e {
        Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP => not_found(path, container),
        other => io_err(format!("{path}: {other}")),
    };
    match name {
        Some(name) if !follow_all => {
            let fd = open_in_root(root, &dir, OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(missing)?;
            Ok((fd, name))
        }
        _ => {
            let fd =
                open_in_root(root, &clean(Path::new(path)), OFlag::O_PATH | OFlag::O_DIRECTORY).map_err(missing)?;
            Ok((fd, OsString::from(".")))
        }
    }
}

fn stat_at(dir: BorrowedFd<'_>, name: &OsStr) -> Result<FileStat, Errno> {
    fstatat(dir, name, AtFlags::AT_SYMLINK_NOFOLLOW)
}

fn rfc3339(secs: i64, nanos: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(secs as i128 * 1_000_000_000 + nanos as i128)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// `HEAD /containers/{id}/archive`: the path's stat; a link's target resolved inside the
/// root (what `docker cp -L` then asks for).
pub fn stat(root: BorrowedFd<'_>, path: &str, container: &str) -> ApiResult<PathStat> {
    let (dir, name) = locate(root, path, container)?;
    let st = stat_at(dir.as_fd(), &name).map_err(|_| not_found(path, container))?;
    let mut link_target = String::new();
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        link_target = resolve_link(root, &clean(Path::new(path)))
            .to_string_lossy()
            .into_owned();
    }
    let base = clean(Path::new(path));
    Ok(PathStat {
        name: base
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "/".into()),
        size: st.st_size,
        mode: go_mode(st.st_mode),
        mtime: rfc3339(st.st_mtime, st.st_mtime_nsec),
        link_target,
    })
}

/// Follows a chain of symlinks lexically inside the root (at most 40, as the kernel).
fn resolve_link(root: BorrowedFd<'_>, path: &Path) -> PathBuf {
    let mut current = path.to_path_buf();
    for _ in 0..40 {
        let (dir, Some(name)) = split(&current.to_string_lossy()) else {
            break;
        };
        let Ok(dfd) = open_in_root(root, &dir, OFlag::O_PATH | OFlag::O_DIRECTORY) else {
            break;
        };
        let Ok(target) = nix::fcntl::readlinkat(dfd.as_fd(), name.as_os_str()) else {
            break;
        };
        let target = Path::new(&target);
        current = if target.is_absolute() {
            clean(target)
        } else {
            clean(&dir.join(target))
        };
    }
    current
}

/// Writes `path` (not following its last component) as a tar into `out`, its entries
/// named from the path's own name. `rename` replaces that top name (export uses none).
pub fn write_tar(root: BorrowedFd<'_>, path: &str, container: &str, out: impl Write) -> ApiResult<()> {
    let (dir, name) = locate(root, path, container)?;
    stat_at(dir.as_fd(), &name).map_err(|_| not_found(path, container))?;
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let top = if path.ends_with("/.") {
        PathBuf::from(".")
    } else if name == "." {
        clean(Path::new(path))
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
    } else {
        PathBuf::from(&name)
    };
    add(&mut b, dir.as_fd(), &name, top.as_os_str().as_bytes()).map_err(io_err)?;
    b.into_inner().map_err(io_err)?.flush().map_err(io_err)
}

/// `docker export`: every file of the root, named relative to it.
pub fn write_root_tar(root: BorrowedFd<'_>, out: impl Write) -> ApiResult<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let fd = openat(
        root,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(io_err)?;
    for child in children(fd).map_err(io_err)? {
        let dir = openat(
            root,
            ".",
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(io_err)?;
        add(&mut b, dir.as_fd(), &child, child.as_bytes()).map_err(io_err)?;
    }
    b.into_inner().map_err(io_err)?.flush().map_err(io_err)
}

/// A directory's names, sorted (for stable archives), without `.` and `..`.
fn children(fd: OwnedFd) -> io::Result<Vec<OsString>> {
    let mut d = nix::dir::Dir::from_fd(fd)?;
    let mut names: Vec<OsString> = d
        .iter()
        .flatten()
        .map(|e| OsStr::from_bytes(e.file_name().to_bytes()).to_os_string())
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    Ok(names)
}

/// Appends an entry under exactly `name` (the tar crate would drop a leading `./`, which
/// the CLI needs to rebase `docker cp ctr:/dir/. x`), with GNU long-name records when the
/// name or link target does not fit its field.
fn put<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &[u8],
    link: Option<&[u8]>,
    data: impl Read,
) -> io::Result<()> {
    fn long<W: Write>(b: &mut tar::Builder<W>, kind: tar::EntryType, bytes: &[u8]) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        let tag = b"././@LongLink";
        h.as_old_mut().name[..tag.len()].copy_from_slice(tag);
        h.set_mode(0o644);
        h.set_entry_type(kind);
        h.set_size(bytes.len() as u64 + 1);
        h.set_cksum();
        b.append(&h, bytes.chain(&[0u8][..]))
    }
    if name.len() > 100 {
        long(b, tar::EntryType::GNULongName, name)?;
    }
    let field = &mut h.as_old_mut().name;
    field.fill(0);
    let n = name.len().min(field.len());
    field[..n].copy_from_slice(&name[..n]);
    if let Some(link) = link {
        if link.len() > 100 {
            long(b, tar::EntryType::GNULongLink, link)?;
        }
        let field = &mut h.as_old_mut().linkname;
        field.fill(0);
        let n = link.len().min(field.len());
        field[..n].copy_from_slice(&link[..n]);
    }
    h.set_cksum();
    b.append(h, data)
}

fn add<W: Write>(b: &mut tar::Builder<W>, dir: BorrowedFd<'_>, name: &OsStr, tar_name: &[u8]) -> io::Result<()> {
    let st = stat_at(dir, name)?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    let nofollow = OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
    match SFlag::from_bits_truncate(st.st_mode & libc::S_IFMT) {
        SFlag::S_IFDIR => {
            h.set_entry_type(tar::EntryType::Directory);
            let mut dir_name = tar_name.to_vec();
            if !dir_name.ends_with(b"/") {
                dir_name.push(b'/');
            }
            put(b, &mut h, &dir_name, None, io::empty())?;
            let fd = openat(
                dir,
                name,
                OFlag::O_RDONLY | OFlag::O_DIRECTORY | nofollow,
                Mode::empty(),
            )?;
            let sub = openat(
                fd.as_fd(),
                ".",
                OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
                Mode::empty(),
            )?;
            for child in children(fd)? {
                let mut child_name = tar_name.to_vec();
                if !child_name.ends_with(b"/") {
                    child_name.push(b'/');
                }
                child_name.extend_from_slice(child.as_bytes());
                add(b, sub.as_fd(), &child, &child_name)?;
            }
        }
        SFlag::S_IFREG => {
            let fd = openat(dir, name, OFlag::O_RDONLY | nofollow, Mode::empty())?;
            h.set_entry_type(tar::EntryType::Regular);
            h.set_size(st.st_size as u64);
            // A file that shrinks while read must not corrupt the archive.
            let file = std::fs::File::from(fd).take(st.st_size as u64);
            put(b, &mut h, tar_name, None, Padded::new(file, st.st_size as u64))?;
        }
        SFlag::S_IFLNK => {
            let target = nix::fcntl::readlinkat(dir, name)?;
            h.set_entry_type(tar::EntryType::Symlink);
            put(b, &mut h, tar_name, Some(target.as_bytes()), io::empty())?;
        }
        kind => {
            let typ = match kind {
                SFlag::S_IFCHR => tar::EntryType::Char,
                SFlag::S_IFBLK => tar::EntryType::Block,
                SFlag::S_IFIFO => tar::EntryType::Fifo,
                // Sockets cannot be archived; Docker skips them too.
                _ => return Ok(()),
            };
            h.set_entry_type(typ);
            let rdev = st.st_rdev;
            h.set_device_major(libc::major(rdev))?;
            h.set_device_minor(libc::minor(rdev))?;
            put(b, &mut h, tar_name, None, io::empty())?;
        }
    }
    Ok(())
}

/// A reader giving exactly `len` bytes: the file's, then zeros if it shrank.
struct Padded<R> {
    inner: R,
    left: u64,
}

impl<R> Padded<R> {
    fn new(inner: R, len: u64) -> Self {
        Padded { inner, left: len }
    }
}

impl<R: Read> Read for Padded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(self.left as usize);
        let mut n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            buf[..want].fill(0);
            n = want;
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// The relative, `..`-free path of an archive member, or why it is refused.
pub fn member_path(raw: &[u8]) -> Result<PathBuf, String> {
    let p = Path::new(OsStr::from_bytes(raw));
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(format!(
                    "archive member {} would land outside the destination",
                    p.display()
                ));
            }
        }
    }
    Ok(out)
}

/// `PUT /containers/{id}/archive`: unpacks `input` into the directory `path`, inside the
/// root. Links in the destination are followed inside the root, never out of it.
pub fn extract(
    root: BorrowedFd<'_>,
    path: &str,
    container: &str,
    no_overwrite_dir_non_dir: bool,
    copy_uid_gid: bool,
    mut input: impl Read,
) -> ApiResult<()> {
    let result = unpack(
        root,
        path,
        container,
        no_overwrite_dir_non_dir,
        copy_uid_gid,
        &mut input,
    );
    // Read the rest (the end marker's padding, or what a refused archive still sends), so
    // the client finishes sending and sees the answer instead of a broken pipe.
    let _ = io::copy(&mut input, &mut io::sink());
    result
}

fn unpack(
    root: BorrowedFd<'_>,
    path: &str,
    container: &str,
    no_overwrite_dir_non_dir: bool,
    copy_uid_gid: bool,
    input: impl Read,
) -> ApiResult<()> {
    let dest = open_in_root(root, &clean(Path::new(path)), OFlag::O_PATH).map_err(|e| match e {
        Errno::ENOENT | Errno::ELOOP => not_found(path, container),
        other => io_err(other),
    })?;
    let st = nix::sys::stat::fstat(dest.as_fd()).map_err(io_err)?;
    if st.st_mode & libc::S_IFMT != libc::S_IFDIR {
        return Err(ApiError::bad("extraction point is not a directory"));
    }
    let mut ar = tar::Archive::new(input);
    for entry in ar.entries().map_err(io_err)? {
        let mut entry = entry.map_err(|e| ApiError::bad(format!("reading the archive: {e}")))?;
        let rel = member_path(&entry.path_bytes()).map_err(ApiError::bad)?;
        let Some(name) = rel.file_name().map(OsStr::to_os_string) else {
            continue;
        };
        let parent = rel.parent().unwrap_or(Path::new(""));
        let pfd = if parent.as_os_str().is_empty() {
            open_in_root(dest.as_fd(), Path::new("."), OFlag::O_PATH | OFlag::O_DIRECTORY)
        } else {
            mkdir_all_in_root(dest.as_fd(), parent, 0o755)
        }
        .map_err(|e| io_err(format!("{}: {e}", parent.display())))?;
        let pfd = pfd.as_fd();
        let mode = entry.header().mode().unwrap_or(0o644) & 0o7777;
        let existing = stat_at(pfd, &name).ok();
        let is_dir = |s: &FileStat| s.st_mode & libc::S_IFMT == libc::S_IFDIR;
        let typ = entry.header().entry_type();
        let clear = |existing: &Option<FileStat>| -> ApiResult<()> {
            match existing {
                Some(s) if is_dir(s) => {
                    if no_overwrite_dir_non_dir {
                        return Err(ApiError::bad(format!(
                            "cannot overwrite directory {} with non-directory",
                            rel.display()
                        )));
                    }
                    nix::unistd::unlinkat(pfd, name.as_os_str(), nix::unistd::UnlinkatFlags::RemoveDir)
                        .map_err(|e| io_err(format!("{}: {e}", rel.display())))
                }
                Some(_) => nix::unistd::unlinkat(pfd, name.as_os_str(), nix::unistd::UnlinkatFlags::NoRemoveDir)
                    .map_err(|e| io_err(format!("{}: {e}", rel.display()))),
                None => Ok(()),
            }
        };
        let fail = |e: Errno| io_err(format!("{}: {e}", rel.display()));
        match typ {
            tar::EntryType::Directory => {
                if let Some(s) = &existing
                    && !is_dir(s)
                {
                    if no_overwrite_dir_non_dir {
                        return Err(ApiError::bad(format!(
                            "cannot overwrite non-directory {} with directory",
                            rel.display()
                        )));
                    }
                    clear(&existing)?;
                }
                match nix::sys::stat::mkdirat(pfd, name.as_os_str(), Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(fail(e)),
                }
                let fd = openat(
                    pfd,
                    name.as_os_str(),
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(fail)?;
                nix::sys::stat::fchmod(fd.as_fd(), Mode::from_bits_truncate(mode)).map_err(fail)?;
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                if existing.is_some_and(|s| is_dir(&s) || s.st_mode & libc::S_IFMT != libc::S_IFREG) {
                    clear(&existing)?;
                }
                let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_TRUNC | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = openat(pfd, name.as_os_str(), flags, Mode::from_bits_truncate(mode)).map_err(fail)?;
                let mut file = std::fs::File::from(fd);
                io::copy(&mut entry, &mut file).map_err(|e| io_err(format!("{}: {e}", rel.display())))?;
                nix::sys::stat::fchmod(file.as_fd(), Mode::from_bits_truncate(mode)).map_err(fail)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| OsStr::from_bytes(&t).to_os_string())
                    .unwrap_or_default();
                clear(&existing)?;
                nix::unistd::symlinkat(target.as_os_str(), pfd, name.as_os_str()).map_err(fail)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .ok_or_else(|| ApiError::bad(format!("hard link {} without a target", rel.display())))?;
                let target = member_path(&target).map_err(ApiError::bad)?;
                // The target is found inside the destination, never through a link out.
                let tfd = open_in_root(dest.as_fd(), &target, OFlag::O_PATH | OFlag::O_NOFOLLOW).map_err(fail)?;
                clear(&existing)?;
                nix::unistd::linkat(tfd.as_fd(), "", pfd, name.as_os_str(), AtFlags::AT_EMPTY_PATH).map_err(fail)?;
                continue;
            }
            // Devices and fifos: a learner's copy has no business making device nodes.
            _ => continue,
        }
        // Without copyUIDGID the files stay the container root's (they are made as root).
        if copy_uid_gid && let (Ok(uid), Ok(gid)) = (entry.header().uid(), entry.header().gid()) {
            nix::unistd::fchownat(
                pfd,
                name.as_os_str(),
                Some(nix::unistd::Uid::from_raw(uid as u32)),
                Some(nix::unistd::Gid::from_raw(gid as u32)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(fail)?;
        }
        if let Ok(mtime) = entry.header().mtime() {
            let t = nix::sys::time::TimeSpec::new(mtime as i64, 0);
            let _ = nix::sys::stat::utimensat(
                pfd,
                name.as_os_str(),
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            );
        }
    }
    Ok(())
}

/// One change of `docker diff`: 0 modified, 1 added, 2 deleted.
#[derive(Debug, Clone, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    #[serde(rename = "Path")]
    pub path: String,
    #[serde(rename = "Kind")]
    pub kind: u8,
}

/// The changes a container made to its image, read from its writable layer: a whiteout
/// (a 0:0 character device) is a deletion, a path the image has is a modification, any
/// other an addition. Host paths here are the server's own directories; no link is followed.
pub fn changes(upper: &Path, lower: &[PathBuf]) -> Vec<Change> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(upper.join(&rel)) else {
            continue;
        };
        for e in entries.flatten() {
            let child = rel.join(e.file_name());
            let Ok(m) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            let shown = format!("/{}", child.display());
            if m.file_type().is_char_device() && m.rdev() == 0 {
                out.push(Change { path: shown, kind: 2 });
                continue;
            }
            let kind = if lower.iter().any(|l| in_layer(l, &child)) {
                0
            } else {
                1
            };
            out.push(Change { path: shown, kind });
            if m.is_dir() {
                stack.push(child);
            }
        }
    }
    out.retain(|c| !init_path(&c.path));
    out.sort();
    // A directory that is in the writable layer only because the runtime put its own
    // files there (`/etc` for hosts and resolv.conf) is no change of the container's:
    // Docker keeps those in an init layer, which `diff` does not show.
    let keep: Vec<bool> = out
        .iter()
        .map(|c| {
            let prefix = format!("{}/", c.path);
            c.kind != 0
                || upper.join(c.path.trim_start_matches('/')).is_file()
                || upper.join(c.path.trim_start_matches('/')).is_symlink()
                || out.iter().any(|o| o.path.starts_with(&prefix))
        })
        .collect();
    let mut keep = keep.into_iter();
    out.retain(|_| keep.next().unwrap_or(true));
    out
}

/// What the runtime makes in every container (Docker's init layer): mount points of the
/// kernel filesystems and the files the engine writes for names.
fn init_path(path: &str) -> bool {
    const FILES: [&str; 4] = ["/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/.dockerenv"];
    const TREES: [&str; 3] = ["/dev", "/proc", "/sys"];
    FILES.contains(&path)
        || TREES
            .iter()
            .any(|t| path == *t || path.strip_prefix(t).is_some_and(|r| r.starts_with('/')))
}

/// Whether a layer has `rel`, with no directory on the way being a symlink.
fn in_layer(layer: &Path, rel: &Path) -> bool {
    let mut p = layer.to_path_buf();
    let n = rel.components().count();
    for (i, c) in rel.components().enumerate() {
        p.push(c);
        match std::fs::symlink_metadata(&p) {
            Ok(m) if i + 1 == n || m.is_dir() => {}
            _ => return false,
        }
    }
    true
}

/// A `Write` that hands its bytes to an async body in chunks.
pub struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<io::Result<axum::body::Bytes>>,
    buf: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(tx: tokio::sync::mpsc::Sender<io::Result<axum::body::Bytes>>) -> Self {
        ChannelWriter {
            tx,
            buf: Vec::with_capacity(CHUNK),
        }
    }
    fn send(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = axum::body::Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }
    /// Ends the body with an error the client sees as a broken transfer.
    pub fn fail(&self, e: &ApiError) {
        let _ = self.tx.blocking_send(Err(io::Error::other(e.to_string())));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.send()
    }
}

/// A `Read` fed by an async request body.
pub struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<io::Result<axum::body::Bytes>>,
    cur: axum::body::Bytes,
}

impl ChannelReader {
    pub fn new(rx: tokio::sync::mpsc::Receiver<io::Result<axum::body::Bytes>>) -> Self {
        ChannelReader {
            rx,
            cur: axum::body::Bytes::new(),
        }
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(go_mode(libc::S_IFREG | libc::S_ISUID | 0o755), (1 << 23) | 0o755);
    }

    #[test]
    fn members_never_leave_the_destination() {
        assert_eq!(member_path(b"./a/b").unwrap(), Path::new("a/b"));
        assert!(member_path(b"../../tmp/x").is_err());
        assert!(member_path(b"a/../../x").is_err());
        assert!(member_path(b"/etc/passwd").is_err());
    }

    #[test]
    fn archives_keep_dot_slash_and_long_names() {
        let t = tempfile::tempdir().unwrap();
        let long = "n".repeat(150);
        std::fs::create_dir_all(t.path().join("d")).unwrap();
        std::fs::write(t.path().join("d").join(&long), "x").unwrap();
        std::os::unix::fs::symlink(&long, t.path().join("d/l")).unwrap();
        let rfd = nix::fcntl::open(t.path(), OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let mut out = Vec::new();
        write_tar(rfd.as_fd(), "/d/.", "c", &mut out).unwrap();
        let mut ar = tar::Archive::new(&out[..]);
        let names: Vec<(String, Option<String>)> = ar
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let name = String::from_utf8(e.path_bytes().to_vec()).unwrap();
                let link = e.link_name_bytes().map(|l| String::from_utf8(l.to_vec()).unwrap());
                (name, link)
            })
            .collect();
        assert_eq!(
            names,
            [
                ("./".to_string(), None),
                ("./l".to_string(), Some(long.clone())),
                (format!("./{long}"), None)
            ]
        );
    }

    #[test]
    fn cleaning_stops_at_the_root() {
        assert_eq!(clean(Path::new("../../a/./b/../c")), Path::new("/a/c"));
        assert_eq!(clean(Path::new("/")), Path::new("/"));
    }

    #[test]
    fn changes_from_an_upper_dir() {
        use std::fs;
        let t = tempfile::tempdir().unwrap();
        let (up, low) = (t.path().join("up"), t.path().join("low"));
        fs::create_dir_all(up.join("etc")).unwrap();
        fs::create_dir_all(up.join("new")).unwrap();
        fs::create_dir_all(low.join("etc")).unwrap();
        fs::write(low.join("etc/passwd"), "a").unwrap();
        fs::write(up.join("etc/passwd"), "b").unwrap();
        fs::write(up.join("new/f"), "x").unwrap();
        // What the runtime made is left out, and /etc with it when nothing else changed.
        fs::create_dir_all(up.join("proc")).unwrap();
        fs::create_dir_all(up.join("usr")).unwrap();
        fs::create_dir_all(low.join("usr")).unwrap();
        fs::write(up.join("etc/hosts"), "h").unwrap();
        let got = changes(&up, std::slice::from_ref(&low));
        let want = [("/etc", 0), ("/etc/passwd", 0), ("/new", 1), ("/new/f", 1)];
        assert_eq!(
            got,
            want.iter()
                .map(|(p, k)| Change {
                    path: p.to_string(),
                    kind: *k
                })
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn extraction_refuses_dotdot_and_follows_links_inside() {
        use std::fs;
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("root");
        fs::create_dir_all(root.join("tmp")).unwrap();
        std::os::unix::fs::symlink("/", root.join("rootlink")).unwrap();
        let rfd = nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        let tarball = |name: &str| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // Raw names: the builder itself refuses `..`.
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, &b"hi"[..]).unwrap();
            b.into_inner().unwrap()
        };
        let bad = tarball("../../escaped");
        assert!(extract(rfd.as_fd(), "/tmp", "c", false, false, &bad[..]).is_err());
        assert!(!t.path().join("escaped").exists());
        let good = tarball("f");
        extract(rfd.as_fd(), "/rootlink/tmp/", "c", false, false, &good[..]).unwrap();
        assert_eq!(fs::read_to_string(root.join("tmp/f")).unwrap(), "hi");
        let s = stat(rfd.as_fd(), "/rootlink", "c").unwrap();
        assert_eq!(s.link_target, "/");
        assert!(matches!(stat(rfd.as_fd(), "/nope", "c"), Err(ApiError::NotFound(_))));
    }
}
