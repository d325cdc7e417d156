//! Paths inside a container's root, resolved by the kernel inside that root.
//!
//! Every path that comes from a container or an image is opened with openat2(2) and
//! RESOLVE_IN_ROOT on a descriptor of the root: `..` and absolute symlinks stop at the
//! root, so a hostile image cannot make the runtime create or mount anything outside it
//! (the class of CVE-2021-30465 and CVE-2024-45310). Host paths are never canonicalised.

use std::ffi::OsStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{Mode, mkdirat};

/// Opens `path` (relative to `root`, or absolute meaning "from the root") inside `root`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT);
    openat2(root, rel.as_os_str(), how)
}

/// `mkdir -p` inside the root; returns an O_PATH descriptor of the directory.
pub fn mkdir_all_in_root(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    // Most targets exist already (an image's /proc, /dev): one call settles those.
    match open_in_root(root, &rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
        Err(Errno::ENOENT) => {}
        other => return other,
    }
    let mut done = PathBuf::new();
    let mut dir = open_in_root(root, Path::new("."), OFlag::O_PATH | OFlag::O_DIRECTORY)?;
    for component in rel.components() {
        let name = match component {
            Component::Normal(name) => name,
            // The kernel resolves ".." inside the root; follow it there.
            Component::ParentDir => {
                done.push("..");
                dir = open_in_root(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
                continue;
            }
            _ => continue,
        };
        done.push(name);
        match open_in_root(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => dir = fd,
            Err(Errno::ENOENT) => {
                // Created relative to the parent we already hold, so a symlink swapped in
                // meanwhile cannot redirect it.
                match mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(e),
                }
                dir = open_in_root(root, &done, OFlag::O_PATH | OFlag::O_DIRECTORY)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

/// Makes sure a file exists at `path` inside the root (a bind-mount target for a file);
/// returns an O_PATH descriptor of it.
pub fn ensure_file_in_root(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, Errno> {
    let rel = relative(path);
    if let Ok(fd) = open_in_root(root, &rel, OFlag::O_PATH) {
        return Ok(fd);
    }
    let parent = rel.parent().unwrap_or(Path::new(""));
    let name = rel.file_name().ok_or(Errno::EINVAL)?;
    let dir = mkdir_all_in_root(root, parent, 0o755)?;
    // Reopen the parent as a real directory to create in it; O_NOFOLLOW|O_CREAT on the name.
    let dir = nix::fcntl::openat(dir.as_fd(), ".", OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
    match nix::fcntl::openat(
        dir.as_fd(),
        name,
        OFlag::O_CREAT | OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o644),
    ) {
        Ok(_) | Err(Errno::EEXIST) => {}
        Err(e) => return Err(e),
    }
    open_in_root(root, &rel, OFlag::O_PATH)
}

/// The path that names an open descriptor through procfs, for calls that want a path
/// (mount(2) onto a descriptor).
pub fn fd_path(fd: &impl AsRawFd) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
}

/// "/a/b" and "a/b" both mean "a/b" from the root.
fn relative(path: &Path) -> PathBuf {
    let bytes = path.as_os_str().as_bytes();
    let trimmed = bytes
        .iter()
        .position(|&b| b != b'/')
        .map(|i| &bytes[i..])
        .unwrap_or(b".");
    PathBuf::from(OsStr::from_bytes(trimmed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_and_dotdot_stay_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        // A hostile image: an absolute symlink and a relative one climbing out.
        std::os::unix::fs::symlink("/", root.join("abs")).unwrap();
        std::os::unix::fs::symlink("../../outside", root.join("rel")).unwrap();
        let rootfd = nix::fcntl::open(&root, OFlag::O_PATH | OFlag::O_DIRECTORY, Mode::empty()).unwrap();

        mkdir_all_in_root(rootfd.as_fd(), Path::new("/abs/made-here"), 0o755).unwrap();
        mkdir_all_in_root(rootfd.as_fd(), Path::new("sub/x/../y"), 0o755).unwrap();
        // "rel" resolves to <root>/outside, which does not exist: a dangling link is
        // refused rather than followed to create its target.
        assert!(mkdir_all_in_root(rootfd.as_fd(), Path::new("rel/x"), 0o755).is_err());
        ensure_file_in_root(rootfd.as_fd(), Path::new("../../../etc/escape")).unwrap();

        assert!(
            root.join("made-here").is_dir(),
            "an absolute symlink resolves to the root"
        );
        assert!(root.join("sub/y").is_dir(), "`..` is resolved inside the root");
        assert!(root.join("etc/escape").is_file());
        assert_eq!(
            std::fs::read_dir(&outside).unwrap().count(),
            0,
            "nothing was made outside"
        );
        assert!(!Path::new("/etc/escape").exists());
        assert!(!Path::new("/made-here").exists());
    }
}
