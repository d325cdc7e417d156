//! Compiled filters, cached in memory and on disk.
//!
//! The key is the SHA-256 of the spec's JSON. On disk a filter is `<dir>/<sha256>.bpf`:
//!
//! ```text
//! magic "SLPWBPF\x01" | revision u32 | arch [u8; 16] | libseccomp major, minor, micro u32
//! | flags u32 | count u32 | sha256 of the instructions [u8; 32] | count × sock_filter
//! ```
//!
//! (integers in native byte order; the instructions as the kernel reads them). A file
//! whose header does not match this build, architecture and libseccomp, or whose
//! checksum fails, is treated as missing: the spec is compiled again and the file
//! replaced. Files are written to a temporary name and renamed into place, so readers
//! never see half a file; a crash may leave a stray `.tmp` but never a bad `.bpf`. The
//! checksum catches accidents (truncation, bit rot), not an attacker: the directory
//! must be writable by the runtime only.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use oci_spec::runtime::LinuxSeccomp;
use sha2::{Digest, Sha256};

use super::compile::{Compiled, MAX_INSTRUCTIONS, instruction_bytes, parse_instructions};
use super::{Filter, SeccompError};

const MAGIC: &[u8; 8] = b"SLPWBPF\x01";
/// Bump when the compiler's output changes for the same spec (e.g. a new stub).
const REVISION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 16 + 12 + 4 + 4 + 32;

pub(crate) type Key = [u8; 32];

pub(crate) fn key(spec: &LinuxSeccomp) -> Result<Key, SeccompError> {
    let json = serde_json::to_vec(spec)?;
    Ok(Sha256::digest(&json).into())
}

pub(crate) fn file_path(dir: &Path, key: &Key) -> PathBuf {
    dir.join(format!("{}.bpf", hex::encode(key)))
}

static MEMORY: LazyLock<Mutex<HashMap<Key, Filter>>> = LazyLock::new(Default::default);

pub(crate) fn memory_get(key: &Key) -> Option<Filter> {
    let map = MEMORY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.get(key).cloned()
}

pub(crate) fn memory_put(key: Key, filter: &Filter) {
    let mut map = MEMORY.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    map.insert(key, filter.clone());
}

fn arch_tag() -> [u8; 16] {
    let mut tag = [0u8; 16];
    let arch = std::env::consts::ARCH.as_bytes();
    let n = arch.len().min(tag.len());
    tag[..n].copy_from_slice(&arch[..n]);
    tag
}

fn libseccomp_version() -> [u32; 3] {
    libseccomp::ScmpVersion::current()
        .map(|v| [v.major, v.minor, v.micro])
        .unwrap_or_default()
}

pub(crate) fn encode(compiled: &Compiled) -> Vec<u8> {
    let body = instruction_bytes(&compiled.program);
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&REVISION.to_ne_bytes());
    out.extend_from_slice(&arch_tag());
    for part in libseccomp_version() {
        out.extend_from_slice(&part.to_ne_bytes());
    }
    out.extend_from_slice(&compiled.flags.to_ne_bytes());
    out.extend_from_slice(&(compiled.program.len() as u32).to_ne_bytes());
    out.extend_from_slice(&Sha256::digest(&body));
    out.extend_from_slice(&body);
    out
}

/// The filter in `bytes`, or `None` if they are not a valid file for this build.
pub(crate) fn decode(bytes: &[u8]) -> Option<Compiled> {
    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap())
    }
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC || u32_at(bytes, 8) != REVISION {
        return None;
    }
    if bytes[12..28] != arch_tag() {
        return None;
    }
    let version = [u32_at(bytes, 28), u32_at(bytes, 32), u32_at(bytes, 36)];
    if version != libseccomp_version() {
        return None;
    }
    let flags = u32_at(bytes, 40);
    let count = u32_at(bytes, 44) as usize;
    let checksum = &bytes[48..80];
    let body = &bytes[HEADER_LEN..];
    if count == 0 || count > MAX_INSTRUCTIONS || body.len() != count * 8 {
        return None;
    }
    if Sha256::digest(body)[..] != *checksum {
        return None;
    }
    let program = parse_instructions(body)?;
    Some(Compiled { program, flags })
}

/// Reads a cached filter: `Ok(None)` if the file is missing or unusable.
pub(crate) fn read(path: &Path) -> Result<Option<Compiled>, SeccompError> {
    match std::fs::read(path) {
        Ok(bytes) => {
            let compiled = decode(&bytes);
            if compiled.is_none() {
                tracing::warn!(path = %path.display(), "seccomp cache file is invalid or stale; recompiling");
            }
            Ok(compiled)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SeccompError::Cache {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Writes `compiled` to `path` atomically (a temporary file in the same directory,
/// then a rename over `path`).
pub(crate) fn write(path: &Path, compiled: &Compiled) -> Result<(), SeccompError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    let cache_err = |path: &Path, source| SeccompError::Cache {
        path: path.to_owned(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(|e| cache_err(dir, e))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("filter");
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut file| file.write_all(&encode(compiled)))
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(cache_err(path, e));
    }
    Ok(())
}

pub(crate) fn to_filter(compiled: Compiled) -> Filter {
    Filter {
        program: Arc::from(compiled.program),
        flags: compiled.flags,
    }
}
