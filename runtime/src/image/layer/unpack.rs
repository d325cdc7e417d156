//! Unpacking a layer tar into an overlay lower directory.
//!
//! Three threads: the caller's reads (and gunzips) the input in 1 MiB chunks, a second
//! hashes them, a third parses the tar and writes the files, so decompression, hashing
//! and the filesystem work overlap. Directories are held open on a stack
//! of the current directory's ancestors, so each is resolved once, and files are created
//! with one `openat` relative to their parent.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::sync::mpsc::{Receiver, Sender, SyncSender, channel, sync_channel};

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat, openat2};
use nix::sys::stat::{
    FchmodatFlags, Mode, SFlag, UtimensatFlags, fchmod, fchmodat, fstat, fstatat, futimens, makedev, mkdirat, mknodat,
    utimensat,
};
use nix::sys::time::TimeSpec;
use nix::unistd::{Gid, Uid, UnlinkatFlags, fchown, fchownat, linkat, symlinkat, unlinkat};
use sha2::{Digest, Sha256};

use super::tar::{self, BLOCK, Header, MAX_META, Pax};
use super::{
    LayerError, OPAQUE_XATTR, Unpacked, WHITEOUT_META_PREFIX, WHITEOUT_OPAQUE, WHITEOUT_PREFIX, display, sys,
    xattr_travels,
};

/// Size of the chunks handed from the reading thread to the writing one.
const CHUNK: usize = 1 << 20;
/// Chunks in flight between them.
const DEPTH: usize = 4;
/// Ancestors kept open; deeper paths are resolved from the root each time.
const MAX_STACK: usize = 128;

pub(super) fn unpack(reader: &mut dyn Read, dir: &Path) -> Result<Unpacked, LayerError> {
    let root = open_target(dir)?;
    let mut source = decompressor(reader)?;
    // reading (this thread) -> hashing -> writing, each handing chunks to the next; the
    // writer hands the buffers back to be filled again.
    let (tx, hash_rx) = sync_channel::<Chunk>(DEPTH);
    let (hash_tx, rx) = sync_channel::<Chunk>(DEPTH);
    let (back_tx, back_rx) = channel::<Vec<u8>>();

    let (read, hashed, work) = std::thread::scope(|s| {
        let spawn_err = |e| (Ok(()), None, Err(entry_err("starting an unpack thread", b"", e)));
        let worker = std::thread::Builder::new()
            .name("layer-unpack".into())
            .spawn_scoped(s, move || {
                let mut input = Input::new(rx, back_tx);
                let mut unpacker = Unpacker::new(root);
                let result = unpacker.run(&mut input);
                if result.is_ok() {
                    // Whatever follows the end of the archive still counts in the diff_id.
                    input.drain();
                }
                result.map(|()| unpacker.st.stats)
            });
        let worker = match worker {
            Ok(w) => w,
            Err(e) => return spawn_err(e),
        };
        let hasher = std::thread::Builder::new()
            .name("layer-hash".into())
            .spawn_scoped(s, move || {
                let mut hasher = Sha256::new();
                let mut size = 0u64;
                for chunk in hash_rx {
                    hasher.update(&chunk.buf[..chunk.len]);
                    size += chunk.len as u64;
                    if hash_tx.send(chunk).is_err() {
                        break;
                    }
                }
                (hasher.finalize(), size)
            });
        let hasher = match hasher {
            Ok(h) => h,
            Err(e) => return spawn_err(e),
        };
        let read = feed(&mut *source, tx, back_rx);
        let hashed = hasher.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        let work = worker.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (read, Some(hashed), work)
    });
    // A read error explains a truncated archive better than the parser can.
    read?;
    let stats = work?;
    let (diff_id, size) = hashed.expect("the hashing thread ran");
    Ok(Unpacked {
        diff_id: diff_id.into(),
        files: stats.files,
        bytes: stats.bytes,
        whiteouts: stats.whiteouts,
        size,
    })
}

/// Opens the target directory, which must be empty.
fn open_target(dir: &Path) -> Result<OwnedFd, LayerError> {
    let target = |reason: String| LayerError::Target {
        path: dir.to_path_buf(),
        reason,
    };
    let fd = nix::fcntl::open(
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| target(std::io::Error::from(e).to_string()))?;
    let mut listing = nix::dir::Dir::openat(
        &fd,
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| target(std::io::Error::from(e).to_string()))?;
    for entry in listing.iter() {
        let entry = entry.map_err(|e| target(std::io::Error::from(e).to_string()))?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            return Err(target("it is not empty".into()));
        }
    }
    Ok(fd)
}

