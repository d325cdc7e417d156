//! `exec`: a new process in a running container.
//!
//! A helper forked from the (single-threaded) monitor enters the container's namespaces
//! through a pidfd of its init, all at once, then forks the process with CLONE_PARENT so
//! that it is the monitor's own child (the monitor reaps it and learns its exit code) and
//! lives in the container's PID namespace. The helper reports the PID and exits; the new
//! process sets itself up as the init does and execs. Both stay non-dumpable while they run
//! the runtime's code inside the container (CVE-2019-5736).

use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{CloneFlags, setns};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use super::init::install_stdio;
use super::sync::{self, Channel, Message};
use super::workload::{self, Failure, Never};
use super::{ProcessConfig, Spawned, Stdio};
use crate::error::RuntimeError;

/// The container to enter: a pidfd of its init and the namespaces it has of its own.
pub struct Target {
    pub pidfd: OwnedFd,
    pub namespaces: CloneFlags,
}

/// Starts an exec'd process, stopped before its set-up like an init: the caller joins it to
/// the container's cgroup, then sends GO, then START.
///
/// # Safety
/// The calling process must be single-threaded.
pub unsafe fn spawn(target: &Target, cfg: &ProcessConfig, stdio: Stdio) -> Result<Spawned, RuntimeError> {
    let (parent, child) = sync::pair().map_err(RuntimeError::os("creating the sync channel"))?;
    let helper = match unsafe { crate::linux::fork_into(CloneFlags::empty()) }
        .map_err(RuntimeError::os("forking the exec helper"))?
    {
        None => {
            drop(parent);
            helper(target, cfg, stdio, &child)
        }
        Some(pid) => pid,
    };
    drop(child);
    let reply = parent.recv();
    let _ = waitpid(helper, None);
    match reply.map_err(RuntimeError::os("waiting for the exec helper"))? {
        Message::Pid(pid) => Ok(Spawned {
            pid: Pid::from_raw(pid),
            channel: parent,
        }),
        Message::Error(e) => Err(RuntimeError::Init(e)),
        _ => Err(RuntimeError::Init("the exec helper went away".into())),
    }
}

fn helper(target: &Target, cfg: &ProcessConfig, stdio: Stdio, chan: &Channel) -> ! {
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    if let Err(e) = setns(target.pidfd.as_fd(), target.namespaces) {
        workload::fail(chan, Failure::from(("entering the container's namespaces", e)));
    }
    // The process is the monitor's child, in the container's PID namespace.
    match unsafe { crate::linux::fork_into(CloneFlags::CLONE_PARENT) } {
        Err(e) => workload::fail(chan, Failure::from(("forking into the container", e))),
        Ok(None) => match process(cfg, stdio, chan) {
            Ok(never) => match never {},
            Err(f) => workload::fail(chan, f),
        },
        Ok(Some(pid)) => {
            let code = if chan.send_pid(pid.as_raw()).is_ok() { 0 } else { 1 };
            unsafe { libc::_exit(code) }
        }
    }
}

fn process(cfg: &ProcessConfig, stdio: Stdio, chan: &Channel) -> Result<Never, Failure> {
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    install_stdio(stdio)?;
    match chan.recv().map_err(|e| ("waiting for the runtime", e))? {
        Message::Byte(sync::GO) => {}
        _ => return Err(Failure("the runtime went away".into())),
    }
    workload::console(cfg, chan, |_| Ok(()))?;
    workload::finish(cfg, chan)
}
