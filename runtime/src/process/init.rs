//! The container's init, from the clone to the execve of the workload. It runs the slipway
//! binary's code in the new namespaces, never longer than set-up takes, and is not
//! dumpable meanwhile, so nothing in the container can reach /proc/<init>/exe
//! (CVE-2019-5736). The workload is exec'd directly: no host binary stays behind as PID 1.

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::{CloneFlags, setns, unshare};
use nix::unistd::{Gid, Uid};

use super::sync::{self, Channel, Message};
use super::{InitConfig, Stdio, caps, console};
use crate::rootfs::{self, RootfsConfig};

/// A failed step, reported to the runtime as text.
struct Failure(String);

impl<E: std::fmt::Display> From<(&'static str, E)> for Failure {
    fn from((step, e): (&'static str, E)) -> Failure {
        Failure(format!("{step}: {e}"))
    }
}

/// Runs the init; never returns. On failure it reports why on the channel and exits 127.
pub fn run(cfg: &InitConfig, stdio: Stdio, chan: &Channel) -> ! {
    let failure = match setup(cfg, stdio, chan) {
        Ok(never) => match never {},
        Err(f) => f,
    };
    let _ = chan.send_error(&failure.0);
    unsafe { libc::_exit(127) }
}

enum Never {}

fn setup(cfg: &InitConfig, stdio: Stdio, chan: &Channel) -> Result<Never, Failure> {
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    // If the runtime dies before it starts us, so do we.
    if cfg.die_with_parent {
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }
    for (target, fd) in [(0, stdio.stdin), (1, stdio.stdout), (2, stdio.stderr)] {
        if let Some(fd) = fd {
            Errno::result(unsafe { libc::dup2(fd, target) })
                .map_err(|e| ("setting up stdio", e))?;
        }
    }

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
        console: cfg.terminal.is_some(),
    })
    .map_err(|e| ("building the root filesystem", e))?;

    if let Some(size) = cfg.terminal {
        let (master, slave) = console::open_pty().map_err(|e| ("opening the console", e))?;
        if let Some(size) = size {
            console::set_size(&master, size).map_err(|e| ("sizing the console", e))?;
        }
        rootfs::bind_console(&slave).map_err(|e| ("binding /dev/console", e))?;
        chan.send_fd(sync::CONSOLE, master.as_raw_fd())
            .map_err(|e| ("sending the console", e))?;
        drop(master);
        console::become_session_leader_on(&slave).map_err(|e| ("taking the console", e))?;
    } else {
        // A session of our own, as runc gives: signals to the caller's group stay there.
        let _ = nix::unistd::setsid();
    }

    rootfs::finish(
        &cfg.masked_paths,
        &cfg.readonly_paths,
        &cfg.sysctl,
        cfg.readonly_root,
    )
    .map_err(|e| ("finishing the root filesystem", e))?;

    if let Some(adj) = cfg.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .map_err(|e| ("setting oom_score_adj", e))?;
    }
    for &(resource, soft, hard) in &cfg.rlimits {
        nix::sys::resource::setrlimit(resource, soft, hard)
            .map_err(|e| ("setting an rlimit", e))?;
    }
    if cfg.no_new_privileges {
        let r = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        Errno::result(r).map_err(|e| ("setting no_new_privs", e))?;
    }
    // Without no_new_privs, loading a filter needs CAP_SYS_ADMIN: load it while we still
    // have it (the profile allows the calls that follow). With it, load it last.
    if !cfg.no_new_privileges
        && let Some(filter) = &cfg.seccomp
    {
        filter
            .install()
            .map_err(|e| ("loading the seccomp filter", e))?;
    }

    caps::drop_bounding(&cfg.caps, cfg.last_cap)
        .map_err(|e| ("dropping capabilities from the bounding set", e))?;
    set_user(cfg)?;
    caps::apply(&cfg.caps).map_err(|e| ("setting capabilities", e))?;
    if let Some(mask) = cfg.umask {
        nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(mask));
    }

    nix::unistd::chdir(&cfg.cwd).map_err(|e| ("entering the working directory", e))?;
    // A working directory reached through a leaked descriptor would lie outside the root:
    // getcwd then answers "(unreachable)" (CVE-2024-21626).
    let cwd = nix::unistd::getcwd().map_err(|e| ("reading the working directory", e))?;
    if !cwd.is_absolute() || cwd.as_os_str().as_bytes().starts_with(b"(unreachable)") {
        return Err(Failure(format!(
            "the working directory {} is outside the container",
            cfg.cwd.display()
        )));
    }

    let program = resolve_program(cfg)?;
    crate::linux::cloexec_from(3).map_err(|e| ("closing inherited descriptors", e))?;

    chan.send(sync::READY)
        .map_err(|e| ("reporting readiness", e))?;
    match chan.recv().map_err(|e| ("waiting for start", e))? {
        Message::Byte(sync::START) => {}
        Message::Closed => return Err(Failure("the runtime went away before start".into())),
        _ => return Err(Failure("unexpected message while waiting for start".into())),
    }
    // Started: from here the workload lives on its own, whatever becomes of the runtime.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };

    if cfg.no_new_privileges
        && let Some(filter) = &cfg.seccomp
    {
        filter
            .install()
            .map_err(|e| ("loading the seccomp filter", e))?;
    }
    let env: Vec<&CStr> = cfg.env.iter().map(|e| e.as_c_str()).collect();
    let errno = match &cfg.init_exe {
        // `--init`: the tiny init runs as PID 1 and starts the workload, as Docker's does.
        Some(fd) => {
            let argv: Vec<&CStr> = [c"docker-init", c"--", program.as_c_str()]
                .into_iter()
                .chain(cfg.args[1..].iter().map(|a| a.as_c_str()))
                .collect();
            nix::unistd::fexecve(fd, &argv, &env).unwrap_err()
        }
        None => {
            let argv: Vec<&CStr> = cfg.args.iter().map(|a| a.as_c_str()).collect();
            nix::unistd::execve(program.as_c_str(), &argv, &env).unwrap_err()
        }
    };
    Err(Failure(format!("exec {:?}: {errno}", cfg.args[0])))
}