fn decompressor<'a>(reader: &'a mut dyn Read) -> Result<Box<dyn Read + 'a>, LayerError> {
    let mut magic = [0u8; 6];
    let n = fill(reader, &mut magic).map_err(LayerError::Read)?;
    let head = &magic[..n];
    let chained = std::io::Cursor::new(head.to_vec()).chain(reader);
    if head.starts_with(&[0x1f, 0x8b]) {
        let buffered = BufReader::with_capacity(256 << 10, chained);
        return Ok(Box::new(flate2::bufread::MultiGzDecoder::new(buffered)));
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Err(LayerError::UnsupportedCompression("zstd"));
    }
    if head.starts_with(b"BZh") {
        return Err(LayerError::UnsupportedCompression("bzip2"));
    }
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return Err(LayerError::UnsupportedCompression("xz"));
    }
    Ok(Box::new(chained))
}

/// Reads until `buf` is full or the input ends; the count read.
fn fill(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

struct Chunk {
    buf: Vec<u8>,
    len: usize,
}

/// The reading side: fills chunks and hands them over; stops at the end of the input, or
/// when the others hang up (the writer failed, and says why).
fn feed(src: &mut dyn Read, tx: SyncSender<Chunk>, back: Receiver<Vec<u8>>) -> Result<(), LayerError> {
    loop {
        let mut buf = back.try_recv().unwrap_or_else(|_| vec![0u8; CHUNK]);
        let len = fill(src, &mut buf).map_err(LayerError::Read)?;
        if len == 0 {
            return Ok(());
        }
        let last = len < buf.len();
        if tx.send(Chunk { buf, len }).is_err() || last {
            return Ok(());
        }
    }
}

/// The writing side's view of the stream.
struct Input {
    rx: Receiver<Chunk>,
    back: Sender<Vec<u8>>,
    cur: Vec<u8>,
    len: usize,
    pos: usize,
    /// Stream offset of `cur[pos]`.
    offset: u64,
    ended: bool,
}

impl Input {
    fn new(rx: Receiver<Chunk>, back: Sender<Vec<u8>>) -> Self {
        Input {
            rx,
            back,
            cur: Vec::new(),
            len: 0,
            pos: 0,
            offset: 0,
            ended: false,
        }
    }

    /// Makes bytes available; false at the end of the stream.
    fn ready(&mut self) -> bool {
        while self.pos == self.len {
            if self.ended {
                return false;
            }
            match self.rx.recv() {
                Ok(chunk) => {
                    let old = std::mem::replace(&mut self.cur, chunk.buf);
                    if !old.is_empty() {
                        let _ = self.back.send(old);
                    }
                    self.len = chunk.len;
                    self.pos = 0;
                }
                Err(_) => self.ended = true,
            }
        }
        true
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        self.offset += n as u64;
    }

    fn truncated(&self) -> LayerError {
        LayerError::Malformed {
            offset: self.offset,
            reason: "the tar stream ends in the middle of an entry".into(),
        }
    }

    /// Fills `buf`; Ok(false) if the stream ended before its first byte.
    fn read_block(&mut self, buf: &mut [u8]) -> Result<bool, LayerError> {
        let mut n = 0;
        while n < buf.len() {
            if !self.ready() {
                return if n == 0 { Ok(false) } else { Err(self.truncated()) };
            }
            let k = (self.len - self.pos).min(buf.len() - n);
            buf[n..n + k].copy_from_slice(&self.cur[self.pos..self.pos + k]);
            self.consume(k);
            n += k;
        }
        Ok(true)
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<(), LayerError> {
        if buf.is_empty() || self.read_block(buf)? {
            Ok(())
        } else {
            Err(self.truncated())
        }
    }

    /// Passes the next `n` bytes to `sink`, in the slices they arrived in.
    fn copy(&mut self, mut n: u64, sink: &mut dyn FnMut(&[u8]) -> Result<(), LayerError>) -> Result<(), LayerError> {
        while n > 0 {
            if !self.ready() {
                return Err(self.truncated());
            }
            let k = ((self.len - self.pos) as u64).min(n) as usize;
            sink(&self.cur[self.pos..self.pos + k])?;
            self.consume(k);
            n -= k as u64;
        }
        Ok(())
    }

    fn skip(&mut self, n: u64) -> Result<(), LayerError> {
        self.copy(n, &mut |_| Ok(()))
    }

    fn drain(&mut self) {
        while self.ready() {
            self.consume(self.len - self.pos);
        }
    }
}

#[derive(Default, Clone, Copy)]
struct Stats {
    files: u64,
    bytes: u64,
    whiteouts: u64,
}

/// One entry, with its extended headers applied.
struct Entry {
    typeflag: u8,
    name: Vec<u8>,
    link: Vec<u8>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: TimeSpec,
    rdev: u64,
    data: u64,
    xattrs: Vec<(Vec<u8>, Vec<u8>)>,
}

/// A directory whose mode and mtime are set at the end, after its contents.
struct DirFix {
    path: Vec<u8>,
    mode: u32,
    chmod: bool,
    mtime: TimeSpec,
}

fn entry_err(op: &'static str, path: &[u8], e: impl Into<std::io::Error>) -> LayerError {
    LayerError::Entry {
        op,
        path: display(path),
        source: e.into(),
    }
}

fn unsafe_path(path: &[u8], reason: impl Into<String>) -> LayerError {
    LayerError::UnsafePath {
        path: display(path),
        reason: reason.into(),
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY).union(OFlag::O_CLOEXEC);

/// Resolution that stays inside the layer and refuses symlinks anywhere on the way.
fn confined() -> ResolveFlag {
    ResolveFlag::RESOLVE_IN_ROOT
        | ResolveFlag::RESOLVE_NO_SYMLINKS
        | ResolveFlag::RESOLVE_NO_MAGICLINKS
        | ResolveFlag::RESOLVE_NO_XDEV
}

/// Opens an existing directory `path` (normalized, relative) inside `root`.
fn open_dir_in(root: BorrowedFd<'_>, path: &[u8]) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new().flags(DIR_FLAGS).resolve(confined());
    loop {
        match openat2(root, path, how) {
            // The kernel asks for a retry when a rename raced with the lookup.
            Err(Errno::EAGAIN) => continue,
            other => return other,
        }
    }
}

/// Splits a tar name into components, refusing names that could leave the root; the
/// error is the reason, about `what`.
fn components<'a>(name: &'a [u8], what: &str) -> Result<Vec<&'a [u8]>, String> {
    if name.first() == Some(&b'/') {
        return Err(format!("{what} is an absolute path"));
    }
    let mut out = Vec::new();
    for c in name.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(format!("{what} has a `..` component")),
            c => out.push(c),
        }
    }
    Ok(out)
}

