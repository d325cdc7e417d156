//! Thin wrappers over the Linux system calls the runtime needs and libc or nix lack
//! (pidfds, close_range, a fork-like clone into new namespaces).

pub mod fs;
pub mod mount;
pub mod socket;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Forks into new namespaces: clone(2) with no new stack, like fork(2), plus `flags`.
///
/// # Safety
/// The caller must be single-threaded (Slipway calls it from its runtime helper or from the
/// CLI, never from the tokio server), as with fork(2).
pub unsafe fn fork_into(flags: CloneFlags) -> Result<Option<Pid>, Errno> {
    let raw = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags.bits() as libc::c_ulong) | libc::SIGCHLD as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    match Errno::result(raw)? {
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}

/// A file descriptor that refers to a process, immune to PID reuse.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    Errno::result(fd).map(|fd| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

pub fn pidfd_send_signal(pidfd: &OwnedFd, signal: i32) -> Result<(), Errno> {
    let r = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(r).map(drop)
}

/// Marks every descriptor from `first` up close-on-exec, so nothing the runtime holds leaks
/// into the workload (CVE-2024-21626).
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let r = unsafe { libc::syscall(libc::SYS_close_range, first, u32::MAX, CLOSE_RANGE_CLOEXEC) };
    Errno::result(r).map(drop)
}

/// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with
/// the PID, it names a process uniquely, so a saved PID is never mistaken for a new one.
pub fn start_time(pid: Pid) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether `pid` is still the process that started at `start`.
pub fn is_alive(pid: Pid, start: u64) -> bool {
    start_time(pid) == Some(start) && !is_zombie(pid)
}

fn is_zombie(pid: Pid) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rfind(')').map(|i| s[i + 2..].starts_with('Z')))
        .unwrap_or(false)
}
