//! The reading side: file naming, consistent snapshots, forward and backward line readers.

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::ops::ControlFlow;
use std::os::unix::fs::{FileExt as _, MetadataExt as _};
use std::path::{Path, PathBuf};

use super::format::decode_entry;
use super::{LogEntry, ReadOptions};

/// Block size for reading files, forwards and backwards.
const BLOCK: usize = 64 * 1024;

/// How often a snapshot or a successor search is retried while rotations keep moving files.
pub(super) const RACE_ATTEMPTS: usize = 20;

/// Identity of an open file: (device, inode).
pub(super) type FileId = (u64, u64);

pub(super) fn file_id(file: &File) -> io::Result<FileId> {
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// The identity of what `path` names now, `None` if nothing.
pub(super) fn path_id(path: &Path) -> io::Result<Option<FileId>> {
    match std::fs::metadata(path) {
        Ok(meta) => Ok(Some((meta.dev(), meta.ino()))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

pub(super) fn open_if_exists(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// `container.log` for 0, `container.log.N` for N.
pub(super) fn rotated_name(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return path.to_owned();
    }
    let mut name = OsString::from(path.as_os_str());
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// The rotated files that exist (`container.log.N`, N ≥ 1), oldest (highest N) first.
pub(super) fn rotated_files(path: &Path) -> io::Result<Vec<(usize, PathBuf)>> {
    let Some(base) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "log path has no UTF-8 file name",
        ));
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut found = Vec::new();
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(suffix) = name
            .to_str()
            .and_then(|n| n.strip_prefix(base))
            .and_then(|s| s.strip_prefix('.'))
        else {
            continue;
        };
        if suffix.is_empty() || !suffix.bytes().all(|b| b.is_ascii_digit()) || suffix.starts_with('0') {
            continue;
        }
        if let Ok(n) = suffix.parse::<usize>() {
            found.push((n, entry.path()));
        }
    }
    found.sort_by_key(|&(n, _)| std::cmp::Reverse(n));
    Ok(found)
}

/// Every name in the chain, oldest first: the rotated files that exist, then `path`
/// (whether or not it exists).
pub(super) fn chain_names(path: &Path) -> io::Result<Vec<PathBuf>> {
    let mut names: Vec<PathBuf> = rotated_files(path)?.into_iter().map(|(_, p)| p).collect();
    names.push(path.to_owned());
    Ok(names)
}

/// Which file each existing name of the chain refers to now, oldest first.
fn chain_state(path: &Path) -> io::Result<Vec<(PathBuf, FileId)>> {
    let mut state = Vec::new();
    for name in chain_names(path)? {
        if let Some(id) = path_id(&name)? {
            state.push((name, id));
        }
    }
    Ok(state)
}

/// Opens every file of the log, oldest first, as one consistent set: after opening, the
/// names are checked to still refer to the opened files; if a rotation moved them
/// meanwhile, it starts again.
pub(super) fn snapshot(path: &Path) -> io::Result<Vec<File>> {
    let mut files = Vec::new();
    for attempt in 0..RACE_ATTEMPTS {
        let mut opened = Vec::new();
        files.clear();
        for name in chain_names(path)? {
            if let Some(file) = open_if_exists(&name)? {
                opened.push((name, file_id(&file)?));
                files.push(file);
            }
        }
        if chain_state(path)? == opened {
            return Ok(files);
        }
        tracing::trace!(attempt, "log rotated while taking a snapshot, retrying");
        std::thread::yield_now();
    }
    tracing::warn!(path = %path.display(), "log keeps rotating, reading a possibly inconsistent snapshot");
    Ok(files)
}

/// The offset just past the last `"\n"` at or before `len`: what is after it is a line
/// still being written.
fn complete_end(file: &File, len: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; BLOCK];
    let mut pos = len;
    while pos > 0 {
        let n = (pos as usize).min(BLOCK);
        let start = pos - n as u64;
        file.read_exact_at(&mut buf[..n], start)?;
        if let Some(i) = buf[..n].iter().rposition(|&b| b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        pos = start;
    }
    Ok(0)
}

/// Calls `each` with every complete line (without its `"\n"`) from `start` up to `end`
/// (or the end of the file). Returns the offset after the last line consumed; a trailing
/// line without `"\n"` is not consumed, and neither is anything after a `Break`.
pub(super) fn read_forward(
    file: &File,
    start: u64,
    end: Option<u64>,
    mut each: impl FnMut(&[u8]) -> ControlFlow<()>,
) -> io::Result<u64> {
    let mut consumed = start;
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK);
    loop {
        let have = buf.len();
        let at = consumed + have as u64;
        let want = match end {
            Some(end) if end <= at => break,
            Some(end) => ((end - at) as usize).min(BLOCK),
            None => BLOCK,
        };
        buf.resize(have + want, 0);
        let n = loop {
            match file.read_at(&mut buf[have..], at) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other?,
            }
        };
        buf.truncate(have + n);
        if n == 0 {
            break;
        }
        let mut s = 0;
        let mut scan = have; // no "\n" before `have` in the unconsumed part
        while let Some(i) = buf[scan..].iter().position(|&b| b == b'\n') {
            let nl = scan + i;
            let flow = each(&buf[s..nl]);
            s = nl + 1;
            scan = s;
            if flow.is_break() {
                return Ok(consumed + s as u64);
            }
        }
        buf.drain(..s);
        consumed += s as u64;
    }
    Ok(consumed)
}

