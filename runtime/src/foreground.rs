//! `runtime run` in the foreground: wait for the workload, pass it the signals this process
//! gets (Ctrl+C reaches the container, as with runc), and, with a terminal, connect this
//! process's terminal to the container's console.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
use nix::sys::wait::{WaitPidFlag, waitpid};
use nix::unistd::Pid;

use crate::container::exit_code;
use crate::error::RuntimeError;
use crate::process::console;

const FORWARDED: [Signal; 7] = [
    Signal::SIGINT,
    Signal::SIGTERM,
    Signal::SIGHUP,
    Signal::SIGQUIT,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGWINCH,
];

/// Waits for `pid` (a child of this process) and returns its exit code.
pub fn wait(pid: Pid, terminal: Option<OwnedFd>) -> Result<i32, RuntimeError> {
    let mut mask = SigSet::empty();
    for s in FORWARDED {
        mask.add(s);
    }
    mask.add(Signal::SIGCHLD);
    let mut old = SigSet::empty();
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), Some(&mut old)).map_err(RuntimeError::os("blocking signals"))?;
    let result = (|| {
        let sfd = SignalFd::with_flags(&mask, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(RuntimeError::os("signalfd"))?;
        let stdin = std::io::stdin();
        let raw = terminal.as_ref().and_then(|_| tcgetattr(&stdin).ok());
        if let Some(attrs) = &raw {
            let mut r = attrs.clone();
            cfmakeraw(&mut r);
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, &r);
        }
        if let Some(master) = &terminal
            && let Ok(size) = console::get_size(&std::io::stdout())
        {
            let _ = console::set_size(master, size);
        }
        let code = pump(pid, &sfd, terminal.as_ref());
        if let Some(attrs) = &raw {
            let _ = tcsetattr(&stdin, SetArg::TCSANOW, attrs);
        }
        code
    })();
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    result
}

fn pump(pid: Pid, sfd: &SignalFd, master: Option<&OwnedFd>) -> Result<i32, RuntimeError> {
    let stdin = unsafe { BorrowedFd::borrow_raw(0) };
    let mut stdin_open = master.is_some();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // The child may have exited before we blocked SIGCHLD.
        if let Ok(status) = waitpid(pid, Some(WaitPidFlag::WNOHANG))
            && let Some(code) = exit_code(status)
        {
            if let Some(m) = master {
                drain(m, &mut buf);
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = master {
            fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            if stdin_open {
                fds.push(PollFd::new(stdin, PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(Errno::EINTR) => continue,
            Err(e) => return Err(RuntimeError::os("waiting")(e)),
            Ok(_) => {}
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
        let (sig_ready, master_ready, stdin_ready) = (ready(0), ready(1), ready(2));
        if sig_ready {
            while let Ok(Some(info)) = sfd.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                match sig {
                    Signal::SIGCHLD => {}
                    Signal::SIGWINCH => {
                        if let (Some(m), Ok(size)) = (master, console::get_size(&std::io::stdout())) {
                            let _ = console::set_size(m, size);
                        }
                    }
                    other => {
                        let _ = nix::sys::signal::kill(pid, other);
                    }
                }
            }
        }
        if let Some(m) = master {
            if master_ready {
                match nix::unistd::read(m, &mut buf) {
                    Ok(0) | Err(Errno::EIO) => {}
                    Ok(n) => write_all(1, &buf[..n]),
                    Err(_) => {}
                }
            }
            if stdin_ready {
                match nix::unistd::read(stdin, &mut buf) {
                    Ok(0) | Err(_) => stdin_open = false,
                    Ok(n) => write_all_fd(m.as_fd(), &buf[..n]),
                }
            }
        }
    }
}

fn drain(master: &OwnedFd, buf: &mut [u8]) {
    let _ = nix::fcntl::fcntl(master, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
    while let Ok(n) = nix::unistd::read(master, buf) {
        if n == 0 {
            break;
        }
        write_all(1, &buf[..n]);
    }
}

fn write_all(fd: i32, data: &[u8]) {
    write_all_fd(unsafe { BorrowedFd::borrow_raw(fd) }, data)
}

fn write_all_fd(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match nix::unistd::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::EINTR) | Err(Errno::EAGAIN) => continue,
            Err(_) => return,
        }
    }
}
