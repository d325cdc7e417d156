//! Tests on real files in temporary directories.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use time::macros::datetime;
use tokio::sync::{mpsc, oneshot};

use super::follow::follow_with;
use super::format::{base64_decode, base64_encode};
use super::reader::rotated_files;
use super::*;

fn t0() -> OffsetDateTime {
    datetime!(2026-11-22 04:38:40.335804123 UTC)
}

fn secs(n: i64) -> time::Duration {
    time::Duration::seconds(n)
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("container.log")
}

fn all() -> ReadOptions {
    ReadOptions::default()
}

fn bytes_of(entries: &[LogEntry], stream: Stream) -> Vec<u8> {
    entries
        .iter()
        .filter(|e| e.stream == stream)
        .flat_map(|e| e.bytes.clone())
        .collect()
}

fn texts(entries: &[LogEntry]) -> Vec<String> {
    entries
        .iter()
        .map(|e| String::from_utf8_lossy(&e.bytes).into_owned())
        .collect()
}

/// Numbers of "line N\n" entries, in order.
fn numbers(entries: &[LogEntry]) -> Vec<usize> {
    entries
        .iter()
        .map(|e| {
            let s = std::str::from_utf8(&e.bytes).unwrap();
            s.trim_end().rsplit(' ').next().unwrap().parse().unwrap()
        })
        .collect()
}

/// All files of the log: (name, content).
fn files_of(path: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = rotated_files(path).unwrap().into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_owned());
    }
    files
        .into_iter()
        .map(|p| (p.clone(), std::fs::read(&p).unwrap()))
        .collect()
}

fn file_count(path: &Path) -> usize {
    rotated_files(path).unwrap().len() + usize::from(path.exists())
}

#[test]
fn logs_round_trip_exact_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    let out: &[&[u8]] = &[
        b"plain line\n",
        b"windows line\r\n",
        b"tab\tquote\" backslash\\ nul\0 esc\x1b[31m bell\x07\n",
        "unicode: é € 😀 \u{2028}\n".as_bytes(),
        b"invalid \xff\xfe utf-8 \xc3\n",
        b"lone cr\r",
        b"\n",
    ];
    let err: &[&[u8]] = &[b"to stderr\n", b"\x80\x81\x82\n", b"tail without newline"];
    for (i, chunk) in out.iter().enumerate() {
        w.write_at(Stream::Stdout, chunk, t0() + secs(i as i64)).unwrap();
    }
    for (i, chunk) in err.iter().enumerate() {
        w.write_at(Stream::Stderr, chunk, t0() + secs(100 + i as i64)).unwrap();
    }
    w.flush_partial().unwrap();

    let entries = read(&path, &all()).unwrap();
    assert_eq!(bytes_of(&entries, Stream::Stdout), out.concat());
    assert_eq!(bytes_of(&entries, Stream::Stderr), err.concat());
    // "lone cr\r" has no "\n": it is joined to the next "\n" as one line.
    let stdout: Vec<_> = entries.iter().filter(|e| e.stream == Stream::Stdout).collect();
    assert_eq!(stdout.len(), 6);
    assert_eq!(stdout[5].bytes, b"lone cr\r\n");
    assert_eq!(stdout[5].time, t0() + secs(5));
    assert!(stdout.iter().all(|e| !e.partial));
    let last = entries.last().unwrap();
    assert_eq!(
        (last.bytes.as_slice(), last.partial),
        (&b"tail without newline"[..], true)
    );
    assert_eq!(entries[0].time, t0());
    assert_eq!(entries[0].stream, Stream::Stdout);

    // On disk: Docker's shape for UTF-8 lines, plus log_base64 only for the others.
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), entries.len());
    assert_eq!(
        lines[0],
        r#"{"log":"plain line\n","stream":"stdout","time":"2026-11-22T04:38:40.335804123Z"}"#
    );
    for line in &lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let obj = v.as_object().unwrap();
        let log = obj["log"].as_str().unwrap();
        if log.contains('\u{FFFD}') {
            assert_eq!(obj.len(), 4, "{line}");
            assert!(obj.contains_key("log_base64"));
        } else {
            assert_eq!(obj.len(), 3, "{line}");
        }
    }
    assert!(
        lines[4].contains(r#""log_base64":"aW52YWxpZCD//iB1dGYtOCDDCg==""#),
        "{}",
        lines[4]
    );
}

