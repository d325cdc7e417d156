//! The container's init, from the clone to the execve of the workload. It runs the slipway
//! binary's code in the new namespaces, never longer than set-up takes, and is not
//! dumpable meanwhile, so nothing in the container can reach /proc/<init>/exe
//! (CVE-2019-5736). The workload is exec'd directly: no host binary stays behind as PID 1.

use std::os::fd::{AsFd, AsRawFd};

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns, unshare};

use super::sync::{self, Channel, Message};
use super::workload::{self, Failure, Never};
use super::{InitConfig, Stdio};
use crate::rootfs::{self, RootfsConfig};

/// Runs the init; never returns. On failure it reports why on the channel and exits 127.
pub fn run(cfg: &InitConfig, stdio: Stdio, chan: &Channel) -> ! {
    match setup(cfg, stdio, chan) {
        Ok(never) => match never {},
        Err(f) => workload::fail(chan, f),
    }
}

/// Points fds 0, 1 and 2 at what the runtime chose.
pub fn install_stdio(stdio: Stdio) -> Result<(), Failure> {
    for (target, fd) in [(0, stdio.stdin), (1, stdio.stdout), (2, stdio.stderr)] {
        if let Some(fd) = fd {
            Errno::result(unsafe { libc::dup2(fd, target) }).map_err(|e| ("setting up stdio", e))?;
        }
    }
    Ok(())
}

fn setup(cfg: &InitConfig, stdio: Stdio, chan: &Channel) -> Result<Never, Failure> {
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // If the runtime dies before it starts us, so do we.
    if cfg.die_with_parent {
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    install_stdio(stdio)?;

    // Wait until the runtime has put us into our cgroup.
    match chan.recv().map_err(|e| ("waiting for the runtime", e))? {
        Message::Byte(sync::GO) => {}
        Message::Closed => return Err(Failure("the runtime went away".into())),
        _ => return Err(Failure("unexpected message from the runtime".into())),
    }

    for (fd, flag) in &cfg.join {
        setns(fd.as_fd(), *flag).map_err(|e| ("joining a namespace", e))?;
    }
    // After joining the cgroup, so the container's view of cgroups is rooted at its own.
    if cfg.new_cgroupns {
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(|e| ("creating the cgroup namespace", e))?;
    }
    if cfg.clone_flags.contains(CloneFlags::CLONE_NEWUTS) {
        if let Some(h) = &cfg.hostname {
            nix::unistd::sethostname(h).map_err(|e| ("setting the hostname", e))?;
        }
        if let Some(d) = &cfg.domainname {
            let r = unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) };
            Errno::result(r).map_err(|e| ("setting the domain name", e))?;
        }
    }
    if cfg.new_netns {
        loopback_up().map_err(|e| ("bringing up lo", e))?;
    }

    rootfs::prepare(&RootfsConfig {
        rootfs: &cfg.rootfs,
        overlay: cfg.overlay.as_ref(),
        bundle: &cfg.bundle,
        mounts: &cfg.mounts,
        devices: &cfg.devices,
        propagation: cfg.propagation,
        cgroup_fs: &cfg.cgroup_fs,
        console: cfg.process.terminal.is_some(),
    })
    .map_err(|e| ("building the root filesystem", e))?;

    // The console comes from the container's own devpts, and /dev/console is bound to it.
    workload::console(&cfg.process, chan, |slave| {
        rootfs::bind_console(slave).map_err(|e| Failure::from(("binding /dev/console", e)))
    })?;

    rootfs::finish(&cfg.masked_paths, &cfg.readonly_paths, &cfg.sysctl, cfg.readonly_root)
        .map_err(|e| ("finishing the root filesystem", e))?;

    workload::finish(&cfg.process, chan)
}

/// Brings up the loopback interface of a new network namespace.
fn loopback_up() -> Result<(), Errno> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (i, b) in b"lo\0".iter().enumerate() {
        req.ifr_name[i] = *b as libc::c_char;
    }
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) })?;
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) })?;
    Ok(())
}