/// Whether a relative symlink target climbs above the layer's root from a link whose
/// directory is `depth` levels down (Docker refuses these as breakouts).
fn symlink_escapes(depth: usize, target: &[u8]) -> bool {
    if target.first() == Some(&b'/') {
        return false;
    }
    let mut depth = depth as i64;
    for c in target.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                depth -= 1;
                if depth < 0 {
                    return true;
                }
            }
            _ => depth += 1,
        }
    }
    false
}

/// The open ancestors of the directory being filled.
struct Dirs {
    root: OwnedFd,
    /// `stack[i]` is a directory `i + 1` components deep, each the parent of the next.
    stack: Vec<(Vec<u8>, OwnedFd)>,
    /// The parent of an entry deeper than the stack goes.
    spare: Option<OwnedFd>,
    /// Mode to restore on implied directories the umask would narrow.
    fix_implied: bool,
}

impl Dirs {
    /// A descriptor of the (normalized) directory `parent`, whose components are `comps`,
    /// creating missing directories (mode 0755, as Docker does for implied ones).
    fn resolve(&mut self, parent: &[u8], comps: &[&[u8]], entry: &[u8]) -> Result<BorrowedFd<'_>, LayerError> {
        // Afterwards the stack is exactly the chain of `parent`'s ancestors (or empty for
        // a deep one), so an entry replacing a child of `parent` never pulls a directory
        // from under it.
        while let Some((path, _)) = self.stack.last() {
            let ancestor = parent.starts_with(path) && (parent.len() == path.len() || parent[path.len()] == b'/');
            if ancestor && comps.len() <= MAX_STACK {
                break;
            }
            self.stack.pop();
        }
        if comps.is_empty() {
            return Ok(self.root.as_fd());
        }
        if comps.len() > MAX_STACK {
            let mut fd = self.open_or_create(self.root.as_fd(), comps[0], &comps[..1], entry)?;
            for i in 1..comps.len() {
                fd = self.open_or_create(fd.as_fd(), comps[i], &comps[..=i], entry)?;
            }
            return Ok(OwnedFd::as_fd(self.spare.insert(fd)));
        }
        for i in self.stack.len()..comps.len() {
            let fd = {
                let base = self.stack.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd());
                self.open_or_create(base, comps[i], &comps[..=i], entry)?
            };
            self.stack.push((comps[..=i].join(&b'/'), fd));
        }
        Ok(self.stack.last().map_or(self.root.as_fd(), |(_, fd)| fd.as_fd()))
    }

    fn open_or_create(
        &self,
        base: BorrowedFd<'_>,
        name: &[u8],
        so_far: &[&[u8]],
        entry: &[u8],
    ) -> Result<OwnedFd, LayerError> {
        let mut created = false;
        loop {
            match open_dir_in(base, name) {
                Ok(fd) => {
                    if created && self.fix_implied {
                        fchmod(fd.as_fd(), Mode::from_bits_truncate(0o755))
                            .map_err(|e| entry_err("chmod of an implied directory", entry, e))?;
                    }
                    return Ok(fd);
                }
                Err(Errno::ENOENT) if !created => match mkdirat(base, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(Errno::EEXIST) => created = true,
                    Err(e) => return Err(entry_err("creating an implied directory", entry, e)),
                },
                Err(Errno::ELOOP) => {
                    let link = display(&so_far.join(&b'/'));
                    return Err(unsafe_path(entry, format!("its parent {link:?} is a symlink")));
                }
                Err(Errno::EXDEV) => return Err(unsafe_path(entry, "its parent crosses a mount point")),
                Err(Errno::ENOTDIR) => {
                    let what = display(&so_far.join(&b'/'));
                    return Err(entry_err(
                        "resolving the parent directory",
                        entry,
                        std::io::Error::other(format!("{what:?} is not a directory")),
                    ));
                }
                Err(e) => return Err(entry_err("resolving the parent directory", entry, e)),
            }
        }
    }

    /// Keeps a directory just made open, when it extends the ancestor chain.
    fn push(&mut self, path: Vec<u8>, depth: usize, fd: OwnedFd) {
        if depth == self.stack.len() + 1 && depth <= MAX_STACK {
            self.stack.push((path, fd));
        }
    }
}

