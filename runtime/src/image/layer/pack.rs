//! Packing a directory tree (an overlay upper dir) into a layer tar.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat, readlinkat};
use nix::sys::stat::{Mode, SFlag, fstatat, major, minor};
use sha2::{Digest, Sha256};

use super::tar::{self, Entry};
use super::{
    LayerError, OPAQUE_XATTR, Packed, USER_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, display, sys, xattr_travels,
};

const BUF: usize = 1 << 20;

pub(super) fn pack(dir: &Path, out: &mut dyn Write) -> Result<Packed, LayerError> {
    let root = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| err("opening", dir.as_os_str().as_bytes(), e))?;
    let mut w = Out {
        w: out,
        buf: vec![0; BUF],
        len: 0,
        hasher: Sha256::new(),
        size: 0,
        scratch: Vec::new(),
    };
    // First name written for each inode linked more than once.
    let mut links: HashMap<(u64, u64), Vec<u8>> = HashMap::new();
    let names = list(root.as_fd(), b"")?;
    let mut stack = vec![Frame {
        fd: root,
        prefix: Vec::new(),
        names,
        next: 0,
    }];

    while let Some(frame) = stack.last_mut() {
        let Some(name) = frame.names.get(frame.next).cloned() else {
            stack.pop();
            continue;
        };
        frame.next += 1;
        let mut path = frame.prefix.clone();
        path.extend_from_slice(&name);
        let parent = frame.fd.as_fd();
        let st = match fstatat(parent, name.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed since the directory was listed (a running container): gone it is.
            Err(Errno::ENOENT) => continue,
            Err(e) => return Err(err("stat", &path, e)),
        };
        let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
        let e = Entry {
            typeflag: tar::REGULAR,
            name: &path,
            link: b"",
            mode: st.st_mode & 0o7777,
            uid: st.st_uid as u64,
            gid: st.st_gid as u64,
            size: 0,
            mtime: st.st_mtime,
            devmajor: 0,
            devminor: 0,
            xattrs: &[],
        };

        if kind == SFlag::S_IFCHR && st.st_rdev == 0 {
            // An overlay whiteout (the kernel may share one inode among them all).
            let mut wh = frame.prefix.clone();
            wh.extend_from_slice(WHITEOUT_PREFIX);
            wh.extend_from_slice(&name);
            w.header(&Entry {
                name: &wh,
                mode: 0o600,
                ..e
            })?;
            continue;
        }
        if kind != SFlag::S_IFDIR && st.st_nlink > 1 {
            match links.get(&(st.st_dev, st.st_ino)) {
                Some(first) => {
                    w.header(&Entry {
                        typeflag: tar::HARDLINK,
                        link: first,
                        ..e
                    })?;
                    continue;
                }
                None => {
                    links.insert((st.st_dev, st.st_ino), path.clone());
                }
            }
        }
        match kind {
            SFlag::S_IFDIR => {
                let fd = match openat(parent, name.as_slice(), DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) => continue,
                    Err(er) => return Err(err("opening", &path, er)),
                };
                let (xattrs, opaque) = xattrs(sys::flist(fd.as_fd()), |n| sys::fget(fd.as_fd(), n), &path)?;
                let mut dir_name = path.clone();
                dir_name.push(b'/');
                w.header(&Entry {
                    typeflag: tar::DIR,
                    name: &dir_name,
                    xattrs: &xattrs,
                    ..e
                })?;
                if opaque {
                    let mut opq = dir_name.clone();
                    opq.extend_from_slice(WHITEOUT_OPAQUE);
                    w.header(&Entry {
                        name: &opq,
                        mode: e.mode & 0o777,
                        ..e
                    })?;
                }
                let names = list(fd.as_fd(), &path)?;
                stack.push(Frame {
                    fd,
                    prefix: dir_name,
                    names,
                    next: 0,
                });
            }
            SFlag::S_IFREG => {
                let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
                let fd = match openat(parent, name.as_slice(), flags, Mode::empty()) {
                    Ok(fd) => fd,
                    Err(Errno::ENOENT) => continue,
                    Err(er) => return Err(err("opening", &path, er)),
                };
                let (xattrs, _) = xattrs(sys::flist(fd.as_fd()), |n| sys::fget(fd.as_fd(), n), &path)?;
                let size = st.st_size as u64;
                w.header(&Entry {
                    size,
                    xattrs: &xattrs,
                    ..e
                })?;
                w.file(File::from(fd), size, &path)?;
            }
            SFlag::S_IFLNK => {
                let target = readlinkat(parent, name.as_slice()).map_err(|er| err("readlink", &path, er))?;
                // No xattr that travels can be set on a symlink (user.* cannot, nor file
                // capabilities or ACLs), so none is looked for.
                w.header(&Entry {
                    typeflag: tar::SYMLINK,
                    link: target.as_bytes(),
                    ..e
                })?;
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK | SFlag::S_IFIFO => {
                let typeflag = match kind {
                    SFlag::S_IFCHR => tar::CHAR,
                    SFlag::S_IFBLK => tar::BLOCKDEV,
                    _ => tar::FIFO,
                };
                let (xattrs, _) = xattrs(sys::list_at(parent, &name), |n| sys::get_at(parent, &name, n), &path)?;
                let (devmajor, devminor) = if typeflag == tar::FIFO {
                    (0, 0)
                } else {
                    (major(st.st_rdev), minor(st.st_rdev))
                };
                w.header(&Entry {
                    typeflag,
                    devmajor,
                    devminor,
                    xattrs: &xattrs,
                    ..e
                })?;
            }
            // Sockets do not go into archives (Docker skips them too).
            _ => {}
        }
    }
    w.put(&[0u8; 2 * tar::BLOCK])?;
    w.flush()?;
    w.w.flush().map_err(LayerError::Write)?;
    Ok(Packed {
        diff_id: w.hasher.finalize().into(),
        size: w.size,
    })
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_CLOEXEC);

