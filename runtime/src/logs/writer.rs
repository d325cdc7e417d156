//! The writing side, used by the container's monitor process.

use std::fs::{File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{FileExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use time::OffsetDateTime;

use super::format::encode_entry;
use super::reader::{rotated_files, rotated_name};
use super::{LogConfig, MAX_ENTRY, Stream};

/// Writes a container's log: splits output into entries, appends them as JSON lines,
/// rotates by size. Not thread-safe by design: one monitor owns it.
///
/// Dropping the writer flushes buffered partial lines (best effort; call
/// [`LogWriter::flush_partial`] to see errors).
#[derive(Debug)]
pub struct LogWriter {
    path: PathBuf,
    config: LogConfig,
    file: File,
    /// Bytes in `file`, as far as we know.
    size: u64,
    /// Per stream: the start of a line still waiting for its newline.
    pending: [Pending; 2],
    /// Encoded lines not yet written to `file`.
    out: Vec<u8>,
    /// A write failed part-way: the file may end in a torn line, end it before writing.
    torn: bool,
}

#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    /// When the first of `bytes` arrived.
    time: Option<OffsetDateTime>,
}

fn open_log(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

impl LogWriter {
    /// Opens `path` (`…/container.log`) for appending, creating it if needed. A restarted
    /// monitor continues the same log. A torn last line (a crash mid-write) is ended
    /// first so that the next entry starts on its own line. Rotated files numbered
    /// `max_files` or more (left by an earlier, larger setting) are deleted.
    pub fn open(path: &Path, config: LogConfig) -> io::Result<LogWriter> {
        let file = open_log(path)?;
        let mut size = file.metadata()?.len();
        if size > 0 {
            let mut last = [0u8];
            file.read_at(&mut last, size - 1)?;
            if last[0] != b'\n' {
                (&file).write_all(b"\n")?;
                size += 1;
            }
        }
        let keep = config.max_files.max(1);
        for (n, name) in rotated_files(path)? {
            if n >= keep {
                match std::fs::remove_file(&name) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(LogWriter {
            path: path.to_owned(),
            config,
            file,
            size,
            pending: Default::default(),
            out: Vec::with_capacity(64 * 1024),
            torn: false,
        })
    }

    /// Logs what the container wrote on `stream`, stamped with the current time.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        self.write_at(stream, data, OffsetDateTime::now_utc())
    }

    /// Logs what the container wrote on `stream`, as if it arrived at `time`.
    pub fn write_at(&mut self, stream: Stream, data: &[u8], time: OffsetDateTime) -> io::Result<()> {
        let mut pending = std::mem::take(&mut self.pending[stream.index()]);
        let result = self.split(stream, &mut pending, data, time);
        self.pending[stream.index()] = pending;
        self.finish(result)
    }

    /// Writes the lines still waiting for a newline as partial entries (call it when the
    /// container has exited).
    pub fn flush_partial(&mut self) -> io::Result<()> {
        let mut streams = [Stream::Stdout, Stream::Stderr];
        streams.sort_by_key(|s| self.pending[s.index()].time);
        let mut result = Ok(());
        for stream in streams {
            let pending = std::mem::take(&mut self.pending[stream.index()]);
            if let Some(time) = pending.time.filter(|_| !pending.bytes.is_empty()) {
                result = self.emit(stream, &pending.bytes, time);
                if result.is_err() {
                    break;
                }
            }
        }
        self.finish(result)
    }

    /// Splits `data` into entries (joined to what `pending` held) and encodes them.
    fn split(
        &mut self,
        stream: Stream,
        pending: &mut Pending,
        mut data: &[u8],
        time: OffsetDateTime,
    ) -> io::Result<()> {
        while !data.is_empty() {
            let (segment, complete) = match data.iter().position(|&b| b == b'\n') {
                Some(i) => (&data[..=i], true),
                None => (data, false),
            };
            data = &data[segment.len()..];
            if complete && pending.bytes.is_empty() && segment.len() <= MAX_ENTRY {
                // The common case: a whole line in one write, no copy.
                self.emit(stream, segment, time)?;
                continue;
            }
            if pending.bytes.is_empty() {
                pending.time = Some(time);
            }
            pending.bytes.extend_from_slice(segment);
            // A full buffer is flushed as a partial entry. A complete line of exactly
            // MAX_ENTRY bytes (newline included) still fits in one entry.
            while pending.bytes.len() > MAX_ENTRY || (!complete && pending.bytes.len() == MAX_ENTRY) {
                let cut = utf8_cut(&pending.bytes[..MAX_ENTRY]);
                let start = pending.time.unwrap_or(time);
                self.emit(stream, &pending.bytes[..cut], start)?;
                pending.bytes.drain(..cut);
                pending.time = Some(time);
            }
            if complete {
                let start = pending.time.unwrap_or(time);
                self.emit(stream, &pending.bytes, start)?;
                pending.bytes.clear();
                pending.time = None;
            }
        }
        Ok(())
    }

    /// Encodes one entry into `out`, rotating first if it would not fit in the file.
    fn emit(&mut self, stream: Stream, bytes: &[u8], time: OffsetDateTime) -> io::Result<()> {
        let before = self.out.len();
        encode_entry(&mut self.out, stream, bytes, time);
        let max = self.config.max_size;
        let preceding = self.size + before as u64;
        if max > 0 && preceding > 0 && preceding + (self.out.len() - before) as u64 > max {
            self.write_out(before)?;
            self.rotate()?;
        }
        Ok(())
    }

    /// Writes what is left in `out`; on error, drops it.
    fn finish(&mut self, result: io::Result<()>) -> io::Result<()> {
        let result = result.and_then(|()| self.write_out(self.out.len()));
        if result.is_err() {
            self.out.clear();
        }
        result
    }

    /// Writes `out[..upto]` to the file in one `write_all`.
    fn write_out(&mut self, upto: usize) -> io::Result<()> {
        if upto == 0 {
            return Ok(());
        }
        if self.torn {
            (&self.file).write_all(b"\n")?;
            self.size += 1;
            self.torn = false;
        }
        if let Err(err) = (&self.file).write_all(&self.out[..upto]) {
            self.torn = true;
            if let Ok(meta) = self.file.metadata() {
                self.size = meta.len();
            }
            return Err(err);
        }
        self.size += upto as u64;
        self.out.drain(..upto);
        Ok(())
    }

    /// `.{n-2}` → `.{n-1}` (the oldest deleted first), …, `container.log` → `.1`, new
    /// `container.log`. The renames go from the oldest down so that every file is always
    /// under some name until deleted (readers rely on that).
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.config.max_files.max(1);
        match std::fs::remove_file(rotated_name(&self.path, keep - 1)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        for n in (1..keep).rev() {
            match std::fs::rename(rotated_name(&self.path, n - 1), rotated_name(&self.path, n)) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        self.file = open_log(&self.path)?;
        self.size = 0;
        tracing::debug!(path = %self.path.display(), "rotated container log");
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let Err(err) = self.flush_partial() {
            tracing::warn!(%err, path = %self.path.display(), "could not flush partial log lines");
        }
    }
}

/// Where to cut a full buffer: its end, moved back before a UTF-8 character that the
/// end would split.
fn utf8_cut(bytes: &[u8]) -> usize {
    let n = bytes.len();
    for back in 1..=n.min(3) {
        let b = bytes[n - back];
        if b & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for the lead byte
        }
        let len = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return n,
        };
        return if len > back { n - back } else { n };
    }
    n
}

#[cfg(test)]
mod unit {
    use super::utf8_cut;

    #[test]
    fn logs_utf8_cut() {
        assert_eq!(utf8_cut(b"abcd"), 4);
        assert_eq!(utf8_cut("abé".as_bytes()), 4);
        assert_eq!(utf8_cut(&"abé".as_bytes()[..3]), 2);
        assert_eq!(utf8_cut(&"a€".as_bytes()[..2]), 1);
        assert_eq!(utf8_cut(&"a€".as_bytes()[..3]), 1);
        assert_eq!(utf8_cut("a€".as_bytes()), 4);
        assert_eq!(utf8_cut(&"a😀".as_bytes()[..4]), 1);
        assert_eq!(utf8_cut("a😀".as_bytes()), 5);
        assert_eq!(utf8_cut(b"ab\xff"), 3);
        assert_eq!(utf8_cut(b"\x80\x80\x80"), 3);
    }
}