/// What the worker knows besides the open directories.
struct State {
    stats: Stats,
    fixes: Vec<DirFix>,
    euid: u32,
    egid: u32,
    umask: Option<u32>,
    /// New files get our ids and `perm & !umask`: true unless the root is setgid or a
    /// default ACL is around, in which case every owner and mode is set explicitly.
    predictable: bool,
}

impl State {
    fn needs_chown(&self, uid: u32, gid: u32) -> bool {
        !(self.predictable && uid == self.euid && gid == self.egid)
    }

    /// Whether a node created with `created` permission bits needs a chmod to get `mode`.
    fn needs_chmod(&self, created: u32, mode: u32) -> bool {
        match self.umask {
            Some(umask) if self.predictable => created & !umask != mode,
            _ => true,
        }
    }

    fn xattr_wanted(&mut self, name: &[u8], value: &[u8]) -> bool {
        if name == b"system.posix_acl_default" {
            self.predictable = false;
        }
        xattr_travels(name) || (name == OPAQUE_XATTR && value == b"y")
    }

    /// Sets the entry's xattrs, through `fd` or by name in `parent`; a filesystem that
    /// refuses one (EPERM, ENOTSUP) is let be, as in Docker.
    fn set_xattrs(
        &mut self,
        e: &Entry,
        fd: Option<BorrowedFd<'_>>,
        parent: BorrowedFd<'_>,
        name: &[u8],
    ) -> Result<(), LayerError> {
        for (key, value) in &e.xattrs {
            if !self.xattr_wanted(key, value) {
                continue;
            }
            let r = match fd {
                Some(fd) => sys::fset(fd, key, value),
                None => sys::set_at(parent, name, key, value),
            };
            match r {
                Err(err) if matches!(err.raw_os_error(), Some(libc::EPERM | libc::ENOTSUP)) => {}
                Err(err) => return Err(entry_err("setting an xattr on", &e.name, err)),
                Ok(()) => {}
            }
        }
        Ok(())
    }

    /// Owner, mode, xattrs and mtime of a regular file, in the order that keeps them all
    /// (chown clears setuid bits and file capabilities).
    fn finish_file(&mut self, e: &Entry, file: &File, parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), LayerError> {
        if self.needs_chown(e.uid, e.gid) {
            fchown(file, Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid)))
                .map_err(|err| entry_err("chown", &e.name, err))?;
        }
        if self.needs_chmod(e.mode & 0o777, e.mode) {
            fchmod(file, Mode::from_bits_truncate(e.mode)).map_err(|err| entry_err("chmod", &e.name, err))?;
        }
        self.set_xattrs(e, Some(file.as_fd()), parent, name)?;
        futimens(file, &e.mtime, &e.mtime).map_err(|err| entry_err("setting the mtime of", &e.name, err))
    }

    /// The same for a node that is not opened (symlink, device, fifo, whiteout).
    fn finish_node(
        &mut self,
        e: &Entry,
        parent: BorrowedFd<'_>,
        name: &[u8],
        created: Option<u32>,
        xattrs: bool,
    ) -> Result<(), LayerError> {
        if self.needs_chown(e.uid, e.gid) {
            fchownat(
                parent,
                name,
                Some(Uid::from_raw(e.uid)),
                Some(Gid::from_raw(e.gid)),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .map_err(|err| entry_err("chown", &e.name, err))?;
        }
        if let Some(created) = created
            && self.needs_chmod(created, e.mode)
        {
            fchmodat(
                parent,
                name,
                Mode::from_bits_truncate(e.mode),
                FchmodatFlags::NoFollowSymlink,
            )
            .map_err(|err| entry_err("chmod", &e.name, err))?;
        }
        if xattrs {
            self.set_xattrs(e, None, parent, name)?;
        }
        utimensat(parent, name, &e.mtime, &e.mtime, UtimensatFlags::NoFollowSymlink)
            .map_err(|err| entry_err("setting the mtime of", &e.name, err))
    }
}

/// `name` exists in `parent` and a new entry wants its place: removes it, unless both are
/// directories (then they merge, and this says true).
fn make_room(parent: BorrowedFd<'_>, name: &[u8], new_is_dir: bool, path: &[u8]) -> Result<bool, LayerError> {
    let st = fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW).map_err(|e| entry_err("replacing", path, e))?;
    let is_dir = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR;
    if is_dir && new_is_dir {
        return Ok(true);
    }
    if is_dir {
        remove_tree(parent, name).map_err(|e| entry_err("replacing the directory", path, e))?;
    } else {
        unlinkat(parent, name, UnlinkatFlags::NoRemoveDir).map_err(|e| entry_err("replacing", path, e))?;
    }
    Ok(false)
}

