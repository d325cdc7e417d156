//! The last steps before a container process becomes its workload, shared by a container's
//! init and by `exec`: console, rlimits, no_new_privs, seccomp, capabilities, user,
//! working directory, descriptors, the START handshake, and execve.

use std::ffi::{CStr, CString};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;
use nix::unistd::{Gid, Uid};

use super::sync::{self, Channel, Message};
use super::{ProcessConfig, caps, console};

/// A failed step, reported to the runtime as text.
pub struct Failure(pub String);

impl<E: std::fmt::Display> From<(&'static str, E)> for Failure {
    fn from((step, e): (&'static str, E)) -> Failure {
        Failure(format!("{step}: {e}"))
    }
}

pub enum Never {}

/// Reports `failure` and exits 127: what every set-up error ends in.
pub fn fail(chan: &Channel, failure: Failure) -> ! {
    let _ = chan.send_error(&failure.0);
    unsafe { libc::_exit(127) }
}

/// Opens the console (a pty of the current /dev/pts), hands its master to the runtime and
/// makes its slave the controlling terminal and stdio; `before_taking` runs with the
/// slave's path first (the init binds it over /dev/console).
pub fn console(
    cfg: &ProcessConfig,
    chan: &Channel,
    before_taking: impl FnOnce(&Path) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let Some(size) = cfg.terminal else {
        // A session of our own, as runc gives: signals to the caller's group stay there.
        let _ = nix::unistd::setsid();
        return Ok(());
    };
    let (master, slave) = console::open_pty().map_err(|e| ("opening the console", e))?;
    if let Some(size) = size {
        console::set_size(&master, size).map_err(|e| ("sizing the console", e))?;
    }
    before_taking(&slave)?;
    chan.send_fd(sync::CONSOLE, master.as_raw_fd())
        .map_err(|e| ("sending the console", e))?;
    drop(master);
    console::become_session_leader_on(&slave).map_err(|e| ("taking the console", e))?;
    Ok(())
}

/// Everything from rlimits to execve. Never returns on success.
pub fn finish(cfg: &ProcessConfig, chan: &Channel) -> Result<Never, Failure> {
    if let Some(adj) = cfg.oom_score_adj {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string()).map_err(|e| ("setting oom_score_adj", e))?;
    }
    for &(resource, soft, hard) in &cfg.rlimits {
        nix::sys::resource::setrlimit(resource, soft, hard).map_err(|e| ("setting an rlimit", e))?;
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
        filter.install().map_err(|e| ("loading the seccomp filter", e))?;
    }

    caps::drop_bounding(&cfg.caps, cfg.last_cap).map_err(|e| ("dropping capabilities from the bounding set", e))?;
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

    chan.send(sync::READY).map_err(|e| ("reporting readiness", e))?;
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
        filter.install().map_err(|e| ("loading the seccomp filter", e))?;
    }
    // As runc does: a process without HOME gets its user's home from the container's
    // /etc/passwd (or /), since shells and tools (go, pip) rely on it.
    let home = (!cfg.env.iter().any(|e| e.as_bytes().starts_with(b"HOME="))).then(|| home_of(cfg.uid));
    let env: Vec<&CStr> = cfg.env.iter().map(|e| e.as_c_str()).chain(home.as_deref()).collect();
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

/// `HOME=<dir>` for `uid` from /etc/passwd (already the container's), else `HOME=/`.
fn home_of(uid: u32) -> CString {
    let passwd = std::fs::read("/etc/passwd").unwrap_or_default();
    let home = passwd
        .split(|&b| b == b'\n')
        .map(|line| line.split(|&b| b == b':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2] == uid.to_string().as_bytes() && !f[5].is_empty())
        .map(|f| f[5].to_vec())
        .unwrap_or_else(|| b"/".to_vec());
    let mut var = b"HOME=".to_vec();
    var.extend(home.into_iter().filter(|&b| b != 0));
    CString::new(var).unwrap_or_else(|_| c"HOME=/".to_owned())
}

fn set_user(cfg: &ProcessConfig) -> Result<(), Failure> {
    let groups: Vec<Gid> = cfg.additional_gids.iter().map(|&g| Gid::from_raw(g)).collect();
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
fn resolve_program(cfg: &ProcessConfig) -> Result<CString, Failure> {
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
            return CString::new(candidate.as_os_str().as_bytes()).map_err(|e| ("naming the program", e).into());
        }
    }
    Err(Failure(format!(
        "exec: \"{}\": executable file not found in $PATH",
        name.to_string_lossy()
    )))
}
