//! The OCI runtime operations over bundles, as runc's command line offers them: create,
//! start, state, kill, delete, and run (create and start in the foreground, then wait).
//! They run in the calling process, which must be single-threaded: `slipway runtime`
//! and the per-container monitor are.

use crate::linux::socket::SocketPath;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::cgroups::{Cgroup, Hierarchy};
use crate::error::RuntimeError;
use crate::process::sync::{self, Channel, Message};
use crate::process::{InitConfig, Stdio};
use crate::state::{Saved, StateDir, Status};

pub const DEFAULT_ROOT: &str = "/run/slipway/runtime";

/// The runtime over one state root.
pub struct Runtime {
    state: StateDir,
    hierarchy: Hierarchy,
    seccomp_cache: PathBuf,
}

#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Where to send the console's pty master (SCM_RIGHTS), as runc's --console-socket.
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
}

/// A container's init, set up and waiting to be started.
pub struct Launched {
    pub pid: Pid,
    pub channel: Channel,
    pub console: Option<OwnedFd>,
    pub cgroup: Cgroup,
    pub saved: Saved,
}

impl Runtime {
    pub fn new(root: &Path) -> Result<Runtime, RuntimeError> {
        let state = StateDir::new(root)?;
        Ok(Runtime {
            seccomp_cache: root.join(".seccomp"),
            state,
            hierarchy: Hierarchy::detect()?,
        })
    }

    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    pub fn hierarchy(&self) -> &Hierarchy {
        &self.hierarchy
    }

    /// Reads a bundle's config.json.
    pub fn load_bundle(bundle: &Path) -> Result<Spec, RuntimeError> {
        let path = bundle.join("config.json");
        Spec::load(&path).map_err(|e| RuntimeError::InvalidSpec(format!("{}: {e}", path.display())))
    }

    /// Sets up a container from `spec` and leaves its init waiting for START.
    ///
    /// The calling process must be single-threaded.
    pub fn launch(
        &self,
        id: &str,
        spec: &Spec,
        bundle: &Path,
        stdio: Stdio,
        configure: impl FnOnce(&mut InitConfig),
    ) -> Result<Launched, RuntimeError> {
        let dir = self.state.claim(id)?;
        let mut guard = Cleanup {
            dir: Some(dir.clone()),
            cgroup: None,
            pid: None,
        };

        let root = spec
            .root()
            .as_ref()
            .ok_or_else(|| RuntimeError::InvalidSpec("no root".into()))?;
        let rootfs = if root.path().is_absolute() {
            root.path().clone()
        } else {
            bundle.join(root.path())
        };
        let mut config = InitConfig::from_spec(spec, bundle.to_path_buf(), rootfs.clone())?;
        if let Some(seccomp) = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            config.process.seccomp = Some(crate::seccomp::compile(seccomp, Some(&self.seccomp_cache))?);
        }
        configure(&mut config);