#[test]
fn logs_base64() {
    for len in 0..40 {
        let data: Vec<u8> = (0..len).map(|i| (i * 37 + 250) as u8).collect();
        let mut enc = Vec::new();
        base64_encode(&mut enc, &data);
        assert_eq!(base64_decode(&enc).unwrap(), data);
    }
    let mut enc = Vec::new();
    base64_encode(&mut enc, b"foobar");
    assert_eq!(enc, b"Zm9vYmFy");
    enc.clear();
    base64_encode(&mut enc, b"fo");
    assert_eq!(enc, b"Zm8=");
    assert!(base64_decode(b"Zm8").is_none());
    assert!(base64_decode(b"Z===").is_none());
    assert!(base64_decode(b"Zm8=Zm8=").is_none());
}

#[test]
fn logs_reads_docker_written_lines() {
    // Docker trims trailing zeros in the fraction and may add "attrs".
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    std::fs::write(
        &path,
        concat!(
            r#"{"log":"a\n","stream":"stdout","time":"2024-01-02T03:04:05.5Z"}"#,
            "\n",
            r#"{"log":"b\n","stream":"stderr","attrs":{"x":"y"},"time":"2024-01-02T03:04:06Z"}"#,
            "\n",
            "\n",
            "not json at all\n",
            r#"{"log":"c\n","stream":"weird","time":"2024-01-02T03:04:07Z"}"#,
            "\n",
            r#"{"log":"d\n","stream":"stdout","time":"2024-01-02T04:04:07+01:00"}"#,
            "\n",
        ),
    )
    .unwrap();
    let entries = read(&path, &all()).unwrap();
    assert_eq!(texts(&entries), ["a\n", "b\n", "d\n"]);
    assert_eq!(entries[0].time, datetime!(2024-01-02 03:04:05.5 UTC));
    assert_eq!(entries[1].stream, Stream::Stderr);
    assert_eq!(entries[2].time, datetime!(2024-01-02 03:04:07 UTC));
}

#[test]
fn logs_splits_writes_at_newlines_and_buffers_per_stream() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    w.write_at(Stream::Stdout, b"a\nb\nc", t0()).unwrap();
    w.write_at(Stream::Stderr, b"x", t0() + secs(1)).unwrap();
    w.write_at(Stream::Stderr, b"y\n", t0() + secs(2)).unwrap();
    // Nothing of "c" yet.
    assert_eq!(texts(&read(&path, &all()).unwrap()), ["a\n", "b\n", "xy\n"]);
    w.write_at(Stream::Stdout, b"d\ne\n", t0() + secs(3)).unwrap();
    let entries = read(&path, &all()).unwrap();
    assert_eq!(texts(&entries), ["a\n", "b\n", "xy\n", "cd\n", "e\n"]);
    // A line is stamped with the time its first byte arrived.
    assert_eq!(entries[2].time, t0() + secs(1));
    assert_eq!(entries[3].time, t0());
    assert_eq!(entries[4].time, t0() + secs(3));
    // Nothing pending: flush_partial writes nothing.
    w.flush_partial().unwrap();
    assert_eq!(read(&path, &all()).unwrap().len(), 5);
}

#[test]
fn logs_partial_lines_flushed_at_16k() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    // 40000 bytes without a newline, in uneven writes.
    let long: Vec<u8> = (0..40000u32).map(|i| b'a' + (i % 26) as u8).collect();
    for (i, chunk) in long.chunks(7000).enumerate() {
        w.write_at(Stream::Stdout, chunk, t0() + secs(i as i64)).unwrap();
    }
    let entries = read(&path, &all()).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.bytes.len()).collect::<Vec<_>>(),
        [MAX_ENTRY, MAX_ENTRY]
    );
    assert!(entries.iter().all(|e| e.partial));
    assert_eq!(entries[0].time, t0());
    w.flush_partial().unwrap();
    // A complete line of exactly 16 KiB (newline included) is one entry, one byte more is two.
    let mut exact = vec![b'x'; MAX_ENTRY - 1];
    exact.push(b'\n');
    w.write_at(Stream::Stderr, &exact, t0()).unwrap();
    let mut over = vec![b'y'; MAX_ENTRY];
    over.push(b'\n');
    w.write_at(Stream::Stderr, &over, t0()).unwrap();
    drop(w);

    let entries = read(&path, &all()).unwrap();
    let shape: Vec<(Stream, usize, bool)> = entries.iter().map(|e| (e.stream, e.bytes.len(), e.partial)).collect();
    assert_eq!(
        shape,
        [
            (Stream::Stdout, MAX_ENTRY, true),
            (Stream::Stdout, MAX_ENTRY, true),
            (Stream::Stdout, 40000 - 2 * MAX_ENTRY, true),
            (Stream::Stderr, MAX_ENTRY, false),
            (Stream::Stderr, MAX_ENTRY, true),
            (Stream::Stderr, 1, false),
        ]
    );
    assert_eq!(bytes_of(&entries, Stream::Stdout), long);
    assert_eq!(bytes_of(&entries, Stream::Stderr), [exact, over].concat());
}