fn set_user(cfg: &InitConfig) -> Result<(), Failure> {
    let groups: Vec<Gid> = cfg
        .additional_gids
        .iter()
        .map(|&g| Gid::from_raw(g))
        .collect();
    nix::unistd::setgroups(&groups).map_err(|e| ("setting supplementary groups", e))?;
    let gid = Gid::from_raw(cfg.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| ("setting the group", e))?;
    if cfg.uid != 0 {
        // Keep the permitted set across the change of user; `caps::apply` sets it after.
        let r = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) };
        Errno::result(r).map_err(|e| ("keeping capabilities", e))?;
    }
    let uid = Uid::from_raw(cfg.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| ("setting the user", e))?;
    Ok(())
}

/// args[0] as execve needs it: as given when it holds a slash, else found on $PATH.
fn resolve_program(cfg: &InitConfig) -> Result<CString, Failure> {
    let name = &cfg.args[0];
    if name.as_bytes().contains(&b'/') {
        return Ok(name.clone());
    }
    for dir in &cfg.path {
        let candidate = Path::new(dir).join(std::ffi::OsStr::from_bytes(name.as_bytes()));
        if let Ok(meta) = std::fs::metadata(&candidate)
            && meta.is_file()
            && nix::unistd::access(&candidate, nix::unistd::AccessFlags::X_OK).is_ok()
        {
            return CString::new(candidate.as_os_str().as_bytes())
                .map_err(|e| ("naming the program", e).into());
        }
    }
    Err(Failure(format!(
        "exec: \"{}\": executable file not found in $PATH",
        name.to_string_lossy()
    )))
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