        let cgroup_path = spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().as_ref())
            .map(|p| p.to_string_lossy().trim_start_matches('/').to_string())
            .unwrap_or_else(|| format!("slipway/{id}"));
        let cgroup = Cgroup::new(&self.hierarchy, &cgroup_path)?;
        cgroup.create()?;
        guard.cgroup = Some(cgroup_path.clone());
        if let Some(resources) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
            let mut resources = resources.clone();
            if let Some(devices) = resources.devices().clone() {
                resources.set_devices(Some(
                    devices
                        .into_iter()
                        .chain(crate::cgroups::runtime_default_devices())
                        .collect(),
                ));
            }
            cgroup.apply(&resources)?;
        }

        // SAFETY: the runtime's callers are single-threaded (see the type's docs).
        let spawned = unsafe { crate::process::spawn(&config, stdio)? };
        guard.pid = Some(spawned.pid);
        cgroup.add_process(spawned.pid.as_raw())?;
        spawned
            .channel
            .send(sync::GO)
            .map_err(RuntimeError::os("starting the init"))?;
        let console = crate::process::await_ready(&spawned.channel)?;
        let saved = Saved {
            id: id.to_string(),
            pid: spawned.pid.as_raw(),
            start_time: crate::linux::start_time(spawned.pid).unwrap_or(0),
            bundle: bundle.to_path_buf(),
            rootfs,
            cgroup: cgroup_path,
            created: crate::state::now_rfc3339(),
            started: false,
            annotations: spec.annotations().clone().unwrap_or_default(),
        };
        self.state.save(&saved)?;
        guard.defuse();
        Ok(Launched {
            pid: spawned.pid,
            channel: spawned.channel,
            console,
            cgroup,
            saved,
        })
    }

    /// `create`: the init waits until `start` connects to `<state>/<id>/start.sock`.
    pub fn create(&self, id: &str, bundle: &Path, options: &CreateOptions) -> Result<Saved, RuntimeError> {
        let spec = Self::load_bundle(bundle)?;
        let socket = self.state.dir(id).join("start.sock");
        // This process exits while the init waits: the init must not die with it.
        let launched = self.launch(id, &spec, bundle, Stdio::default(), |c| c.die_with_parent = false)?;
        let result = (|| {
            let listener = SocketPath::new(&socket)
                .and_then(|p| std::os::unix::net::UnixListener::bind(p.path()))
                .map_err(RuntimeError::io("creating the start socket"))?;
            if let Some(master) = &launched.console {
                send_console(options.console_socket.as_deref(), master)?;
            }
            if let Some(pid_file) = &options.pid_file {
                std::fs::write(pid_file, launched.pid.to_string()).map_err(RuntimeError::io("writing the pid file"))?;
            }
            Ok(listener)
        })();
        match result {
            // The init is waiting for START on the channel; a small waiter that outlives
            // this process hands it over when `start` connects.
            Ok(listener) => {
                hand_over_on_connect(launched.channel, listener)?;
                Ok(launched.saved)
            }
            Err(e) => {
                let _ = self.destroy(&launched.saved);
                Err(e)
            }
        }
    }

    /// `start`: releases a created container's workload.
    pub fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let mut saved = self.state.load(id)?;
        let status = self.status(&saved);
        if status != Status::Created {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                what: "cannot start".into(),
            });
        }
        let socket = self.state.dir(id).join("start.sock");
        let mut stream = SocketPath::new(&socket)
            .and_then(|p| std::os::unix::net::UnixStream::connect(p.path()))
            .map_err(RuntimeError::io("connecting to the start socket"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(RuntimeError::io("the start socket"))?;
        // The waiter answers once the init has exec'd (or failed to).
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut stream, &mut answer).map_err(RuntimeError::io("waiting for the start"))?;
        let _ = std::fs::remove_file(&socket);
        if let Some(error) = answer.strip_prefix("error: ") {
            return Err(RuntimeError::Init(error.to_string()));
        }
        saved.started = true;
        self.state.save(&saved)
    }

    /// The container's status as OCI defines it.
    pub fn status(&self, saved: &Saved) -> Status {
        if !saved.alive() {
            return Status::Stopped;
        }
        if !saved.started {
            return Status::Created;
        }
        match Cgroup::new(&self.hierarchy, &saved.cgroup).and_then(|c| c.is_frozen()) {
            Ok(true) => Status::Paused,
            _ => Status::Running,
        }
    }

    /// `state`: the OCI state document.
    pub fn state(&self, id: &str) -> Result<serde_json::Value, RuntimeError> {
        let saved = self.state.load(id)?;
        let status = self.status(&saved);
        Ok(serde_json::json!({
            "ociVersion": "1.2.0",
            "id": saved.id,
            "status": status,
            "pid": if status == Status::Stopped { 0 } else { saved.pid },
            "bundle": saved.bundle,
            "rootfs": saved.rootfs,
            "created": saved.created,
            "annotations": saved.annotations,
        }))
    }

    /// `kill`: signals the init through a pidfd, after checking it is still the container's.
    pub fn kill(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let saved = self.state.load(id)?;
        let pidfd = crate::linux::pidfd_open(saved.pid()).map_err(|_| not_running(&saved))?;
        if !saved.alive() {
            return Err(not_running(&saved));
        }
        crate::linux::pidfd_send_signal(&pidfd, signal as i32)
            .map_err(RuntimeError::os(format!("sending {signal} to {id}")))
    }

    /// `delete`: a stopped container's resources go; `force` kills a live one first.
    pub fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let saved = self.state.load(id)?;
        let status = self.status(&saved);
        if matches!(status, Status::Running | Status::Paused) && !force {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: status.to_string(),
                what: "cannot delete; stop it first or force".into(),
            });
        }
        self.destroy(&saved)
    }

    /// Kills whatever is left, removes the cgroup and the state.
    pub fn destroy(&self, saved: &Saved) -> Result<(), RuntimeError> {
        let cgroup = Cgroup::new(&self.hierarchy, &saved.cgroup)?;
        if saved.alive()
            && let Ok(fd) = crate::linux::pidfd_open(saved.pid())
        {
            let _ = crate::linux::pidfd_send_signal(&fd, libc::SIGKILL);
        }
        cgroup.destroy()?;
        self.state.remove(&saved.id)
    }

    /// `run`: create and start in the foreground, wait, clean up; the exit code of the
    /// workload (128 + n for a signal) is returned.
    pub fn run(&self, id: &str, bundle: &Path, detach: bool) -> Result<i32, RuntimeError> {
        let spec = Self::load_bundle(bundle)?;
        let mut launched = self.launch(id, &spec, bundle, Stdio::default(), |_| {})?;
        let terminal = launched.console.take();
        let result = self.start_and_wait(&mut launched, terminal, detach);
        if !detach || result.is_err() {
            let _ = self.destroy(&launched.saved);
        }
        result
    }

    fn start_and_wait(
        &self,
        launched: &mut Launched,
        terminal: Option<OwnedFd>,
        detach: bool,
    ) -> Result<i32, RuntimeError> {
        crate::process::release(&launched.channel)?;
        launched.saved.started = true;
        self.state.save(&launched.saved)?;
        if detach {
            return Ok(0);
        }
        crate::foreground::wait(launched.pid, terminal)
    }
}