/// `rm -r` of `name` in `parent`, through descriptors only (never following a symlink).
fn remove_tree(parent: BorrowedFd<'_>, name: &[u8]) -> Result<(), Errno> {
    let fd = openat(parent, name, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty())?;
    let mut dir = nix::dir::Dir::from_fd(fd)?;
    let mut names = Vec::new();
    for entry in dir.iter() {
        let entry = entry?;
        let n = entry.file_name().to_bytes();
        if n != b"." && n != b".." {
            names.push(n.to_vec());
        }
    }
    for n in &names {
        match unlinkat(dir.as_fd(), n.as_slice(), UnlinkatFlags::NoRemoveDir) {
            Err(Errno::EISDIR) => remove_tree(dir.as_fd(), n)?,
            other => other?,
        }
    }
    unlinkat(parent, name, UnlinkatFlags::RemoveDir)
}

struct Unpacker {
    dirs: Dirs,
    st: State,
}

impl Unpacker {
    fn new(root: OwnedFd) -> Self {
        let umask = sys::umask();
        // A setgid root, or one with a default ACL, makes new files' group and mode
        // depend on it rather than on us.
        let root_mode = fstat(&root).map(|st| st.st_mode).unwrap_or(libc::S_ISGID);
        let acl = sys::fget(root.as_fd(), b"system.posix_acl_default")
            .ok()
            .flatten()
            .is_some();
        let predictable = root_mode & libc::S_ISGID == 0 && !acl;
        Unpacker {
            dirs: Dirs {
                root,
                stack: Vec::new(),
                spare: None,
                fix_implied: umask.is_none_or(|u| u & 0o755 != 0),
            },
            st: State {
                stats: Stats::default(),
                fixes: Vec::new(),
                euid: nix::unistd::geteuid().as_raw(),
                egid: nix::unistd::getegid().as_raw(),
                umask,
                predictable,
            },
        }
    }

    fn run(&mut self, input: &mut Input) -> Result<(), LayerError> {
        let mut pax: Option<Pax> = None;
        let mut long_name: Option<Vec<u8>> = None;
        let mut long_link: Option<Vec<u8>> = None;
        let mut block = [0u8; BLOCK];
        loop {
            let at = input.offset;
            if !input.read_block(&mut block)? {
                break;
            }
            if tar::is_zero(&block) {
                // Two zero blocks end the archive (so does the end of the input); a zero
                // block and then anything else is an error, as in Go.
                if input.read_block(&mut block)? && !tar::is_zero(&block) {
                    return Err(LayerError::Malformed {
                        offset: at + BLOCK as u64,
                        reason: "a zero block followed by a non-zero block".into(),
                    });
                }
                break;
            }
            let h = tar::parse_header(&block).map_err(|reason| LayerError::Malformed { offset: at, reason })?;
            if matches!(
                h.typeflag,
                tar::PAX_LOCAL | tar::PAX_GLOBAL | tar::GNU_LONGNAME | tar::GNU_LONGLINK
            ) {
                if h.size > MAX_META {
                    return Err(LayerError::Malformed {
                        offset: at,
                        reason: format!("an extended header of {} bytes (the limit is {MAX_META})", h.size),
                    });
                }
                let mut body = vec![0u8; h.size as usize];
                input.read_exact(&mut body)?;
                input.skip(tar::padding(h.size))?;
                let malformed = |reason| LayerError::Malformed { offset: at, reason };
                match h.typeflag {
                    tar::PAX_LOCAL => pax = Some(tar::parse_pax(&body).map_err(malformed)?),
                    // Global headers are read (a broken one is an error) and ignored, as
                    // Docker does.
                    tar::PAX_GLOBAL => drop(tar::parse_pax(&body).map_err(malformed)?),
                    tar::GNU_LONGNAME => long_name = Some(cut_nul(body)),
                    _ => long_link = Some(cut_nul(body)),
                }
                continue;
            }
            let e = merge(h, pax.take(), long_name.take(), long_link.take(), at)?;
            let start = input.offset;
            self.entry(&e, input)?;
            let used = input.offset - start;
            input.skip(e.data - used + tar::padding(e.data))?;
        }
        // Extended headers left with no entry after them are ignored, as Go does.
        self.fix_dirs()
    }

