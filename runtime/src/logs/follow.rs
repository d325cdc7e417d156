//! `docker logs --follow`.

use std::fs::File;
use std::future::Future;
use std::io;
use std::ops::ControlFlow;
use std::os::fd::{AsFd as _, AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use time::OffsetDateTime;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;

use super::format::decode_entry;
use super::reader::{FileId, RACE_ATTEMPTS, file_id, path_id, read_forward, read_snapshot, snapshot};
use super::{LogEntry, ReadOptions};

/// Safety-net re-check while inotify is watching.
const INOTIFY_RECHECK: Duration = Duration::from_secs(1);
/// Polling interval when inotify is not available.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Most entries read in one go (then they are sent before reading more).
const BATCH: usize = 1024;
/// Longest single sleep while waiting for `until` (the wall clock is then re-checked).
const UNTIL_SLICE: Duration = Duration::from_secs(60);

/// Follows the log at `path`: first sends what [`read`](super::read) returns for `opts`,
/// then the entries appended afterwards (on the selected streams, within since/until),
/// across rotations, without missing or repeating any. Returns when `stop` completes
/// (after a last read that picks up everything written until then), when `until` has
/// passed (likewise), or when the receiver is dropped.
///
/// Waits with inotify on the log's directory, re-checking every second anyway; polls
/// every 100 ms if inotify is unavailable (see the module documentation). File reads
/// run on tokio's blocking pool.
pub async fn follow(
    path: PathBuf,
    opts: ReadOptions,
    tx: mpsc::Sender<LogEntry>,
    stop: impl Future<Output = ()> + Send,
) -> io::Result<()> {
    follow_with(path, opts, tx, stop, true).await
}

pub(super) async fn follow_with(
    path: PathBuf,
    opts: ReadOptions,
    tx: mpsc::Sender<LogEntry>,
    stop: impl Future<Output = ()> + Send,
    use_inotify: bool,
) -> io::Result<()> {
    let mut stop = std::pin::pin!(stop);
    // Watch before the snapshot, so no change after it goes unnoticed.
    let mut watcher = if use_inotify {
        Watcher::new(&path)
    } else {
        Watcher::none()
    };

    let initial_opts = opts.clone();
    let (mut tailer, initial) = blocking(move || Tailer::start(path, &initial_opts)).await?;
    for entry in initial {
        if tx.send(entry).await.is_err() {
            return Ok(());
        }
    }

    let mut finishing = false;
    loop {
        let (t, batch, more) = blocking(move || {
            let mut batch = Vec::new();
            let more = tailer.step(&mut batch)?;
            Ok((tailer, batch, more))
        })
        .await?;
        tailer = t;
        for entry in batch {
            if opts.matches(&entry) && tx.send(entry).await.is_err() {
                return Ok(());
            }
        }
        if more {
            continue;
        }
        if finishing {
            return Ok(());
        }
        let until_wait = match opts.until {
            None => None,
            Some(until) => {
                let left = until - OffsetDateTime::now_utc();
                if left.is_negative() || left.is_zero() {
                    finishing = true;
                    continue;
                }
                Some(Duration::try_from(left).unwrap_or(UNTIL_SLICE).min(UNTIL_SLICE))
            }
        };
        let recheck = if watcher.is_active() {
            INOTIFY_RECHECK
        } else {
            POLL_INTERVAL
        };
        tokio::select! {
            () = &mut stop => finishing = true,
            () = tx.closed() => return Ok(()),
            () = watcher.changed() => {}
            () = tokio::time::sleep(recheck) => {}
            () = tokio::time::sleep(until_wait.unwrap_or(UNTIL_SLICE)), if until_wait.is_some() => {}
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(io::Error::other)?
}

/// Where a follower is: an open file and the offset of the first byte not yet read.
struct Tailer {
    path: PathBuf,
    file: Option<File>,
    offset: u64,
}

impl Tailer {
    /// The initial snapshot: the entries `read` gives, and the position right after them.
    fn start(path: PathBuf, opts: &ReadOptions) -> io::Result<(Tailer, Vec<LogEntry>)> {
        let mut files = snapshot(&path)?;
        let (entries, offset) = read_snapshot(&files, opts)?;
        let file = files.pop();
        Ok((Tailer { path, file, offset }, entries))
    }

    /// Reads what was appended since the last step, following rotations. Returns true if
    /// it stopped early because the batch is full.
    fn step(&mut self, out: &mut Vec<LogEntry>) -> io::Result<bool> {
        loop {
            if out.len() >= BATCH {
                return Ok(true);
            }
            let Some(file) = &self.file else {
                // No file when we started: everything that exists now is new.
                match self.oldest()? {
                    Some(file) => {
                        self.file = Some(file);
                        self.offset = 0;
                        continue;
                    }
                    None => return Ok(false),
                }
            };
            if drain(file, &mut self.offset, out)? {
                return Ok(true);
            }
            let id = file_id(file)?;
            if path_id(&self.path)? == Some(id) {
                return Ok(false); // still the current file, all read
            }
            // Renamed away (or deleted): the writer will not append to it any more, so
            // what is in it now is final. Read it to the end, then go to the next file.
            if drain(file, &mut self.offset, out)? {
                return Ok(true);
            }
            match self.successor(file, id)? {
                Some(next) => {
                    self.file = Some(next);
                    self.offset = 0;
                }
                None => return Ok(false), // the next file is not there yet
            }
        }
    }

    /// The file that came after `current` (id `id`) in the chain, found in a consistent
    /// snapshot of the chain (names checked again after opening), so a rotation running
    /// meanwhile can neither hide a file nor make one look like the next.
    fn successor(&self, current: &File, id: FileId) -> io::Result<Option<File>> {
        for _ in 0..RACE_ATTEMPTS {
            let files = snapshot(&self.path)?;
            let ids = files.iter().map(file_id).collect::<io::Result<Vec<_>>>()?;
            match ids.iter().position(|f| *f == id) {
                Some(i) => return Ok(files.into_iter().nth(i + 1)),
                None if current.metadata()?.nlink() == 0 => {
                    // Deleted (max_files rotations behind, or max_files = 1): everything still
                    // on disk came after it.
                    if !files.is_empty() {
                        tracing::warn!(path = %self.path.display(), "log follower fell behind rotation, some entries were deleted before it read them");
                    }
                    return Ok(files.into_iter().next());
                }
                None => {} // renamed between the listing and the check: look again
            }
            std::thread::yield_now();
        }
        Ok(None)
    }

    /// The oldest file of the chain that exists, from a consistent snapshot.
    fn oldest(&self) -> io::Result<Option<File>> {
        Ok(snapshot(&self.path)?.into_iter().next())
    }
}

/// Reads complete lines of `file` from `offset` on, advancing it; true if the batch
/// filled up before the end.
fn drain(file: &File, offset: &mut u64, out: &mut Vec<LogEntry>) -> io::Result<bool> {
    let mut full = false;
    *offset = read_forward(file, *offset, None, |line| {
        if let Some(entry) = decode_entry(line) {
            out.push(entry);
            if out.len() >= BATCH {
                full = true;
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    })?;
    Ok(full)
}

/// An inotify instance watching the log's directory, or nothing (then callers poll).
struct Watcher {
    fd: Option<AsyncFd<InotifyFd>>,
}

struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

impl Watcher {
    fn none() -> Watcher {
        Watcher { fd: None }
    }

    fn new(path: &Path) -> Watcher {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let watch = || -> io::Result<AsyncFd<InotifyFd>> {
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
            inotify.add_watch(
                dir,
                AddWatchFlags::IN_MODIFY
                    | AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_MOVED_FROM
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_DELETE
                    | AddWatchFlags::IN_CLOSE_WRITE,
            )?;
            // SAFETY: `InotifyFd` owns its descriptor (an `OwnedFd` inside `Inotify`) and
            // never swaps it, so it stays open and the same for the AsyncFd's lifetime.
            Ok(unsafe { AsyncFd::register_with_interest(InotifyFd(inotify), Interest::READABLE) }?)
        };
        match watch() {
            Ok(fd) => Watcher { fd: Some(fd) },
            Err(err) => {
                tracing::debug!(%err, dir = %dir.display(), "inotify unavailable, polling the log");
                Watcher::none()
            }
        }
    }

    fn is_active(&self) -> bool {
        self.fd.is_some()
    }

    /// Completes when something changed in the directory (never, without inotify).
    /// Events are drained before returning, so a change made after that wakes us again.
    async fn changed(&mut self) {
        let Some(fd) = &self.fd else {
            return std::future::pending().await;
        };
        let mut guard = match fd.readable().await {
            Ok(guard) => guard,
            Err(err) => {
                tracing::debug!(%err, "inotify failed, polling the log");
                self.fd = None;
                return;
            }
        };
        loop {
            match guard.get_inner().0.read_events() {
                Ok(_) => continue,
                Err(Errno::EAGAIN) => {
                    guard.clear_ready();
                    return;
                }
                Err(Errno::EINTR) => continue,
                Err(err) => {
                    tracing::debug!(%err, "inotify failed, polling the log");
                    drop(guard);
                    self.fd = None;
                    return;
                }
            }
        }
    }
}
