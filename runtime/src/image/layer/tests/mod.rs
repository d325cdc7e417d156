//! Tests on real files, as root: round trips, attacks, real overlay mounts.

mod attacks;
mod bench;
mod overlay;
mod roundtrip;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// One node of a tree, as compared after a round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: (i64, i64),
    pub size: u64,
    pub content: String,
    pub link: Vec<u8>,
    pub rdev: u64,
    pub xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A tree: every node by path (bytes, relative), plus the hardlink groups.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Tree {
    pub nodes: BTreeMap<Vec<u8>, Node>,
    pub links: Vec<Vec<Vec<u8>>>,
}

/// Reads a tree. `user.overlay.opaque` is reported as `trusted.overlay.opaque` (a layer
/// tar has one way to say "opaque") and overlay's other private xattrs are left out.
pub(super) fn snapshot(root: &Path) -> Tree {
    let mut nodes = BTreeMap::new();
    let mut inodes: BTreeMap<u64, Vec<Vec<u8>>> = BTreeMap::new();
    walk(root, root, &mut nodes, &mut inodes);
    let links = inodes.into_values().filter(|g| g.len() > 1).collect();
    Tree { nodes, links }
}

fn walk(root: &Path, dir: &Path, nodes: &mut BTreeMap<Vec<u8>, Node>, inodes: &mut BTreeMap<u64, Vec<Vec<u8>>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    entries.sort();
    for path in entries {
        let rel = path.strip_prefix(root).unwrap().as_os_str().as_bytes().to_vec();
        let md = std::fs::symlink_metadata(&path).unwrap();
        let ft = md.file_type();
        let kind = if ft.is_dir() {
            "dir"
        } else if ft.is_file() {
            "file"
        } else if ft.is_symlink() {
            "symlink"
        } else if ft.is_char_device() {
            "char"
        } else if ft.is_block_device() {
            "block"
        } else if ft.is_fifo() {
            "fifo"
        } else {
            "socket"
        };
        let content = if ft.is_file() {
            let mut data = Vec::new();
            std::fs::File::open(&path).unwrap().read_to_end(&mut data).unwrap();
            hex::encode(Sha256::digest(&data))
        } else {
            String::new()
        };
        let link = if ft.is_symlink() {
            std::fs::read_link(&path).unwrap().as_os_str().as_bytes().to_vec()
        } else {
            Vec::new()
        };
        let mut xattrs = BTreeMap::new();
        if !ft.is_symlink() {
            for name in xattr::list(&path).unwrap() {
                let value = xattr::get(&path, &name).unwrap().unwrap_or_default();
                let name = name.as_bytes().to_vec();
                if name == b"user.overlay.opaque" {
                    xattrs.insert(b"trusted.overlay.opaque".to_vec(), value);
                } else if name.starts_with(b"trusted.overlay.") && name != b"trusted.overlay.opaque" {
                    continue;
                } else {
                    xattrs.insert(name, value);
                }
            }
        }
        if !ft.is_dir() && md.nlink() > 1 {
            inodes.entry(md.ino()).or_default().push(rel.clone());
        }
        nodes.insert(
            rel,
            Node {
                kind,
                mode: md.mode() & 0o7777,
                uid: md.uid(),
                gid: md.gid(),
                mtime: (md.mtime(), md.mtime_nsec()),
                size: if ft.is_file() { md.size() } else { 0 },
                content,
                link,
                rdev: if ft.is_char_device() || ft.is_block_device() {
                    md.rdev()
                } else {
                    0
                },
                xattrs,
            },
        );
        if ft.is_dir() {
            walk(root, &path, nodes, inodes);
        }
    }
}

/// Raw tar building on the `tar` crate's Builder, with names it would refuse itself.
pub(super) struct Tb {
    pub b: ::tar::Builder<Vec<u8>>,
}

impl Tb {
    pub fn new() -> Self {
        Tb {
            b: ::tar::Builder::new(Vec::new()),
        }
    }

    fn header(kind: ::tar::EntryType, name: &[u8], link: &[u8], mode: u32, size: u64) -> ::tar::Header {
        let mut h = ::tar::Header::new_ustar();
        assert!(name.len() <= 100 && link.len() <= 100, "use pax() for long names");
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(size);
        h.set_cksum();
        h
    }