    fn entry(&mut self, e: &Entry, input: &mut Input) -> Result<(), LayerError> {
        let comps = components(&e.name, "the name").map_err(|reason| unsafe_path(&e.name, reason))?;
        let Some((&base, dir_comps)) = comps.split_last() else {
            // "./": the layer root. Its metadata is the target's, as in containerd.
            return match e.typeflag {
                tar::DIR => Ok(()),
                _ => Err(unsafe_path(&e.name, "a non-directory entry names the layer root")),
            };
        };
        let path = comps.join(&b'/');
        let parent_path: &[u8] = if dir_comps.is_empty() {
            b""
        } else {
            &path[..path.len() - base.len() - 1]
        };

        if comps.iter().any(|c| c.starts_with(WHITEOUT_META_PREFIX)) {
            if base == WHITEOUT_OPAQUE && !dir_comps.iter().any(|c| c.starts_with(WHITEOUT_META_PREFIX)) {
                return self.opaque(e, parent_path, dir_comps);
            }
            // AUFS bookkeeping (.wh..wh.plnk, .wh..wh.aufs): not part of the image.
            return Ok(());
        }
        if let Some(hidden) = base.strip_prefix(WHITEOUT_PREFIX) {
            return self.whiteout(e, hidden, parent_path, dir_comps);
        }
        match e.typeflag {
            tar::REGULAR => self.regular(e, base, parent_path, dir_comps, input),
            tar::DIR => self.directory(e, base, &path, parent_path, dir_comps),
            tar::SYMLINK => self.symlink(e, base, parent_path, dir_comps),
            tar::HARDLINK => self.hardlink(e, base, parent_path, dir_comps),
            tar::CHAR | tar::BLOCKDEV | tar::FIFO => self.node(e, base, parent_path, dir_comps),
            tar::GNU_SPARSE => Err(unsupported(e, "GNU sparse files are not supported")),
            other => Err(unsupported(
                e,
                &format!("tar entry type {:?} is not supported", other as char),
            )),
        }
    }

    fn regular(
        &mut self,
        e: &Entry,
        base: &[u8],
        parent_path: &[u8],
        dir_comps: &[&[u8]],
        input: &mut Input,
    ) -> Result<(), LayerError> {
        let parent = self.dirs.resolve(parent_path, dir_comps, &e.name)?;
        let flags = OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
        let perm = Mode::from_bits_truncate(e.mode & 0o777);
        let mut retried = false;
        let fd = loop {
            match openat(parent, base, flags, perm) {
                Ok(fd) => break fd,
                Err(Errno::EEXIST) if !retried => {
                    make_room(parent, base, false, &e.name)?;
                    retried = true;
                }
                Err(err) => return Err(entry_err("creating", &e.name, err)),
            }
        };
        let mut file = File::from(fd);
        input.copy(e.data, &mut |bytes| {
            file.write_all(bytes).map_err(|err| entry_err("writing", &e.name, err))
        })?;
        self.st.finish_file(e, &file, parent, base)?;
        self.st.stats.files += 1;
        self.st.stats.bytes += e.data;
        Ok(())
    }

    fn directory(
        &mut self,
        e: &Entry,
        base: &[u8],
        path: &[u8],
        parent_path: &[u8],
        dir_comps: &[&[u8]],
    ) -> Result<(), LayerError> {
        let parent = self.dirs.resolve(parent_path, dir_comps, &e.name)?;
        // Owner-writable until the end, so a read-only directory can still be filled.
        let created_perm = (e.mode | 0o700) & 0o777;
        let mut merged = false;
        let mut retried = false;
        loop {
            match mkdirat(parent, base, Mode::from_bits_truncate(created_perm)) {
                Ok(()) => break,
                Err(Errno::EEXIST) if !retried => {
                    merged = make_room(parent, base, true, &e.name)?;
                    if merged {
                        break;
                    }
                    retried = true;
                }
                Err(err) => return Err(entry_err("creating the directory", &e.name, err)),
            }
        }
        let fd = openat(parent, base, DIR_FLAGS | OFlag::O_NOFOLLOW, Mode::empty())
            .map_err(|err| entry_err("opening the directory", &e.name, err))?;
        if self.st.needs_chown(e.uid, e.gid) || merged {
            fchown(&fd, Some(Uid::from_raw(e.uid)), Some(Gid::from_raw(e.gid)))
                .map_err(|err| entry_err("chown", &e.name, err))?;
        }
        self.st.set_xattrs(e, Some(fd.as_fd()), parent, base)?;
        let chmod = merged || self.st.needs_chmod(created_perm, e.mode);
        self.st.fixes.push(DirFix {
            path: path.to_vec(),
            mode: e.mode,
            chmod,
            mtime: e.mtime,
        });
        self.st.stats.files += 1;
        self.dirs.push(path.to_vec(), dir_comps.len() + 1, fd);
        Ok(())
    }

    fn symlink(&mut self, e: &Entry, base: &[u8], parent_path: &[u8], dir_comps: &[&[u8]]) -> Result<(), LayerError> {
        if symlink_escapes(dir_comps.len(), &e.link) {
            return Err(unsafe_path(
                &e.name,
                format!("its symlink target {:?} points outside the layer", display(&e.link)),
            ));
        }
        let parent = self.dirs.resolve(parent_path, dir_comps, &e.name)?;
        let mut retried = false;
        loop {
            match symlinkat(e.link.as_slice(), parent, base) {
                Ok(()) => break,
                Err(Errno::EEXIST) if !retried => {
                    make_room(parent, base, false, &e.name)?;
                    retried = true;
                }
                Err(err) => return Err(entry_err("creating the symlink", &e.name, err)),
            }
        }
        self.st.finish_node(e, parent, base, None, true)?;
        self.st.stats.files += 1;
        Ok(())
    }