#[test]
fn logs_partial_cut_keeps_utf8_characters_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    // "€" is 3 bytes: 16384 is not a multiple of 3, so a plain cut would split one.
    let text = "€".repeat(12000) + "\n";
    w.write_at(Stream::Stdout, text.as_bytes(), t0()).unwrap();
    drop(w);
    let entries = read(&path, &all()).unwrap();
    assert!(entries.len() >= 3);
    for e in &entries {
        assert!(std::str::from_utf8(&e.bytes).is_ok());
        assert!(e.bytes.len() <= MAX_ENTRY);
    }
    assert_eq!(bytes_of(&entries, Stream::Stdout), text.as_bytes());
    assert!(!std::fs::read_to_string(&path).unwrap().contains("log_base64"));
}

#[test]
fn logs_drop_flushes_and_reopen_appends() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    w.write_at(Stream::Stdout, b"one\ntw", t0()).unwrap();
    drop(w);
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    w.write_at(Stream::Stdout, b"o\nthree\n", t0() + secs(1)).unwrap();
    drop(w);
    let entries = read(&path, &all()).unwrap();
    assert_eq!(texts(&entries), ["one\n", "tw", "o\n", "three\n"]);
    assert!(entries[1].partial);
}

#[test]
fn logs_torn_last_line_is_ended_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    w.write_at(Stream::Stdout, b"before\n", t0()).unwrap();
    drop(w);
    // A monitor that crashed in the middle of a write.
    let mut content = std::fs::read(&path).unwrap();
    content.extend_from_slice(br#"{"log":"torn"#);
    std::fs::write(&path, &content).unwrap();
    // While torn, readers ignore the incomplete last line.
    assert_eq!(texts(&read(&path, &all()).unwrap()), ["before\n"]);
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    w.write_at(Stream::Stdout, b"after\n", t0() + secs(1)).unwrap();
    drop(w);
    assert_eq!(texts(&read(&path, &all()).unwrap()), ["before\n", "after\n"]);
}

/// 10 entries: i-th at t0 + i s, even on stdout, odd on stderr.
fn ten(path: &Path, config: LogConfig) {
    let mut w = LogWriter::open(path, config).unwrap();
    for i in 0..10 {
        let stream = if i % 2 == 0 { Stream::Stdout } else { Stream::Stderr };
        w.write_at(stream, format!("line {i}\n").as_bytes(), t0() + secs(i))
            .unwrap();
    }
}

#[test]
fn logs_filters_stream_since_until_tail() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    ten(&path, LogConfig::default());
    let r = |opts: ReadOptions| numbers(&read(&path, &opts).unwrap());
    assert_eq!(r(all()), (0..10).collect::<Vec<_>>());
    assert_eq!(r(ReadOptions { stderr: false, ..all() }), [0, 2, 4, 6, 8]);
    assert_eq!(r(ReadOptions { stdout: false, ..all() }), [1, 3, 5, 7, 9]);
    assert_eq!(
        r(ReadOptions {
            stdout: false,
            stderr: false,
            ..all()
        }),
        Vec::<usize>::new()
    );
    // since and until are inclusive.
    assert_eq!(
        r(ReadOptions {
            since: Some(t0() + secs(7)),
            ..all()
        }),
        [7, 8, 9]
    );
    assert_eq!(
        r(ReadOptions {
            until: Some(t0() + secs(2)),
            ..all()
        }),
        [0, 1, 2]
    );
    let between = ReadOptions {
        since: Some(t0() + secs(3)),
        until: Some(t0() + secs(6)),
        ..all()
    };
    assert_eq!(r(between.clone()), [3, 4, 5, 6]);
    // tail counts after the filters.
    assert_eq!(r(ReadOptions { tail: Some(3), ..all() }), [7, 8, 9]);
    assert_eq!(
        r(ReadOptions {
            tail: Some(2),
            stdout: false,
            ..all()
        }),
        [7, 9]
    );
    assert_eq!(
        r(ReadOptions {
            tail: Some(2),
            ..between
        }),
        [5, 6]
    );
    assert_eq!(r(ReadOptions { tail: Some(0), ..all() }), Vec::<usize>::new());
    assert_eq!(
        r(ReadOptions {
            tail: Some(100),
            ..all()
        }),
        (0..10).collect::<Vec<_>>()
    );
    // A log that does not exist yet is empty.
    assert!(read(&dir.path().join("nope.log"), &all()).unwrap().is_empty());
}

