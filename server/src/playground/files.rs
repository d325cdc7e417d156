//! Files into and out of a node, for the browser's upload and download.
//!
//! The server is root on the host, so a path from a learner must never be resolved by the
//! host: it is resolved by the kernel inside the node's root (`/proc/<pid>/root`, opened
//! through the node's `/proc/<pid>` descriptor), with openat2 and RESOLVE_IN_ROOT, as the
//! runtime does for images. `..` stops at the node's `/`, absolute symlinks mean the node's
//! `/`, and magic links (`/proc/*/root`) are refused.
//!
//! Being resolved inside is not enough: the server has capabilities the node lacks. A
//! device node made in the node is only as dangerous as the node's device cgroup lets it
//! be, and that does not apply to the server; procfs and sysfs show the reader's view, and
//! the reader here would be the host's root. So only regular files are read or written,
//! each checked through an O_PATH descriptor before it is opened for real (by reopening
//! that same descriptor, so nothing can be swapped in between), and never on those
//! pseudo-filesystems.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{Mode, SFlag, fstat};
use nix::sys::statfs::{self, fstatfs};
use slipway_runtime::linux::fs::{mkdir_all_in_root, open_in_root};

/// Why a file could not be read or written; the web face gives each its status code.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{0}")]
    BadPath(String),
    #[error("{0} does not exist in the node")]
    NotFound(String),
    #[error("{0} is larger than {1} MiB, the most that can be moved at once")]
    TooBig(String, u64),
    #[error("{0} cannot be written: {1}")]
    Refused(String, String),
    #[error("{0}: {1}")]
    Io(String, io::Error),
}

/// Checks a path from a request: absolute, naming a file (not `/`, not ending in `/`).
pub fn check_path(path: &str) -> Result<(), FileError> {
    let bad = |why: &str| Err(FileError::BadPath(format!("bad path {path:?}: {why}")));
    if !path.starts_with('/') {
        return bad("give an absolute path, such as /root/notes.txt");
    }
    if path.contains('\0') || path.len() > 4096 {
        return bad("not a usable path");
    }
    if path.ends_with('/') || !matches!(Path::new(path).components().next_back(), Some(Component::Normal(_))) {
        return bad("name a file, not a directory");
    }
    Ok(())
}

fn io_error(path: &str, e: Errno) -> FileError {
    match e {
        Errno::ENOENT => FileError::NotFound(path.to_string()),
        Errno::ENOTDIR => FileError::BadPath(format!("bad path {path:?}: a part of it is not a directory")),
        Errno::EISDIR => FileError::BadPath(format!("{path} is a directory")),
        Errno::ELOOP | Errno::EXDEV => FileError::BadPath(format!(
            "bad path {path:?}: it leads through a link that cannot be followed"
        )),
        Errno::EROFS | Errno::EACCES | Errno::EPERM | Errno::ETXTBSY => {
            FileError::Refused(path.to_string(), e.desc().to_lowercase())
        }
        Errno::ENOSPC | Errno::EDQUOT => FileError::Refused(path.to_string(), "the node's disk is full".into()),
        e => FileError::Io(path.to_string(), e.into()),
    }
}

/// The node's root directory.
fn root(proc: BorrowedFd<'_>) -> Result<OwnedFd, FileError> {
    openat(
        proc,
        "root",
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileError::Io("the node's root".into(), e.into()))
}

/// Filesystems whose files show the reader's view of the machine, or drive the kernel.
fn pseudo(fd: BorrowedFd<'_>) -> bool {
    let Ok(fs) = fstatfs(fd) else { return true };
    let kind = fs.filesystem_type();
    [
        statfs::PROC_SUPER_MAGIC,
        statfs::SYSFS_MAGIC,
        statfs::CGROUP_SUPER_MAGIC,
        statfs::CGROUP2_SUPER_MAGIC,
        statfs::DEBUGFS_MAGIC,
        statfs::TRACEFS_MAGIC,
        statfs::SECURITYFS_MAGIC,
        statfs::BPF_FS_MAGIC,
    ]
    .contains(&kind)
}

