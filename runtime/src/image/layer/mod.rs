//! Image layers: a layer tar unpacked into an overlayfs lower directory, and a directory
//! (an overlay upper dir) packed back into a layer tar.
//!
//! Both directions translate between the two ways of recording a deletion:
//!
//! | in a layer tar (OCI, from AUFS)  | in an overlayfs layer directory             |
//! |----------------------------------|---------------------------------------------|
//! | `dir/.wh.name` (a whiteout)      | `dir/name`, a character device 0:0          |
//! | `dir/.wh..wh..opq` (opaque dir)  | `dir` with xattr `trusted.overlay.opaque=y` |
//!
//! Unpacking treats the tar as hostile. Every path is resolved by the kernel inside the
//! target directory (openat2 with `RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS`), and every file
//! is created with `*at()` calls relative to a descriptor of its parent, never through a
//! host path, so nothing is checked first and used later (no TOCTOU window). What Docker
//! refuses as a "breakout" is refused here with [`LayerError::UnsafePath`]:
//! - an absolute name, or one with a `..` component (`../x`, `a/../../x`);
//! - a name whose parent is a symlink the layer made (`lib -> /usr/lib` then `lib/x`);
//! - a relative symlink whose target climbs out of the layer (`evil -> ../../..`);
//!   absolute symlink targets are created as they are, since they are only ever
//!   resolved later, inside a container's root;
//! - a hardlink whose target is absolute, has `..`, or goes through a symlink.
//!
//! A later entry replaces an earlier one of the same name (a directory over a directory
//! merges, as in Docker), and the replaced symlink is removed, never followed.
//!
//! The tar reader is our own (on the block layout the `tar` crate also reads), so that it
//! reads what Go's `archive/tar` reads, which is what Docker and containerd use: the same
//! precedence of GNU long names over PAX over the header, no data for header-only types
//! whatever their size field says, and a 1 MiB cap on PAX and long-name bodies so a giant
//! extended header cannot exhaust memory.

mod pack;
mod sys;
mod tar;
mod unpack;

#[cfg(test)]
mod tests;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// What [`unpack`] made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unpacked {
    /// sha256 of the uncompressed tar stream (all of it, up to the end of the input).
    pub diff_id: [u8; 32],
    /// Entries created from the tar: regular files, directories, symlinks, hardlinks,
    /// devices and fifos (not whiteouts, not directories only implied by a path).
    pub files: u64,
    /// Bytes of regular-file content written.
    pub bytes: u64,
    /// Whiteouts made (one per `.wh.<name>`) plus directories made opaque.
    pub whiteouts: u64,
    /// Length of the uncompressed tar stream (the layer's uncompressed size).
    pub size: u64,
}