#[test]
fn logs_rotation_keeps_every_entry_once_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let config = LogConfig {
        max_size: 4096,
        max_files: 1000,
    };
    let mut w = LogWriter::open(&path, config).unwrap();
    let n = 5000;
    let mut expected = Vec::new();
    let mut i = 0;
    // Writes of 1 to 7 lines, with lines of various lengths.
    while i < n {
        let mut chunk = Vec::new();
        for _ in 0..(i % 7 + 1).min(n - i) {
            let line = format!("{} line {i}\n", "x".repeat(i * 13 % 300));
            chunk.extend_from_slice(line.as_bytes());
            i += 1;
        }
        let stream = if i % 3 == 0 { Stream::Stderr } else { Stream::Stdout };
        w.write_at(stream, &chunk, t0() + time::Duration::milliseconds(i as i64))
            .unwrap();
        expected.push((stream, chunk));
    }
    drop(w);
    let entries = read(&path, &all()).unwrap();
    assert_eq!(numbers(&entries), (0..n).collect::<Vec<_>>());
    let all_bytes: Vec<u8> = entries.iter().flat_map(|e| e.bytes.clone()).collect();
    assert_eq!(
        all_bytes,
        expected.iter().flat_map(|(_, c)| c.clone()).collect::<Vec<u8>>()
    );
    let files = files_of(&path);
    assert!(files.len() > 50, "{} files", files.len());
    for (name, content) in &files {
        assert!(
            content.len() as u64 <= config.max_size,
            "{} is {} bytes",
            name.display(),
            content.len()
        );
        // No entry split across files: every file is whole lines, each a valid entry.
        assert!(content.ends_with(b"\n"));
        for line in content.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            serde_json::from_slice::<serde_json::Value>(line).unwrap();
        }
    }
}

#[test]
fn logs_rotation_bounds_files_and_keeps_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let config = LogConfig {
        max_size: 2000,
        max_files: 3,
    };
    let mut w = LogWriter::open(&path, config).unwrap();
    let n = 3000;
    for i in 0..n {
        w.write_at(Stream::Stdout, format!("line {i}\n").as_bytes(), t0())
            .unwrap();
        assert!(file_count(&path) <= 3);
    }
    drop(w);
    let files = files_of(&path);
    assert_eq!(files.len(), 3);
    let names: Vec<String> = files
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["container.log.2", "container.log.1", "container.log"]);
    // What is left is a run ending with the last entry, in order, with no duplicate.
    let got = numbers(&read(&path, &all()).unwrap());
    let first = got[0];
    assert_eq!(got, (first..n).collect::<Vec<_>>());
    assert!(got.len() > 50, "{} entries kept", got.len());
    // Tail across the rotated files.
    let tail = numbers(
        &read(
            &path,
            &ReadOptions {
                tail: Some(got.len() - 10),
                ..all()
            },
        )
        .unwrap(),
    );
    assert_eq!(tail, (first + 10..n).collect::<Vec<_>>());
    // A writer reopened with fewer files removes the surplus ones.
    let w = LogWriter::open(&path, LogConfig { max_files: 2, ..config }).unwrap();
    drop(w);
    assert_eq!(files_of(&path).len(), 2);
}

#[test]
fn logs_max_files_one_replaces_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(
        &path,
        LogConfig {
            max_size: 500,
            max_files: 1,
        },
    )
    .unwrap();
    for i in 0..100 {
        w.write_at(Stream::Stdout, format!("line {i}\n").as_bytes(), t0())
            .unwrap();
    }
    drop(w);
    assert_eq!(files_of(&path).len(), 1);
    let got = numbers(&read(&path, &all()).unwrap());
    assert_eq!(*got.last().unwrap(), 99);
    assert!(std::fs::metadata(&path).unwrap().len() <= 500);
}