    fn hardlink(&mut self, e: &Entry, base: &[u8], parent_path: &[u8], dir_comps: &[&[u8]]) -> Result<(), LayerError> {
        let bad = |reason: &str| LayerError::Hardlink {
            path: display(&e.name),
            target: display(&e.link),
            reason: reason.into(),
        };
        let what = format!("its hardlink target {:?}", display(&e.link));
        let tcomps = components(&e.link, &what).map_err(|reason| unsafe_path(&e.name, reason))?;
        let Some((&tbase, tdir)) = tcomps.split_last() else {
            return Err(unsafe_path(&e.name, "a hardlink to the layer root"));
        };
        let tparent_path = tdir.join(&b'/');
        // The target must be in this layer already: it is looked up, never created, and
        // through no symlink.
        let tparent = match open_dir_in(
            self.dirs.root.as_fd(),
            if tdir.is_empty() { b"." } else { &tparent_path },
        ) {
            Ok(fd) => fd,
            Err(Errno::ELOOP) | Err(Errno::EXDEV) => {
                return Err(unsafe_path(
                    &e.name,
                    format!("its hardlink target {:?} is through a symlink", display(&e.link)),
                ));
            }
            Err(Errno::ENOENT) | Err(Errno::ENOTDIR) => {
                return Err(bad("the target is not an earlier entry of this layer"));
            }
            Err(err) => return Err(entry_err("resolving the hardlink target of", &e.name, err)),
        };
        let parent = self.dirs.resolve(parent_path, dir_comps, &e.name)?;
        let mut retried = false;
        loop {
            match linkat(&tparent, tbase, parent, base, AtFlags::empty()) {
                Ok(()) => break,
                Err(Errno::EEXIST) if !retried => {
                    let same = |fd: BorrowedFd<'_>, n: &[u8]| {
                        fstatat(fd, n, AtFlags::AT_SYMLINK_NOFOLLOW)
                            .map(|st| (st.st_dev, st.st_ino))
                            .ok()
                    };
                    if same(tparent.as_fd(), tbase).is_some() && same(tparent.as_fd(), tbase) == same(parent, base) {
                        break;
                    }
                    make_room(parent, base, false, &e.name)?;
                    retried = true;
                }
                Err(Errno::ENOENT) => return Err(bad("the target is not an earlier entry of this layer")),
                Err(Errno::EPERM) => return Err(bad("the target is a directory")),
                Err(err) => return Err(entry_err("creating the hardlink", &e.name, err)),
            }
        }
        self.st.stats.files += 1;
        Ok(())
    }

    fn node(&mut self, e: &Entry, base: &[u8], parent_path: &[u8], dir_comps: &[&[u8]]) -> Result<(), LayerError> {
        let kind = match e.typeflag {
            tar::CHAR => SFlag::S_IFCHR,
            tar::BLOCKDEV => SFlag::S_IFBLK,
            _ => SFlag::S_IFIFO,
        };
        let parent = self.dirs.resolve(parent_path, dir_comps, &e.name)?;
        let perm = e.mode & 0o777;
        let mut retried = false;
        loop {
            match mknodat(parent, base, kind, Mode::from_bits_truncate(perm), e.rdev) {
                Ok(()) => break,
                Err(Errno::EEXIST) if !retried => {
                    make_room(parent, base, false, &e.name)?;
                    retried = true;
                }
                Err(err) => return Err(entry_err("creating the device node", &e.name, err)),
            }
        }
        self.st.finish_node(e, parent, base, Some(perm), true)?;
        self.st.stats.files += 1;
        Ok(())
    }

    /// `.wh.<hidden>`: an overlay whiteout, a character device 0:0 named `<hidden>`.
    fn whiteout(
        &mut self,
        e: &Entry,
        hidden: &[u8],
        parent_path: &[u8],
        dir_comps: &[&[u8]],
    ) -> Result<(), LayerError> {
        match hidden {
            b"" | b"." => return Err(unsafe_path(&e.name, "a whiteout of nothing")),
            b".." => return Err(unsafe_path(&e.name, "a whiteout of `..`")),
            _ => {}
        }
        let parent = self.dirs.resolve(parent_path, dir_comps, &e.name)?;
        match mknodat(parent, hidden, SFlag::S_IFCHR, Mode::empty(), makedev(0, 0)) {
            Ok(()) => {}
            // A whiteout hides lower layers only: what this layer has of that name stays.
            Err(Errno::EEXIST) => return Ok(()),
            Err(err) => return Err(entry_err("creating the whiteout", &e.name, err)),
        }
        self.st.finish_node(e, parent, hidden, None, false)?;
        self.st.stats.whiteouts += 1;
        Ok(())
    }

    /// `.wh..wh..opq`: its directory hides the lower layers' contents.
    fn opaque(&mut self, e: &Entry, parent_path: &[u8], dir_comps: &[&[u8]]) -> Result<(), LayerError> {
        let parent = self.dirs.resolve(parent_path, dir_comps, &e.name)?;
        sys::fset(parent, OPAQUE_XATTR, b"y")
            .map_err(|err| entry_err("making opaque the directory of", &e.name, err))?;
        self.st.stats.whiteouts += 1;
        Ok(())
    }

    /// Directory modes and mtimes, now that their contents are in.
    fn fix_dirs(&mut self) -> Result<(), LayerError> {
        let root = self.dirs.root.as_fd();
        for fix in &self.st.fixes {
            let fd = match open_dir_in(root, &fix.path) {
                Ok(fd) => fd,
                // Replaced later in the tar by something else: that one won.
                Err(Errno::ENOENT | Errno::ENOTDIR | Errno::ELOOP) => continue,
                Err(err) => return Err(entry_err("reopening the directory", &fix.path, err)),
            };
            if fix.chmod {
                fchmod(&fd, Mode::from_bits_truncate(fix.mode)).map_err(|err| entry_err("chmod", &fix.path, err))?;
            }
            futimens(&fd, &fix.mtime, &fix.mtime).map_err(|err| entry_err("setting the mtime of", &fix.path, err))?;
        }
        Ok(())
    }
}