struct Frame {
    fd: OwnedFd,
    /// The directory's path in the tar with a trailing slash ("" for the root).
    prefix: Vec<u8>,
    names: Vec<Vec<u8>>,
    next: usize,
}

fn err(op: &'static str, path: &[u8], e: impl Into<std::io::Error>) -> LayerError {
    LayerError::Entry {
        op,
        path: display(path),
        source: e.into(),
    }
}

/// The names in a directory, sorted bytewise (as Go's WalkDir sorts them).
fn list(dir: BorrowedFd<'_>, path: &[u8]) -> Result<Vec<Vec<u8>>, LayerError> {
    let mut d = nix::dir::Dir::openat(dir, ".", DIR_FLAGS, Mode::empty()).map_err(|e| err("listing", path, e))?;
    let mut names = Vec::new();
    for entry in d.iter() {
        let entry = entry.map_err(|e| err("listing", path, e))?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    names.sort_unstable();
    Ok(names)
}

type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

/// The xattrs that travel (sorted), and whether overlay marked the directory opaque.
fn xattrs(
    names: std::io::Result<Vec<Vec<u8>>>,
    get: impl Fn(&[u8]) -> std::io::Result<Option<Vec<u8>>>,
    path: &[u8],
) -> Result<(Xattrs, bool), LayerError> {
    let mut names = match names {
        Ok(n) => n,
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => return Ok((Vec::new(), false)),
        Err(e) => return Err(err("listing the xattrs of", path, e)),
    };
    names.sort_unstable();
    let mut out = Vec::new();
    let mut opaque = false;
    for name in names {
        let is_opaque = name == OPAQUE_XATTR || name == USER_OPAQUE_XATTR;
        let overlay = name.starts_with(b"trusted.overlay.") || name.starts_with(b"user.overlay.");
        if overlay && (name.ends_with(b".redirect") || name.ends_with(b".metacopy")) {
            return Err(LayerError::Unsupported {
                path: display(path),
                reason: format!(
                    "it carries {} (an upper dir of an overlay mounted with redirect_dir or metacopy)",
                    display(&name)
                ),
            });
        }
        if !is_opaque && !xattr_travels(&name) {
            continue;
        }
        let Some(value) = get(&name).map_err(|e| err("reading the xattrs of", path, e))? else {
            continue;
        };
        if is_opaque {
            opaque |= value == b"y";
        } else {
            out.push((name, value));
        }
    }
    Ok((out, opaque))
}

/// The tar being written: buffered in 1 MiB, hashed and counted as it goes out.
struct Out<'a> {
    w: &'a mut dyn Write,
    buf: Vec<u8>,
    len: usize,
    hasher: Sha256,
    size: u64,
    scratch: Vec<u8>,
}

impl Out<'_> {
    fn flush(&mut self) -> Result<(), LayerError> {
        let data = &self.buf[..self.len];
        self.w.write_all(data).map_err(LayerError::Write)?;
        self.hasher.update(data);
        self.size += self.len as u64;
        self.len = 0;
        Ok(())
    }

    fn put(&mut self, mut bytes: &[u8]) -> Result<(), LayerError> {
        while !bytes.is_empty() {
            if self.len == self.buf.len() {
                self.flush()?;
            }
            let k = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + k].copy_from_slice(&bytes[..k]);
            self.len += k;
            bytes = &bytes[k..];
        }
        Ok(())
    }

    fn header(&mut self, e: &Entry<'_>) -> Result<(), LayerError> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        tar::write_header(&mut scratch, e);
        let r = self.put(&scratch);
        self.scratch = scratch;
        r
    }

    /// `size` bytes of `file` (its size when it was looked at), read straight into the
    /// buffer, then the padding.
    fn file(&mut self, mut file: File, size: u64, path: &[u8]) -> Result<(), LayerError> {
        let mut left = size;
        while left > 0 {
            if self.len == self.buf.len() {
                self.flush()?;
            }
            let k = ((self.buf.len() - self.len) as u64).min(left) as usize;
            let n = match file.read(&mut self.buf[self.len..self.len + k]) {
                Ok(0) => {
                    return Err(err(
                        "reading",
                        path,
                        std::io::Error::other("the file shrank while it was being packed"),
                    ));
                }
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(err("reading", path, e)),
            };
            self.len += n;
            left -= n as u64;
        }
        let pad = tar::padding(size) as usize;
        self.put(&[0u8; tar::BLOCK][..pad])
    }
}