fn not_running(saved: &Saved) -> RuntimeError {
    RuntimeError::WrongState {
        id: saved.id.clone(),
        status: "stopped".into(),
        what: "not running".into(),
    }
}

/// Sends the console's master to the socket a caller named (runc's --console-socket).
fn send_console(socket: Option<&Path>, master: &OwnedFd) -> Result<(), RuntimeError> {
    let Some(socket) = socket else {
        return Err(RuntimeError::InvalidSpec(
            "process.terminal is set: pass --console-socket".into(),
        ));
    };
    let stream = SocketPath::new(socket)
        .and_then(|p| std::os::unix::net::UnixStream::connect(p.path()))
        .map_err(RuntimeError::io(format!("connecting to {}", socket.display())))?;
    let fds = [master.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"console")];
    nix::sys::socket::sendmsg::<()>(
        stream.as_raw_fd(),
        &iov,
        &[nix::sys::socket::ControlMessage::ScmRights(&fds)],
        nix::sys::socket::MsgFlags::empty(),
        None,
    )
    .map_err(RuntimeError::os("sending the console"))?;
    Ok(())
}

/// For `create`: a small process that outlives this one. It holds the init's channel,
/// waits for `start` to connect (or for the init to die, which hangs the channel up),
/// tells the init to exec and answers `start` with the outcome.
fn hand_over_on_connect(channel: Channel, listener: std::os::unix::net::UnixListener) -> Result<(), RuntimeError> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    // SAFETY: the CLI is single-threaded.
    match unsafe { nix::unistd::fork() }.map_err(RuntimeError::os("forking the start waiter"))? {
        nix::unistd::ForkResult::Parent { .. } => Ok(()),
        nix::unistd::ForkResult::Child => {
            let _ = nix::unistd::setsid();
            // The waiter needs no stdio, and must not hold the caller's pipes open.
            if let Ok(null) = nix::fcntl::open("/dev/null", nix::fcntl::OFlag::O_RDWR, nix::sys::stat::Mode::empty()) {
                for fd in 0..3 {
                    unsafe { libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&null), fd) };
                }
            }
            let chan_fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(channel.raw()) };
            let code = loop {
                let mut fds = [
                    PollFd::new(listener.as_fd(), PollFlags::POLLIN),
                    PollFd::new(chan_fd, PollFlags::POLLIN),
                ];
                match poll(&mut fds, PollTimeout::NONE) {
                    Err(Errno::EINTR) => continue,
                    Err(_) => break 1,
                    Ok(_) => {}
                }
                if fds[1].revents().is_some_and(|r| !r.is_empty()) {
                    break 1; // the init is gone
                }
                let Ok((mut stream, _)) = listener.accept() else {
                    continue;
                };
                let answer = match channel.send(sync::START).map(|_| channel.recv()) {
                    Ok(Ok(Message::Closed)) => "started".to_string(),
                    Ok(Ok(Message::Error(e))) => format!("error: {e}"),
                    _ => "error: the init went away".to_string(),
                };
                let _ = std::io::Write::write_all(&mut stream, answer.as_bytes());
                break 0;
            };
            unsafe { libc::_exit(code) }
        }
    }
}

/// Waits for a child of this process, as an exit code (128 + signal when killed).
pub fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

pub fn reap(pid: Pid) -> Result<i32, RuntimeError> {
    loop {
        match waitpid(pid, None) {
            Ok(status) => {
                if let Some(code) = exit_code(status) {
                    return Ok(code);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(RuntimeError::os("waiting for the container")(e)),
        }
    }
}

struct Cleanup {
    dir: Option<PathBuf>,
    cgroup: Option<String>,
    pid: Option<Pid>,
}

impl Cleanup {
    fn defuse(&mut self) {
        self.dir = None;
        self.cgroup = None;
        self.pid = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(pid) = self.pid {
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(path) = &self.cgroup
            && let Ok(h) = Hierarchy::detect()
            && let Ok(c) = Cgroup::new(&h, path)
        {
            let _ = c.destroy();
        }
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