/// Checks that an O_PATH descriptor is a regular file on an ordinary filesystem, then opens
/// that very file for I/O (through /proc/self/fd, so it is the inode already checked).
fn reopen_regular(path: &str, fd: &OwnedFd, flags: OFlag) -> Result<(std::fs::File, u64), FileError> {
    let st = fstat(fd.as_fd()).map_err(|e| io_error(path, e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
    if kind == SFlag::S_IFDIR {
        return Err(FileError::BadPath(format!("{path} is a directory")));
    }
    if kind != SFlag::S_IFREG {
        return Err(FileError::BadPath(format!("{path} is not a regular file")));
    }
    if pseudo(fd.as_fd()) {
        return Err(FileError::BadPath(format!(
            "{path} is on a kernel filesystem (such as /proc or /sys); copy it to a regular file first"
        )));
    }
    let reopened = nix::fcntl::open(
        format!("/proc/self/fd/{}", fd.as_raw_fd()).as_str(),
        flags | OFlag::O_CLOEXEC | OFlag::O_NOCTTY,
        Mode::empty(),
    )
    .map_err(|e| io_error(path, e))?;
    Ok((std::fs::File::from(reopened), st.st_size.max(0) as u64))
}

/// The bytes of the regular file at `path` in the node, up to `limit` bytes.
pub fn download(proc: BorrowedFd<'_>, path: &str, limit: u64) -> Result<Vec<u8>, FileError> {
    check_path(path)?;
    let root = root(proc)?;
    read_in(root.as_fd(), path, limit)
}

/// The bytes of the regular file at `path` under the directory `root` (links resolved as if
/// `root` were `/`), up to `limit` bytes: a node's file, or one in a volume.
pub fn read_in(root: BorrowedFd<'_>, path: &str, limit: u64) -> Result<Vec<u8>, FileError> {
    let fd = open_in_root(root, Path::new(path), OFlag::O_PATH).map_err(|e| io_error(path, e))?;
    let (file, size) = reopen_regular(path, &fd, OFlag::O_RDONLY)?;
    let too_big = || FileError::TooBig(path.to_string(), limit >> 20);
    if size > limit {
        return Err(too_big());
    }
    let mut bytes = Vec::with_capacity(size as usize);
    // The file may grow while it is read.
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::Io(path.to_string(), e))?;
    if bytes.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Writes `data` to `path` in the node (mode 0644 if new), making missing directories.
pub fn upload(proc: BorrowedFd<'_>, path: &str, data: &[u8]) -> Result<(), FileError> {
    check_path(path)?;
    let root = root(proc)?;
    if let Some(parent) = Path::new(path).parent() {
        mkdir_all_in_root(root.as_fd(), parent, 0o755).map_err(|e| io_error(&parent.to_string_lossy(), e))?;
    }
    let mut file = match open_in_root(root.as_fd(), Path::new(path), OFlag::O_PATH) {
        // An existing file is checked, then truncated.
        Ok(fd) => reopen_regular(path, &fd, OFlag::O_WRONLY | OFlag::O_TRUNC)?.0,
        // A new one is made with O_EXCL, so it is a new regular file and never something a
        // symlink at the last step points to.
        Err(Errno::ENOENT) => {
            let how = OpenHow::new()
                .flags(OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_CLOEXEC | OFlag::O_NOCTTY)
                .mode(Mode::from_bits_truncate(0o644))
                .resolve(ResolveFlag::RESOLVE_IN_ROOT);
            let rel = path.trim_start_matches('/');
            match openat2(root.as_fd(), rel, how) {
                Ok(fd) => std::fs::File::from(fd),
                Err(Errno::EEXIST) => {
                    return Err(FileError::BadPath(format!(
                        "{path} is a link to nowhere, or appeared meanwhile; try again"
                    )));
                }
                Err(e) => return Err(io_error(path, e)),
            }
        }
        Err(e) => return Err(io_error(path, e)),
    };
    file.write_all(data).map_err(|e| match e.raw_os_error() {
        Some(n) => io_error(path, Errno::from_raw(n)),
        None => FileError::Io(path.to_string(), e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_must_be_absolute_and_name_a_file() {
        assert!(check_path("/root/a.txt").is_ok());
        assert!(
            check_path("/../../etc/shadow").is_ok(),
            "resolved inside the node, so allowed"
        );
        assert!(check_path("../../etc/shadow").is_err());
        assert!(check_path("root/a").is_err());
        assert!(check_path("/").is_err());
        assert!(check_path("/root/").is_err());
        assert!(check_path("/root/..").is_err());
        assert!(check_path("/a\0b").is_err());
    }

    /// A directory standing in for a node's root, reached as `<proc>/root`.
    fn fake_proc(dir: &Path) -> OwnedFd {
        let proc = dir.join("proc");
        std::fs::create_dir_all(&proc).unwrap();
        std::os::unix::fs::symlink(dir.join("root"), proc.join("root")).unwrap();
        nix::fcntl::open(&proc, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap()
    }

    #[test]
    fn files_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(root.join("etc/secret"), "inside").unwrap();
        std::fs::write(dir.path().join("outside"), "host").unwrap();
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("rel")).unwrap();
        let proc = fake_proc(dir.path());

        assert_eq!(download(proc.as_fd(), "/abs/etc/secret", 1 << 20).unwrap(), b"inside");
        assert_eq!(
            download(proc.as_fd(), "/../../../etc/secret", 1 << 20).unwrap(),
            b"inside"
        );
        assert!(matches!(
            download(proc.as_fd(), "/rel", 1 << 20),
            Err(FileError::NotFound(_))
        ));
        assert!(matches!(
            download(proc.as_fd(), "/etc", 1 << 20),
            Err(FileError::BadPath(_))
        ));
        assert!(matches!(
            download(proc.as_fd(), "/etc/secret", 3),
            Err(FileError::TooBig(..))
        ));

        upload(proc.as_fd(), "/abs/new/dir/file", b"made").unwrap();
        assert_eq!(std::fs::read(root.join("new/dir/file")).unwrap(), b"made");
        upload(proc.as_fd(), "/../etc/secret", b"over").unwrap();
        assert_eq!(std::fs::read(root.join("etc/secret")).unwrap(), b"over");
        // A dangling link out of the root is not followed to make its target.
        assert!(upload(proc.as_fd(), "/rel", b"x").is_err());
        assert_eq!(std::fs::read(dir.path().join("outside")).unwrap(), b"host");
    }

    #[test]
    fn devices_and_kernel_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(&root).unwrap();
        std::os::unix::fs::symlink("/dev/null", root.join("null")).unwrap();
        let proc_dir = dir.path().join("proc");
        std::fs::create_dir_all(&proc_dir).unwrap();
        // The host's /: its /dev/null is a device, its /proc procfs.
        std::os::unix::fs::symlink("/", proc_dir.join("root")).unwrap();
        let proc = nix::fcntl::open(&proc_dir, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();
        assert!(matches!(
            download(proc.as_fd(), "/dev/null", 1 << 20),
            Err(FileError::BadPath(_))
        ));
        assert!(matches!(
            download(proc.as_fd(), "/proc/self/status", 1 << 20),
            Err(FileError::BadPath(_))
        ));
        assert!(matches!(
            upload(proc.as_fd(), "/dev/null", b"x"),
            Err(FileError::BadPath(_))
        ));
    }
}