#[test]
fn logs_max_size_zero_never_rotates() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(
        &path,
        LogConfig {
            max_size: 0,
            max_files: 2,
        },
    )
    .unwrap();
    for i in 0..1000 {
        w.write_at(Stream::Stdout, format!("line {i}\n").as_bytes(), t0())
            .unwrap();
    }
    drop(w);
    assert_eq!(files_of(&path).len(), 1);
    assert_eq!(read(&path, &all()).unwrap().len(), 1000);
}

#[test]
fn logs_tail_reads_backwards_over_block_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let mut w = LogWriter::open(
        &path,
        LogConfig {
            max_size: 300_000,
            max_files: 100,
        },
    )
    .unwrap();
    let n = 20_000;
    for i in 0..n {
        // Mostly short lines; now and then one whose JSON is longer than a 64 KiB block
        // (control characters take 6 bytes escaped).
        let line = if i % 5000 == 4999 {
            format!("{} line {i}\n", "\u{1}".repeat(MAX_ENTRY - 20))
        } else {
            format!("{} line {i}\n", "y".repeat(i * 7 % 90))
        };
        w.write_at(
            Stream::Stdout,
            line.as_bytes(),
            t0() + time::Duration::milliseconds(i as i64),
        )
        .unwrap();
    }
    drop(w);
    assert!(files_of(&path).len() > 3);
    for tail in [1, 2, 3, 999, 1000, 1001, 5001, 12345, n - 1, n, n + 1] {
        let got = numbers(
            &read(
                &path,
                &ReadOptions {
                    tail: Some(tail),
                    ..all()
                },
            )
            .unwrap(),
        );
        let want: Vec<usize> = (n.saturating_sub(tail)..n).collect();
        assert_eq!(got, want, "tail {tail}");
    }
    let since = ReadOptions {
        since: Some(t0() + time::Duration::milliseconds(15_000)),
        tail: Some(7000),
        ..all()
    };
    assert_eq!(numbers(&read(&path, &since).unwrap()), (15_000..n).collect::<Vec<_>>());
}

#[test]
fn logs_read_is_consistent_during_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || {
        let mut w = LogWriter::open(
            &writer_path,
            LogConfig {
                max_size: 1500,
                max_files: 4,
            },
        )
        .unwrap();
        for i in 0..40_000 {
            w.write(Stream::Stdout, format!("line {i}\n").as_bytes()).unwrap();
        }
    });
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let got = numbers(&read(&path, &all()).unwrap());
        if let Some(&first) = got.first() {
            assert_eq!(got, (first..first + got.len()).collect::<Vec<_>>(), "gap or duplicate");
        }
        let tail = numbers(
            &read(
                &path,
                &ReadOptions {
                    tail: Some(30),
                    ..all()
                },
            )
            .unwrap(),
        );
        if let Some(&first) = tail.first() {
            assert_eq!(
                tail,
                (first..first + tail.len()).collect::<Vec<_>>(),
                "gap or duplicate in tail"
            );
        }
        reads += 1;
    }
    writer.join().unwrap();
    assert!(reads > 1);
}

// ---------------------------------------------------------------------------------------
// follow

/// Receives until `want` entries arrived (or panics after a while).
async fn recv_n(rx: &mut mpsc::Receiver<LogEntry>, want: usize) -> Vec<LogEntry> {
    let mut got = Vec::new();
    while got.len() < want {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(e)) => got.push(e),
            Ok(None) => panic!("channel closed after {} of {want} entries", got.len()),
            Err(_) => panic!("timed out after {} of {want} entries", got.len()),
        }
    }
    got
}

/// Follows `path` in a task; returns the receiver, a stop sender and the task.
fn start_follow(
    path: &Path,
    opts: ReadOptions,
    inotify: bool,
) -> (
    mpsc::Receiver<LogEntry>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let (tx, rx) = mpsc::channel(64);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let stop = async move {
        let _ = stop_rx.await;
    };
    let task = tokio::spawn(follow_with(path.to_owned(), opts, tx, stop, inotify));
    (rx, stop_tx, task)
}

