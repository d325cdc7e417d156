//! Container logs: captured from a container's stdout and stderr, written as JSON lines,
//! rotated by size, read back with `docker logs` semantics.
//!
//! # Who calls what
//!
//! The per-container monitor (single-threaded, not async) owns a [`LogWriter`] and calls
//! [`LogWriter::write`] with whatever it read from the container's pipes, then
//! [`LogWriter::flush_partial`] when the container exits. The server serves `docker logs`
//! with [`read`] and `docker logs --follow` with [`follow`]; `--since`/`--until` go
//! through [`parse_time_arg`].
//!
//! # On-disk format
//!
//! Docker's `json-file` format: one JSON object per line,
//!
//! ```text
//! {"log":"hello\n","stream":"stdout","time":"2026-11-22T04:38:40.335804123Z"}
//! ```
//!
//! * `log` is the text, including its trailing `"\n"` when it had one (`"\r\n"` stays
//!   `"\r\n"`). `time` is UTC with nine fractional digits; on reading, any RFC 3339 time
//!   is accepted (Docker trims trailing zeros).
//! * A write is split at newlines into entries. A line without its newline yet is
//!   buffered per stream; once the buffer holds 16 KiB ([`MAX_ENTRY`]) it is written as
//!   its own entry without `"\n"` (a *partial* entry, as Docker does). The cut is moved
//!   back by up to 3 bytes so that it does not split a UTF-8 character. An entry is
//!   stamped with the time its first byte arrived (Docker does the same for lines
//!   that arrive in pieces).
//! * Partial entries are not marked in the file (Docker's json-file does not mark them
//!   either): an entry is partial exactly when its bytes do not end in `"\n"`, and
//!   [`LogEntry::partial`] is derived from that on reading.
//!
//! ## Lossless bytes
//!
//! JSON strings hold Unicode only, so bytes that are not valid UTF-8 cannot be stored in
//! `log` as they are. When, and only when, an entry is not valid UTF-8, the writer adds a
//! fourth field `log_base64` holding the exact bytes in standard base64 (RFC 4648, with
//! padding), and puts the lossy text (invalid sequences replaced by U+FFFD, what Docker
//! itself would store) in `log`:
//!
//! ```text
//! {"log":"\ufffdabc\n","stream":"stderr","time":"…","log_base64":"/2FiYwo="}
//! ```
//!
//! Tools that read Docker's format see the usual three fields and a readable text;
//! [`read`] prefers `log_base64` when present, so every byte round-trips. Valid UTF-8
//! entries (the vast majority) keep exactly Docker's shape.
//!
//! # Rotation
//!
//! Like json-file's `max-size`/`max-file`: before an entry is appended, if the file is
//! not empty and the entry would take it past [`LogConfig::max_size`], the files shift
//! (`container.log.{max_files-2}` → `.{max_files-1}` (the oldest is deleted first), …,
//! `container.log` → `container.log.1`) and a new `container.log` is created. An entry
//! is never split across files, and a file exceeds `max_size` only when a single entry
//! is larger than `max_size` by itself. `max_size == 0` disables rotation;
//! `max_files <= 1` deletes the old file instead of keeping rotated ones.
//!
//! Each call to [`LogWriter::write`] produces its entries with a single `write(2)` per
//! file (a rotation in the middle splits it in two), so a concurrent reader sees whole
//! lines except, possibly, the very last one while it is being written: readers treat a
//! last line without `"\n"` as not there yet. A writer opened on a file whose last line
//! is torn (a monitor that crashed mid-write) ends that line first, and readers skip
//! lines that do not parse.
//!
//! # Reading and following
//!
//! [`read`] takes a consistent snapshot of the files (opens them all, then checks that
//! no rotation happened meanwhile, retrying if one did), so a concurrent rotation never
//! makes it miss or repeat entries. With `tail`, files are read backwards in 64 KiB
//! blocks from the newest, and reading stops as soon as `tail` matching entries were
//! found.
//!
//! [`follow`] continues from the exact byte where the snapshot ended and keeps an open
//! descriptor on the file it reads: when that file is renamed away it is drained to its
//! end (the writer never writes to it again), then the follower moves to its successor,
//! found by inode in the chain `container.log.N … .1, container.log`. A follower that
//! fell `max_files` rotations behind misses what was deleted, as with Docker.
//!
//! It waits with **inotify** on the log's directory (`IN_MODIFY`, `IN_CREATE`, moves and
//! deletes), driven through tokio's `AsyncFd`, so a follower costs nothing while the
//! container is quiet and sees new lines at once. It also re-checks every second as a
//! safety net (file systems where inotify misses events), and falls back to polling
//! every 100 ms when inotify is unavailable (for instance `fs.inotify.max_user_instances`
//! exhausted). File reads run on tokio's blocking pool.