    pub fn file(&mut self, name: &str, data: &[u8]) -> &mut Self {
        let h = Self::header(
            ::tar::EntryType::Regular,
            name.as_bytes(),
            b"",
            0o644,
            data.len() as u64,
        );
        self.b.append(&h, data).unwrap();
        self
    }

    pub fn dir(&mut self, name: &str) -> &mut Self {
        let h = Self::header(::tar::EntryType::Directory, name.as_bytes(), b"", 0o755, 0);
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::header(::tar::EntryType::Symlink, name.as_bytes(), target.as_bytes(), 0o777, 0);
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn hardlink(&mut self, name: &str, target: &str) -> &mut Self {
        let h = Self::header(::tar::EntryType::Link, name.as_bytes(), target.as_bytes(), 0o644, 0);
        self.b.append(&h, &[][..]).unwrap();
        self
    }

    pub fn pax(&mut self, records: &[(&str, &[u8])]) -> &mut Self {
        self.b
            .append_pax_extensions(records.iter().map(|(k, v)| (*k, *v)))
            .unwrap();
        self
    }

    pub fn finish(&mut self) -> Vec<u8> {
        let mut b = std::mem::replace(&mut self.b, ::tar::Builder::new(Vec::new()));
        b.finish().unwrap();
        b.into_inner().unwrap()
    }
}

/// A temp dir holding an empty `target` to unpack into, beside a `sibling` with a file in
/// it: whatever escapes `target` shows in the listing of the temp dir.
pub(super) struct Sandbox {
    pub tmp: tempfile::TempDir,
    pub target: PathBuf,
}

impl Sandbox {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        std::fs::create_dir(&target).unwrap();
        std::fs::create_dir(tmp.path().join("sibling")).unwrap();
        std::fs::write(tmp.path().join("sibling/file"), b"untouched").unwrap();
        Sandbox { tmp, target }
    }

    /// Everything in the temp dir outside `target`, with contents.
    pub fn outside(&self) -> BTreeMap<Vec<u8>, Node> {
        snapshot(self.tmp.path())
            .nodes
            .into_iter()
            .filter(|(p, _)| p != b"target" && !p.starts_with(b"target/"))
            .map(|(p, mut n)| {
                if n.kind == "dir" {
                    // Listing a directory is fine; what matters is its entries.
                    n.mtime = (0, 0);
                }
                (p, n)
            })
            .collect()
    }
}

/// Runs `f` in a forked child that first enters a new mount namespace and makes every
/// mount private, so nothing it mounts reaches the host's mount table; returns what `f`
/// returned, or its error.
pub(super) fn in_private_mount_ns(f: impl FnOnce() -> Result<String, String>) -> Result<String, String> {
    use nix::mount::{MsFlags, mount};
    use nix::unistd::{ForkResult, fork, pipe};
    let (r, w) = pipe().unwrap();
    // Everything the child needs is prepared; it only makes system calls and small
    // allocations (glibc's malloc is safe after fork).
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            drop(r);
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare: {e}"))?;
                mount(
                    None::<&str>,
                    "/",
                    None::<&str>,
                    MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                    None::<&str>,
                )
                .map_err(|e| format!("making / private: {e}"))?;
                f()
            }));
            let text = match result {
                Ok(Ok(s)) => format!("ok:{s}"),
                Ok(Err(e)) => format!("err:{e}"),
                Err(_) => "err:panicked".to_string(),
            };
            let _ = nix::unistd::write(&w, text.as_bytes());
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(w);
            let mut text = String::new();
            std::fs::File::from(r).read_to_string(&mut text).unwrap();
            nix::sys::wait::waitpid(child, None).unwrap();
            match text.split_once(':') {
                Some(("ok", s)) => Ok(s.to_string()),
                Some((_, e)) => Err(e.to_string()),
                None => Err(format!("the child said {text:?}")),
            }
        }
    }
}

/// Whether a path exists (without following a final symlink).
pub(super) fn exists(p: impl AsRef<Path>) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}

pub(super) fn os(bytes: &[u8]) -> &OsStr {
    OsStr::from_bytes(bytes)
}