/// What [`pack`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packed {
    /// sha256 of the tar bytes written.
    pub diff_id: [u8; 32],
    /// Number of tar bytes written.
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum LayerError {
    /// The directory to unpack into is missing, not a directory, or not empty.
    #[error("cannot unpack into {}: {reason}", path.display())]
    Target { path: PathBuf, reason: String },
    /// The layer is compressed with something other than gzip.
    #[error("unsupported layer compression: {0} (only plain tar and gzip are supported)")]
    UnsupportedCompression(&'static str),
    /// Reading (or decompressing) the layer failed.
    #[error("reading the layer: {0}")]
    Read(#[source] std::io::Error),
    /// The tar stream is broken: bad checksum, truncated, oversized extended header...
    #[error("malformed layer tar at byte {offset}: {reason}")]
    Malformed { offset: u64, reason: String },
    /// An entry would create, modify or read something outside the layer directory.
    #[error("unsafe path {path:?} in layer: {reason}")]
    UnsafePath { path: String, reason: String },
    /// A hardlink whose target is not an earlier entry of this layer.
    #[error("hardlink {path:?} -> {target:?}: {reason}")]
    Hardlink {
        path: String,
        target: String,
        reason: String,
    },
    /// An entry of a kind layers do not carry (sparse files, tape volumes...), or, when
    /// packing, an overlay feature that cannot be expressed in a layer tar.
    #[error("unsupported entry {path:?}: {reason}")]
    Unsupported { path: String, reason: String },
    /// A filesystem call for one entry failed.
    #[error("{op} {path:?}: {source}")]
    Entry {
        op: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Writing the packed tar failed.
    #[error("writing the layer tar: {0}")]
    Write(#[source] std::io::Error),
}

/// Unpacks a layer (a plain tar, or gzip, detected by its magic bytes) into `dir`, which
/// must exist and be empty, producing a directory ready to serve as an overlayfs lower
/// directory.
///
/// - OCI whiteouts `.wh.<name>` become overlay whiteouts (a character device 0:0 named
///   `<name>`); `.wh..wh..opq` sets `trusted.overlay.opaque=y` on its directory and is not
///   created itself; other `.wh..wh.*` names (AUFS metadata) are skipped. As the OCI spec
///   says, a whiteout only hides lower layers: an entry of the same name in this layer
///   wins whichever comes first.
/// - Regular files, directories, symlinks, hardlinks (to an earlier entry of this layer),
///   character and block devices and fifos are created with the tar's numeric owner,
///   mode (setuid, setgid and sticky included) and mtime; directories get their mode and
///   mtime last, after their contents.
/// - xattrs (PAX `SCHILY.xattr.*`): `user.*`, `security.capability` and POSIX ACLs are
///   kept; `trusted.*` (except `trusted.overlay.opaque`), `user.overlay.*`,
///   `security.selinux` and the rest are skipped. A filesystem that refuses one
///   (EPERM/ENOTSUP) does not fail the layer, as in Docker.
/// - Paths are confined as the module documentation describes; anything that would
///   escape is refused with [`LayerError::UnsafePath`].
///
/// Nothing is fsynced: call `syncfs` once on the store if the layer must survive a crash.
/// On error, `dir` holds a partial layer; the caller removes it.
pub fn unpack(reader: impl Read, dir: &Path) -> Result<Unpacked, LayerError> {
    let mut reader = reader;
    unpack::unpack(&mut reader, dir)
}

/// Packs a directory tree (an overlay upper dir) into an uncompressed layer tar, written
/// to `out` (which is flushed at the end).
///
/// The output is deterministic: names sorted bytewise, depth first; ustar headers, with a
/// PAX header for long names, large ids and xattrs; numeric uid/gid, mode and mtime (whole
/// seconds, as Docker writes them), no user or group names, no atime or ctime. A file
/// linked several times in the tree is written once and then as hardlinks to that first
/// name. Overlay whiteouts (character devices 0:0) become `.wh.<name>`, opaque directories
/// (`trusted.overlay.opaque=y`, or `user.overlay.opaque=y`) get a `.wh..wh..opq` entry
/// right after their own; overlay's private xattrs are not copied. Sockets are skipped.
/// An upper dir made with `redirect_dir` or `metacopy` cannot be packed (its directories
/// and files are not what they say); mount overlays without them.
pub fn pack(dir: &Path, out: impl Write) -> Result<Packed, LayerError> {
    let mut out = out;
    pack::pack(dir, &mut out)
}

/// Lossy text of a tar path, for messages.
fn display(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Prefix of a whiteout entry's name.
const WHITEOUT_PREFIX: &[u8] = b".wh.";
/// Prefix of AUFS metadata names (never files of the image).
const WHITEOUT_META_PREFIX: &[u8] = b".wh..wh.";
/// The entry that marks its directory opaque.
const WHITEOUT_OPAQUE: &[u8] = b".wh..wh..opq";
/// The xattr overlayfs reads to make a directory opaque.
const OPAQUE_XATTR: &[u8] = b"trusted.overlay.opaque";
/// Its unprivileged form (overlay mounted with `userxattr`).
const USER_OPAQUE_XATTR: &[u8] = b"user.overlay.opaque";

/// Which xattrs travel in a layer, either way. Overlay's own are handled apart (opacity),
/// host policy (security.selinux and other LSM labels, trusted.*) never comes from an
/// image.
fn xattr_travels(name: &[u8]) -> bool {
    (name.starts_with(b"user.") && !name.starts_with(b"user.overlay."))
        || name == b"security.capability"
        || name == b"system.posix_acl_access"
        || name == b"system.posix_acl_default"
}