mod follow;
mod format;
mod reader;
mod timearg;
mod writer;

#[cfg(test)]
mod tests;

use time::OffsetDateTime;

pub use follow::follow;
pub use reader::read;
pub use timearg::parse_time_arg;
pub use writer::LogWriter;

/// Longest entry a writer emits for a line still without its newline: 16 KiB, as Docker.
pub const MAX_ENTRY: usize = 16 * 1024;

/// Which of the container's output streams an entry came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The name used in the log file (`"stdout"` or `"stderr"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }

    fn index(self) -> usize {
        match self {
            Stream::Stdout => 0,
            Stream::Stderr => 1,
        }
    }
}

/// One log entry: a line (with its `"\n"`), or a piece of a line (`partial`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub time: OffsetDateTime,
    pub stream: Stream,
    /// The exact bytes the container wrote, including the trailing `"\n"` if any.
    pub bytes: Vec<u8>,
    /// True when `bytes` does not end in a newline (a long line cut at 16 KiB, or the
    /// last bytes flushed at exit).
    pub partial: bool,
}

/// Rotation settings, as json-file's `max-size` and `max-file`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// Rotate before a file would grow past this many bytes; 0 means never rotate.
    pub max_size: u64,
    /// How many files to keep, `container.log` included.
    pub max_files: usize,
}

impl Default for LogConfig {
    /// 10 MiB and 3 files.
    fn default() -> Self {
        LogConfig {
            max_size: 10 * 1024 * 1024,
            max_files: 3,
        }
    }
}

/// What to read: the `docker logs` options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOptions {
    pub stdout: bool,
    pub stderr: bool,
    /// Only entries at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only entries at or before this time; [`follow`] also stops once it has passed.
    pub until: Option<OffsetDateTime>,
    /// Only the last `n` matching entries; `None` means all.
    pub tail: Option<usize>,
}

impl Default for ReadOptions {
    /// Both streams, everything.
    fn default() -> Self {
        ReadOptions {
            stdout: true,
            stderr: true,
            since: None,
            until: None,
            tail: None,
        }
    }
}

impl ReadOptions {
    fn matches(&self, entry: &LogEntry) -> bool {
        let stream_ok = match entry.stream {
            Stream::Stdout => self.stdout,
            Stream::Stderr => self.stderr,
        };
        stream_ok
            && self.since.is_none_or(|since| entry.time >= since)
            && self.until.is_none_or(|until| entry.time <= until)
    }
}

/// Errors in the arguments of `docker logs` (file errors are `std::io::Error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("empty time value")]
    Empty,
    /// Neither a timestamp nor a duration (Docker: "failed to parse value as time or
    /// duration").
    #[error("failed to parse value as time or duration: {0:?}")]
    Unrecognized(String),
    /// Looked like an RFC 3339 timestamp but is not a valid one.
    #[error("invalid timestamp {value:?}: {reason}")]
    InvalidTimestamp { value: String, reason: String },
    /// Valid syntax, but outside the range of representable times.
    #[error("time value {0:?} is out of range")]
    OutOfRange(String),
}
