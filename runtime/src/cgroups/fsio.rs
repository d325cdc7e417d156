//! Small file helpers for cgroupfs: one write(2) per value, errors that name the file.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::CgroupError;

pub(crate) fn io_err(cgroup: &str, op: impl Into<String>, file: &Path, e: io::Error) -> CgroupError {
    CgroupError::Io {
        cgroup: cgroup.to_string(),
        op: op.into(),
        file: file.to_path_buf(),
        source: e,
    }
}

/// Writes `value` with a single write(2), as cgroupfs expects (no O_CREAT, no O_TRUNC).
pub(crate) fn write(cgroup: &str, file: &Path, value: &str) -> Result<(), CgroupError> {
    let op = || format!("write {value:?} to");
    let mut f = OpenOptions::new()
        .write(true)
        .open(file)
        .map_err(|e| io_err(cgroup, op(), file, e))?;
    let n = f.write(value.as_bytes()).map_err(|e| io_err(cgroup, op(), file, e))?;
    if n != value.len() {
        return Err(io_err(
            cgroup,
            op(),
            file,
            io::Error::new(io::ErrorKind::WriteZero, "short write"),
        ));
    }
    Ok(())
}

pub(crate) fn read(cgroup: &str, file: &Path) -> Result<String, CgroupError> {
    std::fs::read_to_string(file).map_err(|e| io_err(cgroup, "read", file, e))
}

/// Like [`read`], but a missing file (or one the kernel does not offer) gives `None`.
pub(crate) fn read_opt(cgroup: &str, file: &Path) -> Result<Option<String>, CgroupError> {
    match std::fs::read_to_string(file) {
        Ok(s) => Ok(Some(s)),
        Err(e) if is_absent(&e) => Ok(None),
        Err(e) => Err(io_err(cgroup, "read", file, e)),
    }
}

pub(crate) fn is_absent(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::ENODEV) | Some(libc::EOPNOTSUPP)
    )
}

fn parse_err(cgroup: &str, file: &Path, content: &str) -> CgroupError {
    CgroupError::Parse {
        cgroup: cgroup.to_string(),
        file: file.to_path_buf(),
        content: content.chars().take(200).collect(),
    }
}

/// Values at or above this are v1's "no limit" (`PAGE_COUNTER_MAX * page size`, e.g.
/// 9223372036854771712) and are reported as `u64::MAX`.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_0000;

/// Parses one number; `max` (and v1's huge "unlimited" values) become `u64::MAX`.
pub(crate) fn parse_limit(cgroup: &str, file: &Path, text: &str) -> Result<u64, CgroupError> {
    let t = text.trim();
    if t == "max" || t == "-1" {
        return Ok(u64::MAX);
    }
    let v: u64 = t.parse().map_err(|_| parse_err(cgroup, file, text))?;
    Ok(if v >= V1_UNLIMITED { u64::MAX } else { v })
}

/// Reads one number (see [`parse_limit`]); `None` when the file is absent.
pub(crate) fn read_u64_opt(cgroup: &str, file: &Path) -> Result<Option<u64>, CgroupError> {
    match read_opt(cgroup, file)? {
        Some(text) => parse_limit(cgroup, file, &text).map(Some),
        None => Ok(None),
    }
}

/// Parses "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control).
/// Lines whose value is not a number are skipped.
pub(crate) fn parse_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

pub(crate) fn read_keyed_opt(cgroup: &str, file: &Path) -> Result<Option<BTreeMap<String, u64>>, CgroupError> {
    Ok(read_opt(cgroup, file)?.map(|t| parse_keyed(&t)))
}

pub(crate) fn parse_pids(cgroup: &str, file: &Path, text: &str) -> Result<Vec<i32>, CgroupError> {
    text.split_whitespace()
        .map(|w| w.parse().map_err(|_| parse_err(cgroup, file, text)))
        .collect()
}

/// Adds the pids of `dir`'s `cgroup.procs` (and of every descendant if `recursive`) to `out`.
/// Returns false if `dir` does not exist.
pub(crate) fn collect_procs(
    cgroup: &str,
    dir: &Path,
    recursive: bool,
    out: &mut BTreeSet<i32>,
) -> Result<bool, CgroupError> {
    let file = dir.join("cgroup.procs");
    let Some(text) = read_opt(cgroup, &file)? else {
        return Ok(false);
    };
    out.extend(parse_pids(cgroup, &file, &text)?);
    if recursive {
        for sub in subdirs(cgroup, dir)? {
            collect_procs(cgroup, &sub, true, out)?;
        }
    }
    Ok(true)
}

/// The child cgroups (subdirectories) of `dir`; none if `dir` is gone.
pub(crate) fn subdirs(cgroup: &str, dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if is_absent(&e) => return Ok(Vec::new()),
        Err(e) => return Err(io_err(cgroup, "list", dir, e)),
    };
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| io_err(cgroup, "list", dir, e))?;
        let ft = entry
            .file_type()
            .map_err(|e| io_err(cgroup, "stat", &entry.path(), e))?;
        if ft.is_dir() {
            out.push(entry.path());
        }
    }
    out.sort();
    Ok(out)
}

/// `mkdir` that accepts an existing directory.
pub(crate) fn mkdir(cgroup: &str, dir: &Path) -> Result<bool, CgroupError> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io_err(cgroup, "mkdir", dir, e)),
    }
}

/// Removes `dir` and its subdirectories (deepest first), retrying EBUSY until `timeout`.
/// A missing directory is fine.
pub(crate) fn remove_tree(cgroup: &str, dir: &Path, timeout: Duration) -> Result<(), CgroupError> {
    for sub in subdirs(cgroup, dir)? {
        remove_tree(cgroup, &sub, timeout)?;
    }
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && start.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            Err(e) => return Err(io_err(cgroup, "rmdir", dir, e)),
        }
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn cgroups_fsio_parse_limits_and_keyed() {
        let f = Path::new("x");
        assert_eq!(parse_limit("c", f, "max\n").unwrap(), u64::MAX);
        assert_eq!(parse_limit("c", f, "9223372036854771712\n").unwrap(), u64::MAX);
        assert_eq!(parse_limit("c", f, "16777216\n").unwrap(), 16 << 20);
        assert!(parse_limit("c", f, "lots").is_err());
        let m = parse_keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n");
        assert_eq!(m["oom_kill"], 3);
        assert_eq!(parse_pids("c", f, "1\n22\n").unwrap(), vec![1, 22]);
    }
}
