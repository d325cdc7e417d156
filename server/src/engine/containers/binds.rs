//! Bind mounts of the node's files (`-v "$(pwd)":/app`). The source lives in the node's
//! mount namespace, which a plain bind mount cannot reach from outside; so the tree is
//! cloned from inside that namespace (`open_tree`, on a thread that entered it, where
//! `/` is the node's root and no path can lead above it), and the detached copy is moved
//! into the container's namespace while its init waits to start.
//!
//! By hand with raw syscalls: neither nix nor libc wraps open_tree, move_mount and
//! mount_setattr yet.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sched::CloneFlags;

const OPEN_TREE_CLONE: libc::c_uint = 1;
const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;
const MOUNT_ATTR_RDONLY: u64 = 1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn errno(what: &str) -> std::io::Error {
    let e = std::io::Error::last_os_error();
    std::io::Error::new(e.kind(), format!("{what}: {e}"))
}

/// Runs `f` on a new thread inside the mount namespace of `pid`.
fn in_mount_ns<T: Send + 'static>(
    pid: i32,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    let ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt"))?;
    std::thread::spawn(move || {
        // A thread shares its filesystem context with the process until it unshares it.
        nix::sched::unshare(CloneFlags::CLONE_FS).map_err(|e| std::io::Error::other(format!("unshare: {e}")))?;
        nix::sched::setns(&ns, CloneFlags::CLONE_NEWNS).map_err(|e| std::io::Error::other(format!("setns: {e}")))?;
        f()
    })
    .join()
    .map_err(|_| std::io::Error::other("the mount thread panicked"))?
}

/// A detached copy of `path` of the node's filesystem, read-only if asked; and whether
/// it is a directory.
pub fn clone_from_node(node_pid: i32, path: &str, readonly: bool) -> std::io::Result<(OwnedFd, bool)> {
    let path = path.to_string();
    in_mount_ns(node_pid, move || {
        let c = CString::new(path.as_str()).map_err(std::io::Error::other)?;
        let is_dir = std::fs::metadata(&path)
            .map(|m| m.is_dir())
            .map_err(|e| std::io::Error::new(e.kind(), format!("bind source path does not exist: {path}")))?;
        // SAFETY: the path is a valid C string; the result is checked before use.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                c.as_ptr(),
                OPEN_TREE_CLONE | AT_RECURSIVE | libc::O_CLOEXEC as libc::c_uint,
            )
        };
        if fd < 0 {
            return Err(errno(&format!("cloning {path}")));
        }
        // SAFETY: a new descriptor owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
        if readonly {
            let attr = MountAttr {
                attr_set: MOUNT_ATTR_RDONLY,
                attr_clr: 0,
                propagation: 0,
                userns_fd: 0,
            };
            let empty = CString::default();
            // SAFETY: valid descriptor, empty path with AT_EMPTY_PATH, a properly sized struct.
            let r = unsafe {
                libc::syscall(
                    libc::SYS_mount_setattr,
                    fd.as_raw_fd(),
                    empty.as_ptr(),
                    libc::AT_EMPTY_PATH as libc::c_uint | AT_RECURSIVE,
                    &attr as *const MountAttr,
                    std::mem::size_of::<MountAttr>(),
                )
            };
            if r < 0 {
                return Err(errno("making the bind read-only"));
            }
        }
        Ok((fd, is_dir))
    })
}

/// Mounts a detached tree at `dest` in the container whose init is `pid` (its root is
/// the mount namespace's root by then), making the mount point if missing.
pub fn mount_into(pid: i32, tree: OwnedFd, dest: &str, is_dir: bool) -> std::io::Result<()> {
    let dest = dest.to_string();
    in_mount_ns(pid, move || {
        let root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        )
        .map_err(|e| std::io::Error::other(format!("opening the container's root: {e}")))?;
        use std::os::fd::AsFd;
        let target = if is_dir {
            slipway_runtime::linux::fs::mkdir_all_in_root(root.as_fd(), std::path::Path::new(&dest), 0o755)
        } else {
            slipway_runtime::linux::fs::ensure_file_in_root(root.as_fd(), std::path::Path::new(&dest))
        }
        .map_err(|e| std::io::Error::other(format!("making the mount point {dest}: {e}")))?;
        let empty = CString::default();
        // SAFETY: both descriptors are valid; empty paths with F_EMPTY_PATH and T_EMPTY_PATH.
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                tree.as_raw_fd(),
                empty.as_ptr(),
                target.as_raw_fd(),
                empty.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
            )
        };
        if r < 0 {
            return Err(errno(&format!("mounting onto {dest}")));
        }
        Ok(())
    })
}
