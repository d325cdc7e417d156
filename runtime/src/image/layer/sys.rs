//! xattr calls on descriptors, and on a name inside a directory descriptor (for symlinks,
//! devices and fifos, which cannot be opened safely): the name is reached through
//! `/proc/self/fd/<dir>/<name>`, the magic link pinning the directory itself, and the l*
//! calls do not follow the last component.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

fn at_path(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<CString> {
    let mut path = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
    path.extend_from_slice(name);
    cstring(&path)
}

fn check(r: libc::ssize_t) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

pub(super) fn fset(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = cstring(name)?;
    let r = unsafe { libc::fsetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    check(r as libc::ssize_t).map(drop)
}

pub(super) fn set_at(parent: BorrowedFd<'_>, entry: &[u8], name: &[u8], value: &[u8]) -> io::Result<()> {
    let (path, name) = (at_path(parent, entry)?, cstring(name)?);
    let r = unsafe { libc::lsetxattr(path.as_ptr(), name.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
    check(r as libc::ssize_t).map(drop)
}

/// Calls `f` with a buffer until it is big enough (a size of 0 asks for the length).
fn sized(mut f: impl FnMut(*mut libc::c_char, usize) -> libc::ssize_t) -> io::Result<Option<Vec<u8>>> {
    loop {
        let need = match check(f(std::ptr::null_mut(), 0)) {
            Ok(n) => n,
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
            Err(e) => return Err(e),
        };
        if need == 0 {
            return Ok(Some(Vec::new()));
        }
        let mut buf = vec![0u8; need];
        match check(f(buf.as_mut_ptr().cast(), buf.len())) {
            Ok(n) => {
                buf.truncate(n);
                return Ok(Some(buf));
            }
            Err(e) if e.raw_os_error() == Some(libc::ERANGE) => continue,
            Err(e) if e.raw_os_error() == Some(libc::ENODATA) => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

fn split_names(list: Option<Vec<u8>>) -> Vec<Vec<u8>> {
    let list = list.unwrap_or_default();
    list.split(|&b| b == 0)
        .filter(|n| !n.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

pub(super) fn flist(fd: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let raw = fd.as_raw_fd();
    sized(|buf, len| unsafe { libc::flistxattr(raw, buf, len) }).map(split_names)
}

pub(super) fn list_at(parent: BorrowedFd<'_>, entry: &[u8]) -> io::Result<Vec<Vec<u8>>> {
    let path = at_path(parent, entry)?;
    sized(|buf, len| unsafe { libc::llistxattr(path.as_ptr(), buf, len) }).map(split_names)
}

pub(super) fn fget(fd: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let (raw, name) = (fd.as_raw_fd(), cstring(name)?);
    sized(|buf, len| unsafe { libc::fgetxattr(raw, name.as_ptr(), buf.cast(), len) })
}

pub(super) fn get_at(parent: BorrowedFd<'_>, entry: &[u8], name: &[u8]) -> io::Result<Option<Vec<u8>>> {
    let (path, name) = (at_path(parent, entry)?, cstring(name)?);
    sized(|buf, len| unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buf.cast(), len) })
}

/// The process umask, read without changing it (Linux 4.7+); None if unknown.
pub(super) fn umask() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}