fn unsupported(e: &Entry, reason: &str) -> LayerError {
    LayerError::Unsupported {
        path: display(&e.name),
        reason: reason.into(),
    }
}

fn cut_nul(mut body: Vec<u8>) -> Vec<u8> {
    if let Some(n) = body.iter().position(|&b| b == 0) {
        body.truncate(n);
    }
    body
}

/// Applies the extended headers to a header, with Go's precedence: GNU long names over
/// PAX records over the header's own fields.
fn merge(
    h: Header,
    pax: Option<Pax>,
    long_name: Option<Vec<u8>>,
    long_link: Option<Vec<u8>>,
    at: u64,
) -> Result<Entry, LayerError> {
    let pax = pax.unwrap_or_default();
    let mut name = h.name;
    let mut link = h.link;
    if let Some(p) = pax.path {
        name = p;
    }
    if let Some(l) = pax.linkpath {
        link = l;
    }
    if let Some(n) = long_name {
        name = n;
    }
    if let Some(l) = long_link {
        link = l;
    }
    let mut typeflag = h.typeflag;
    if typeflag == tar::REGULAR_OLD {
        typeflag = if name.ends_with(b"/") { tar::DIR } else { tar::REGULAR };
    }
    if pax.sparse {
        return Err(LayerError::Unsupported {
            path: display(&name),
            reason: "PAX sparse files are not supported".into(),
        });
    }
    let id = |v: u64, what: &str| -> Result<u32, LayerError> {
        u32::try_from(v)
            .ok()
            .filter(|&v| v != u32::MAX)
            .ok_or_else(|| LayerError::Malformed {
                offset: at,
                reason: format!("{what} {v} of {:?} is out of range", display(&name)),
            })
    };
    let uid = id(pax.uid.unwrap_or(h.uid), "uid")?;
    let gid = id(pax.gid.unwrap_or(h.gid), "gid")?;
    let (secs, nanos) = pax.mtime.unwrap_or((h.mtime, 0));
    let size = pax.size.unwrap_or(h.size);
    let data = if Header::header_only(typeflag) { 0 } else { size };
    Ok(Entry {
        typeflag,
        name,
        link,
        mode: h.mode,
        uid,
        gid,
        mtime: TimeSpec::new(secs, nanos as _),
        rdev: makedev(h.devmajor, h.devminor),
        data,
        xattrs: pax.xattrs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_split_and_escapes_refused() {
        assert_eq!(components(b"./a//b/./c/", "n").unwrap(), vec![&b"a"[..], b"b", b"c"]);
        assert!(components(b"./", "n").unwrap().is_empty());
        assert_eq!(
            components(b"/etc/passwd", "n"),
            Err("n is an absolute path".to_string())
        );
        assert_eq!(components(b"a/../../x", "n"), Err("n has a `..` component".to_string()));
        assert!(components(b"..", "n").is_err());
        assert!(components(b"a/..b/.c", "n").is_ok());
    }

    #[test]
    fn symlink_targets_that_climb_out() {
        assert!(!symlink_escapes(0, b"/"));
        assert!(!symlink_escapes(0, b"/etc/../../.."));
        assert!(symlink_escapes(0, b".."));
        assert!(symlink_escapes(0, b"../../../../etc"));
        assert!(!symlink_escapes(2, b"../../bin/busybox"));
        assert!(symlink_escapes(2, b"../../../bin/busybox"));
        assert!(symlink_escapes(1, b"a/../../.."));
        assert!(!symlink_escapes(0, b"a/.."));
    }
}
