//! The console of a container with `process.terminal`: a pty from the container's own
//! devpts instance, whose slave becomes the workload's controlling terminal and whose
//! master goes to the runtime.

use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};

/// A terminal size in rows and columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WinSize {
    pub rows: u16,
    pub cols: u16,
}

pub fn set_size(fd: &impl AsRawFd, size: WinSize) -> Result<(), Errno> {
    let ws = libc::winsize {
        ws_row: size.rows,
        ws_col: size.cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    Errno::result(r).map(drop)
}

pub fn get_size(fd: &impl AsRawFd) -> Result<WinSize, Errno> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
    Errno::result(r).map(|_| WinSize {
        rows: ws.ws_row,
        cols: ws.ws_col,
    })
}

/// Opens a pty in the current /dev/pts; returns the master and the slave's path.
pub fn open_pty() -> Result<(OwnedFd, PathBuf), Errno> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let slave = ptsname_r(&master)?;
    Ok((master.into(), PathBuf::from(slave)))
}

/// Makes the slave the calling process's controlling terminal and its stdio.
pub fn become_session_leader_on(slave: &std::path::Path) -> Result<(), Errno> {
    nix::unistd::setsid()?;
    let fd = nix::fcntl::open(slave, OFlag::O_RDWR | OFlag::O_NOCTTY, nix::sys::stat::Mode::empty())?;
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSCTTY, 0) };
    Errno::result(r)?;
    let raw = fd.into_raw_fd();
    for target in 0..3 {
        if raw != target {
            Errno::result(unsafe { libc::dup2(raw, target) })?;
        }
    }
    if raw > 2 {
        unsafe { libc::close(raw) };
    }
    Ok(())
}