async fn finish(task: tokio::task::JoinHandle<std::io::Result<()>>) {
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("follow did not return")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_sends_history_then_new_entries() {
    for inotify in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        ten(&path, LogConfig::default());
        let (mut rx, stop, task) = start_follow(
            &path,
            ReadOptions {
                tail: Some(3),
                stderr: false,
                ..all()
            },
            inotify,
        );
        assert_eq!(numbers(&recv_n(&mut rx, 3).await), [4, 6, 8]);
        let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
        w.write_at(Stream::Stdout, b"line 10\n", t0() + secs(10)).unwrap();
        w.write_at(Stream::Stderr, b"line 11\n", t0() + secs(11)).unwrap();
        w.write_at(Stream::Stdout, b"line 12\n", t0() + secs(12)).unwrap();
        assert_eq!(numbers(&recv_n(&mut rx, 2).await), [10, 12]);
        // Partial data shows up only once the line is complete (or flushed).
        w.write_at(Stream::Stdout, b"line ", t0() + secs(13)).unwrap();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(rx.try_recv().is_err());
        w.write_at(Stream::Stdout, b"13\n", t0() + secs(14)).unwrap();
        let got = recv_n(&mut rx, 1).await;
        assert_eq!(
            (got[0].bytes.as_slice(), got[0].time),
            (&b"line 13\n"[..], t0() + secs(13))
        );
        stop.send(()).unwrap();
        finish(task).await;
        assert!(rx.recv().await.is_none());
    }
}