/// Calls `each` with every complete line before `end` (which must be a line boundary),
/// newest first, reading the file backwards in blocks, until `each` breaks.
fn read_backward(file: &File, end: u64, mut each: impl FnMut(&[u8]) -> ControlFlow<()>) -> io::Result<ControlFlow<()>> {
    let mut pos = end; // data holds file[pos .. pos + data.len()]
    let mut data: Vec<u8> = Vec::new();
    while pos > 0 {
        let n = (pos as usize).min(BLOCK);
        pos -= n as u64;
        let mut block = vec![0u8; n + data.len()];
        file.read_exact_at(&mut block[..n], pos)?;
        block[n..].copy_from_slice(&data);
        data = block;
        // `data` ends with a "\n" (or is where `end` is): peel complete lines off its end.
        let mut hi = data.len();
        while hi > 0 {
            let content_end = hi - 1;
            match data[..content_end].iter().rposition(|&b| b == b'\n') {
                Some(i) => {
                    if each(&data[i + 1..content_end]).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                    hi = i + 1;
                }
                None if pos == 0 => {
                    if each(&data[..content_end]).is_break() {
                        return Ok(ControlFlow::Break(()));
                    }
                    hi = 0;
                }
                None => break, // the line starts in an earlier block
            }
        }
        data.truncate(hi);
    }
    Ok(ControlFlow::Continue(()))
}

/// Reads the entries of a snapshot that match `opts`, oldest first. Also returns the
/// offset in the last file where reading stopped (the end of its last complete line),
/// from which a follower continues.
pub(super) fn read_snapshot(files: &[File], opts: &ReadOptions) -> io::Result<(Vec<LogEntry>, u64)> {
    let mut ends = Vec::with_capacity(files.len());
    for file in files {
        let len = file.metadata()?.len();
        ends.push(complete_end(file, len)?);
    }
    let last_end = ends.last().copied().unwrap_or(0);
    let mut entries = Vec::new();
    match opts.tail {
        Some(0) => {}
        Some(tail) => {
            for (file, &end) in files.iter().zip(&ends).rev() {
                let flow = read_backward(file, end, |line| {
                    if let Some(entry) = decode_entry(line).filter(|e| opts.matches(e)) {
                        entries.push(entry);
                        if entries.len() >= tail {
                            return ControlFlow::Break(());
                        }
                    }
                    ControlFlow::Continue(())
                })?;
                if flow.is_break() {
                    break;
                }
            }
            entries.reverse();
        }
        None => {
            for (file, &end) in files.iter().zip(&ends) {
                read_forward(file, 0, Some(end), |line| {
                    if let Some(entry) = decode_entry(line).filter(|e| opts.matches(e)) {
                        entries.push(entry);
                    }
                    ControlFlow::Continue(())
                })?;
            }
        }
    }
    Ok((entries, last_end))
}

/// All entries of the log at `path` (`…/container.log`, its rotated files beside it) that
/// match `opts`, oldest first. `tail` counts from the end after the stream and
/// since/until filters, as Docker does; with `tail`, files are read backwards in blocks
/// and only as far as needed. A log that does not exist yet reads as empty.
///
/// Blocking: call it from a blocking context (`tokio::task::spawn_blocking`).
pub fn read(path: &Path, opts: &ReadOptions) -> io::Result<Vec<LogEntry>> {
    let files = snapshot(path)?;
    Ok(read_snapshot(&files, opts)?.0)
}