/// Follows while a monitor thread writes `n` numbered lines (10 already there) in
/// writes of 1 to 5 lines. With `max_lag`, the writer waits until the follower is at
/// most that many lines behind (so that even with max_files = 2 no file is deleted
/// unread: a follower more than max_files rotations behind loses entries, as Docker's).
async fn follow_while_writing(config: LogConfig, n: usize, max_lag: Option<usize>, inotify: bool) {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    ten(&path, config);
    let (mut rx, stop, task) = start_follow(&path, all(), inotify);
    assert_eq!(numbers(&recv_n(&mut rx, 10).await), (0..10).collect::<Vec<_>>());
    let (ack_tx, ack_rx) = std::sync::mpsc::channel::<usize>();
    let writer_path = path.clone();
    let writer = std::thread::spawn(move || {
        let mut w = LogWriter::open(&writer_path, config).unwrap();
        let mut max_files_seen = 0;
        let mut i = 10;
        while i < n {
            let mut chunk = Vec::new();
            for _ in 0..(i % 5 + 1).min(n - i) {
                chunk.extend_from_slice(format!("line {i}\n").as_bytes());
                i += 1;
            }
            w.write(Stream::Stdout, &chunk).unwrap();
            max_files_seen = max_files_seen.max(file_count(&writer_path));
            if let Some(lag) = max_lag {
                while ack_rx.recv().unwrap() + lag < i {}
            }
        }
        max_files_seen
    });
    let mut got = Vec::new();
    while got.len() < n - 10 {
        got.extend(recv_n(&mut rx, 1).await);
        let _ = ack_tx.send(10 + got.len());
    }
    let max_files_seen = writer.join().unwrap();
    stop.send(()).unwrap();
    finish(task).await;
    assert!(rx.recv().await.is_none(), "an entry was sent twice");
    assert_eq!(numbers(&got), (10..n).collect::<Vec<_>>());
    assert!(max_files_seen <= config.max_files, "{max_files_seen} files");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_across_rotations_misses_and_repeats_nothing() {
    // About 13 entries per file: a rotation every few writes, only one old file kept.
    let small = LogConfig {
        max_size: 1024,
        max_files: 2,
    };
    follow_while_writing(small, 3000, Some(5), true).await;
    // Polling wakes every 100 ms: let the writer run further ahead between polls
    // (still less than one file: ~52 entries per 4 KiB).
    let polled = LogConfig {
        max_size: 4096,
        max_files: 2,
    };
    follow_while_writing(polled, 500, Some(40), false).await;
    // A burst as fast as the writer goes, ~100 rotations, with room to keep every file.
    let burst = LogConfig {
        max_size: 16 * 1024,
        max_files: 1000,
    };
    follow_while_writing(burst, 20_000, None, true).await;
    follow_while_writing(burst, 20_000, None, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_stop_delivers_everything_written_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    let (mut rx, stop, task) = start_follow(&path, all(), true);
    // The file does not exist yet when following starts.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let config = LogConfig {
        max_size: 4096,
        max_files: 100,
    };
    let mut w = LogWriter::open(&path, config).unwrap();
    for i in 0..2000 {
        w.write(Stream::Stderr, format!("line {i}\n").as_bytes()).unwrap();
    }
    w.write(Stream::Stderr, b"exit status ").unwrap();
    w.flush_partial().unwrap();
    drop(w);
    // The container has exited and the monitor flushed: stop right away.
    stop.send(()).unwrap();
    let mut got = Vec::new();
    while let Some(e) = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.unwrap() {
        got.push(e);
    }
    finish(task).await;
    let last = got.pop().unwrap();
    assert_eq!((last.bytes.as_slice(), last.partial), (&b"exit status "[..], true));
    assert_eq!(numbers(&got), (0..2000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_returns_when_stopped_while_idle() {
    for inotify in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let path = log_path(&dir);
        ten(&path, LogConfig::default());
        let (mut rx, stop, task) = start_follow(&path, all(), inotify);
        recv_n(&mut rx, 10).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!task.is_finished());
        let asked = std::time::Instant::now();
        stop.send(()).unwrap();
        finish(task).await;
        assert!(asked.elapsed() < Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_returns_when_receiver_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    ten(&path, LogConfig::default());
    let (mut rx, _stop, task) = start_follow(&path, all(), true);
    recv_n(&mut rx, 1).await;
    drop(rx);
    finish(task).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_until() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    ten(&path, LogConfig::default());
    // until in the past: the matching history, then return.
    let (mut rx, _stop, task) = start_follow(
        &path,
        ReadOptions {
            until: Some(t0() + secs(4)),
            ..all()
        },
        true,
    );
    finish(task).await;
    let mut got = Vec::new();
    while let Some(e) = rx.recv().await {
        got.push(e);
    }
    assert_eq!(numbers(&got), [0, 1, 2, 3, 4]);
    // until shortly in the future: new entries until then, then return by itself.
    let until = OffsetDateTime::now_utc() + time::Duration::milliseconds(400);
    let (mut rx, _stop, task) = start_follow(
        &path,
        ReadOptions {
            until: Some(until),
            tail: Some(0),
            ..all()
        },
        true,
    );
    // Let the follower take its snapshot first (tail 0: it would skip what is in it).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut w = LogWriter::open(&path, LogConfig::default()).unwrap();
    w.write(Stream::Stdout, b"line 10\n").unwrap();
    assert_eq!(numbers(&recv_n(&mut rx, 1).await), [10]);
    tokio::time::sleep(Duration::from_millis(600)).await;
    w.write(Stream::Stdout, b"line 11\n").unwrap();
    finish(task).await;
    assert!(rx.recv().await.is_none());
}

#[tokio::test(flavor = "current_thread")]
async fn logs_follow_future_is_send_and_works_on_current_thread() {
    let dir = tempfile::tempdir().unwrap();
    let path = log_path(&dir);
    ten(&path, LogConfig::default());
    let (tx, mut rx) = mpsc::channel(4);
    let task = tokio::spawn(follow(path.clone(), all(), tx, std::future::ready(())));
    let got = recv_n(&mut rx, 10).await;
    finish(task).await;
    assert_eq!(numbers(&got), (0..10).collect::<Vec<_>>());
    let seen: HashSet<usize> = numbers(&got).into_iter().collect();
    assert_eq!(seen.len(), 10);
}

// ---------------------------------------------------------------------------------------
// parse_time_arg

#[test]
fn logs_parse_time_arg_durations() {
    let now = datetime!(2026-11-22 12:00:00.5 +01:00);
    let p = |s: &str| parse_time_arg(s, now).unwrap();
    assert_eq!(p("10m"), now - time::Duration::minutes(10));
    assert_eq!(p("1h30m"), now - time::Duration::minutes(90));
    assert_eq!(p("2h"), now - time::Duration::hours(2));
    assert_eq!(p("30s"), now - secs(30));
    assert_eq!(p("1.5h"), now - time::Duration::minutes(90));
    assert_eq!(p(".5s"), now - time::Duration::milliseconds(500));
    assert_eq!(p("300ms"), now - time::Duration::milliseconds(300));
    assert_eq!(p("1us"), now - time::Duration::microseconds(1));
    assert_eq!(p("1µs"), now - time::Duration::microseconds(1));
    assert_eq!(p("7ns"), now - time::Duration::nanoseconds(7));
    assert_eq!(p("-5m"), now + time::Duration::minutes(5));
    assert_eq!(p("+5m"), now - time::Duration::minutes(5));
    assert_eq!(p("0s"), now);
    assert_eq!(p(" 10m "), now - time::Duration::minutes(10));
    assert!(matches!(parse_time_arg("3000000h", now), Err(LogError::OutOfRange(_))));
    assert!(matches!(parse_time_arg("10x", now), Err(LogError::Unrecognized(_))));
    assert!(matches!(parse_time_arg("1h30", now), Err(LogError::Unrecognized(_))));
    assert!(matches!(parse_time_arg("h", now), Err(LogError::Unrecognized(_))));
    assert!(matches!(parse_time_arg("", now), Err(LogError::Empty)));
}

#[test]
fn logs_parse_time_arg_unix_timestamps() {
    let now = datetime!(2026-11-22 12:00:00 UTC);
    let p = |s: &str| parse_time_arg(s, now).unwrap();
    assert_eq!(p("1700000000"), datetime!(2023-11-14 22:13:20 UTC));
    assert_eq!(p("1700000000.5"), datetime!(2023-11-14 22:13:20.5 UTC));
    assert_eq!(p("1700000000.000000001"), datetime!(2023-11-14 22:13:20.000000001 UTC));
    assert_eq!(p("1700000000.1234567891"), datetime!(2023-11-14 22:13:20.123456789 UTC));
    // "0" is the epoch in Docker, not a zero duration.
    assert_eq!(p("0"), OffsetDateTime::UNIX_EPOCH);
    assert!(matches!(
        parse_time_arg("1700000000.", now),
        Err(LogError::Unrecognized(_))
    ));
    assert!(matches!(parse_time_arg("1.2.3", now), Err(LogError::Unrecognized(_))));
    assert!(matches!(
        parse_time_arg("99999999999999999999", now),
        Err(LogError::OutOfRange(_))
    ));
    assert!(matches!(
        parse_time_arg("999999999999", now),
        Err(LogError::OutOfRange(_))
    ));
}

#[test]
fn logs_parse_time_arg_rfc3339() {
    let now = datetime!(2026-11-22 12:00:00 +02:00);
    let p = |s: &str| parse_time_arg(s, now).unwrap();
    assert_eq!(p("2026-11-22T04:38:40Z"), datetime!(2026-11-22 04:38:40 UTC));
    assert_eq!(
        p("2026-11-22T04:38:40.335804123Z"),
        datetime!(2026-11-22 04:38:40.335804123 UTC)
    );
    assert_eq!(p("2026-11-22T04:38:40.5z"), datetime!(2026-11-22 04:38:40.5 UTC));
    assert_eq!(p("2026-11-22T04:38:40+01:00"), datetime!(2026-11-22 03:38:40 UTC));
    assert_eq!(p("2026-11-22T04:38:40.25-05:30"), datetime!(2026-11-22 10:08:40.25 UTC));
    // Shorter forms, as the docker CLI accepts them.
    assert_eq!(p("2026-11-22T04:38Z"), datetime!(2026-11-22 04:38 UTC));
    assert_eq!(p("2026-11-22T04Z"), datetime!(2026-11-22 04:00 UTC));
    assert_eq!(p("2026-11-22Z"), datetime!(2026-11-22 00:00 UTC));
    assert_eq!(p("2026-11-22+01:00"), datetime!(2026-11-21 23:00 UTC));
    // No zone: now's offset (+02:00).
    assert_eq!(p("2026-11-22T04:38:40"), datetime!(2026-11-22 02:38:40 UTC));
    assert_eq!(p("2026-11-22T04:38:40.5"), datetime!(2026-11-22 02:38:40.5 UTC));
    assert_eq!(p("2026-11-22"), datetime!(2026-11-21 22:00 UTC));
    for bad in [
        "2026-13-01",
        "2026-02-30T00:00:00Z",
        "2026-11-22T25:00Z",
        "2026-11-22T04:38:40.Z",
        "2026-11-22T04:38:40Zjunk",
        "2026-1-2",
        "2026-11-22T04:38:40+0100",
    ] {
        assert!(
            matches!(parse_time_arg(bad, now), Err(LogError::InvalidTimestamp { .. })),
            "{bad}"
        );
    }
    // Results are in UTC.
    assert_eq!(p("2026-11-22T04:38:40+01:00").offset(), time::UtcOffset::UTC);
}
