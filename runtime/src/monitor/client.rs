//! The engine's side: containers run by monitors, driven over their sockets, from async
//! code. Nothing here forks: a monitor is a fresh process (`slipway runtime monitor`),
//! spawned like any other command. Signals, the freezer, stats and `top` need no monitor
//! and go straight to the kernel.
//!
//! All state is on disk, so a new [`Containers`] over the same root (a restarted server)
//! finds every container where the last one left it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::{Exit, MonitorConfig, MonitorProcess, OverlayConfig, Reply, Request, frame};
use crate::cgroups::{Cgroup, Hierarchy, Stats};
use crate::error::RuntimeError;
use crate::state::{Saved, StateDir, Status};

/// What to create.
#[derive(Debug, Clone)]
pub struct CreateOptions {
    pub spec: oci_spec::runtime::Spec,
    pub bundle: PathBuf,
    pub overlay: Option<OverlayConfig>,
    pub open_stdin: bool,
    pub init: bool,
    /// Where the container's logs go (kept by the caller across restarts of the container).
    pub log_path: PathBuf,
    pub log_max_size: Option<u64>,
    pub log_max_files: Option<usize>,
}

/// A container as the runtime knows it.
#[derive(Debug, Clone, Serialize)]
pub struct Info {
    pub id: String,
    pub pid: i32,
    pub status: Status,
    pub created: String,
    pub exit: Option<Exit>,
    /// Whether its monitor runs (its streams and exit code are kept).
    pub monitored: bool,
}

/// One line of `top`.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessEntry {
    pub pid: i32,
    pub ppid: i32,
    pub uid: u32,
    pub state: String,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
    /// User plus system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    pub rss_kib: u64,
    pub tty: i32,
    pub command: String,
}

/// What arrives on an attach or exec stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    Exit(Exit),
    Error(String),
}

/// The reading half of an attach or exec stream.
pub struct OutputStream {
    read: OwnedReadHalf,
    buf: Vec<u8>,
}

impl OutputStream {
    /// The next piece of output; None once the monitor has closed the stream.
    pub async fn next(&mut self) -> Result<Option<Output>, RuntimeError> {
        loop {
            if let Some((kind, payload, used)) = frame::decode(&self.buf) {
                let out = match kind {
                    frame::STDOUT => Output::Stdout(payload.to_vec()),
                    frame::STDERR => Output::Stderr(payload.to_vec()),
                    frame::EXIT => Output::Exit(
                        serde_json::from_slice(payload)
                            .map_err(|e| RuntimeError::InvalidSpec(format!("exit frame: {e}")))?,
                    ),
                    _ => Output::Error(String::from_utf8_lossy(payload).into_owned()),
                };
                self.buf.drain(..used);
                return Ok(Some(out));
            }
            let mut chunk = [0u8; 32 * 1024];
            let n = self
                .read
                .read(&mut chunk)
                .await
                .map_err(RuntimeError::io("reading from the monitor"))?;
            if n == 0 {
                return Ok(None);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// The writing half: input, end of input, terminal size.
pub struct InputSink {
    write: OwnedWriteHalf,
}

impl InputSink {
    async fn send(&mut self, kind: u8, payload: &[u8]) -> Result<(), RuntimeError> {
        let mut out = Vec::with_capacity(payload.len() + frame::HEADER);
        frame::encode(kind, payload, &mut out);
        self.write
            .write_all(&out)
            .await
            .map_err(RuntimeError::io("writing to the monitor"))
    }
    pub async fn write(&mut self, data: &[u8]) -> Result<(), RuntimeError> {
        self.send(frame::STDIN, data).await
    }
    pub async fn close_stdin(&mut self) -> Result<(), RuntimeError> {
        self.send(frame::CLOSE_STDIN, &[]).await
    }
    pub async fn resize(&mut self, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        let mut p = [0u8; 4];
        p[..2].copy_from_slice(&rows.to_be_bytes());
        p[2..].copy_from_slice(&cols.to_be_bytes());
        self.send(frame::RESIZE, &p).await
    }
}

/// An attached or exec stream: output one way, input the other.
pub struct Session {
    pub tty: bool,
    /// The exec'd process's PID (on the host), for exec sessions.
    pub pid: Option<i32>,
    pub output: OutputStream,
    pub input: InputSink,
}

/// The containers under one state root.
#[derive(Clone)]
pub struct Containers {
    state: StateDir,
    exe: PathBuf,
    hierarchy: std::sync::Arc<Hierarchy>,
}

impl Containers {
    /// `exe` is the slipway binary that runs monitors.
    pub fn new(root: &Path, exe: &Path) -> Result<Containers, RuntimeError> {
        Ok(Containers {
            state: StateDir::new(root)?,
            exe: exe.to_path_buf(),
            hierarchy: std::sync::Arc::new(Hierarchy::detect()?),
        })
    }

    pub fn root(&self) -> &Path {
        self.state.root()
    }

    fn socket(&self, id: &str) -> PathBuf {
        self.state.dir(id).join(super::SOCKET)
    }

    /// Creates a container through a new monitor; its workload waits for [`start`].
    pub async fn create(&self, id: &str, options: CreateOptions) -> Result<Info, RuntimeError> {
        crate::state::validate_id(id)?;
        if self.state.dir(id).exists() {
            return Err(RuntimeError::AlreadyExists(id.into()));
        }
        let config = MonitorConfig {
            spec: options.spec,
            bundle: options.bundle,
            overlay: options.overlay,
            open_stdin: options.open_stdin,
            init: options.init,
            log_path: options.log_path,
            log_max_size: options.log_max_size,
            log_max_files: options.log_max_files,
        };
        let mut child = tokio::process::Command::new(&self.exe)
            .arg("runtime")
            .arg("--root")
            .arg(self.state.root())
            .arg("monitor")
            .arg(id)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .map_err(RuntimeError::io(format!("starting the monitor {}", self.exe.display())))?;
        let mut stdin = child.stdin.take().expect("piped stdin");
        let json = serde_json::to_vec(&config).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
        stdin
            .write_all(&json)
            .await
            .map_err(RuntimeError::io("configuring the monitor"))?;
        drop(stdin);
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut answer = String::new();
        stdout
            .read_to_string(&mut answer)
            .await
            .map_err(RuntimeError::io("reading the monitor's answer"))?;
        // The monitor outlives this call (and this process); reap it when it ends.
        tokio::spawn(async move {
            let _ = child.wait().await;
        });
        let answer = answer.trim();
        if let Some(e) = answer.strip_prefix("error: ") {
            return Err(RuntimeError::Init(e.to_string()));
        }
        if !answer.starts_with("ok ") {
            return Err(RuntimeError::Init(format!(
                "the monitor failed to start{}",
                if answer.is_empty() {
                    String::new()
                } else {
                    format!(": {answer}")
                }
            )));
        }
        self.info(id)
    }

    async fn request(&self, id: &str, request: &Request) -> Result<(Reply, UnixStream, Vec<u8>), RuntimeError> {
        let path = crate::linux::socket::SocketPath::new(&self.socket(id));
        let connected = match &path {
            Ok(p) => UnixStream::connect(p.path()).await,
            Err(_) => Err(std::io::ErrorKind::NotFound.into()),
        };
        let mut stream = match connected {
            Ok(s) => s,
            Err(_) => {
                self.state.load(id)?;
                return Err(RuntimeError::WrongState {
                    id: id.into(),
                    status: "stopped".into(),
                    what: "its monitor has exited".into(),
                });
            }
        };
        let mut line = serde_json::to_vec(request).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
        line.push(b'\n');
        stream
            .write_all(&line)
            .await
            .map_err(RuntimeError::io("writing to the monitor"))?;
        let mut buf = Vec::new();
        loop {
            if let Some(end) = buf.iter().position(|&b| b == b'\n') {
                let reply: Reply = serde_json::from_slice(&buf[..end])
                    .map_err(|e| RuntimeError::InvalidSpec(format!("monitor reply: {e}")))?;
                let rest = buf[end + 1..].to_vec();
                return Ok((reply, stream, rest));
            }
            let mut chunk = [0u8; 4096];
            let n = stream
                .read(&mut chunk)
                .await
                .map_err(RuntimeError::io("reading from the monitor"))?;
            if n == 0 {
                return Err(RuntimeError::Init("the monitor closed the connection".into()));
            }
            buf.extend_from_slice(&chunk[..n]);
        }
    }

    async fn simple(&self, id: &str, request: Request) -> Result<Reply, RuntimeError> {
        let (reply, _, _) = self.request(id, &request).await?;
        if reply.ok {
            Ok(reply)
        } else {
            Err(RuntimeError::Init(reply.error.unwrap_or_default()))
        }
    }

    async fn session(&self, id: &str, request: Request) -> Result<Session, RuntimeError> {
        let (reply, stream, rest) = self.request(id, &request).await?;
        if !reply.ok {
            return Err(RuntimeError::Init(reply.error.unwrap_or_default()));
        }
        let (read, write) = stream.into_split();
        Ok(Session {
            tty: reply.tty.unwrap_or(false),
            pid: reply.pid,
            output: OutputStream { read, buf: rest },
            input: InputSink { write },
        })
    }

    /// Releases a created container's workload.
    pub async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        self.simple(id, Request::Start).await.map(drop)
    }

    /// Streams the container's output from now on (several clients may attach at once).
    pub async fn attach(&self, id: &str, stdin: bool, stdout: bool, stderr: bool) -> Result<Session, RuntimeError> {
        self.session(id, Request::Attach { stdin, stdout, stderr }).await
    }

    pub async fn resize(&self, id: &str, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        self.simple(id, Request::Resize { rows, cols }).await.map(drop)
    }

    /// Runs a process in the running container; the session ends with its exit.
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        process: oci_spec::runtime::Process,
    ) -> Result<Session, RuntimeError> {
        self.session(
            id,
            Request::Exec {
                id: exec_id.into(),
                process: Box::new(process),
            },
        )
        .await
    }

    pub async fn exec_resize(&self, id: &str, exec_id: &str, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        self.simple(
            id,
            Request::ExecResize {
                id: exec_id.into(),
                rows,
                cols,
            },
        )
        .await
        .map(drop)
    }

    /// Waits for the container to exit; answers at once for one that has.
    pub async fn wait(&self, id: &str) -> Result<Exit, RuntimeError> {
        if let Ok((reply, _, _)) = self.request(id, &Request::Wait).await
            && let Some(exit) = reply.exit
        {
            return Ok(exit);
        }
        // No monitor (any more): its record, or, for a container that lost its monitor,
        // the end of its init.
        loop {
            if let Some(exit) = self.exit_record(id) {
                return Ok(exit);
            }
            let saved = self.state.load(id)?;
            if !saved.alive() && !self.monitor_alive(id) {
                return Ok(self.exit_record(id).unwrap_or(Exit {
                    code: 255,
                    oom_killed: false,
                    finished_at: 0,
                }));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn exit_record(&self, id: &str) -> Option<Exit> {
        let text = std::fs::read(self.state.dir(id).join(super::EXIT_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    fn monitor_alive(&self, id: &str) -> bool {
        std::fs::read(self.state.dir(id).join(super::MONITOR_FILE))
            .ok()
            .and_then(|t| serde_json::from_slice::<MonitorProcess>(&t).ok())
            .is_some_and(|m| crate::linux::is_alive(nix::unistd::Pid::from_raw(m.pid), m.start_time))
    }

    /// Sends a signal to the container's init, through a pidfd.
    pub fn signal(&self, id: &str, signal: Signal) -> Result<(), RuntimeError> {
        let saved = self.state.load(id)?;
        let not_running = || RuntimeError::WrongState {
            id: id.into(),
            status: "stopped".into(),
            what: "not running".into(),
        };
        let pidfd = crate::linux::pidfd_open(saved.pid()).map_err(|_| not_running())?;
        if !saved.alive() {
            return Err(not_running());
        }
        crate::linux::pidfd_send_signal(&pidfd, signal as i32).map_err(RuntimeError::os(format!("signalling {id}")))
    }

    /// Docker's stop: `signal`, then SIGKILL to everything in the container after `timeout`.
    pub async fn stop(&self, id: &str, signal: Signal, timeout: Duration) -> Result<Exit, RuntimeError> {
        if self.info(id)?.status == Status::Paused {
            self.resume(id)?;
        }
        if self.signal(id, signal).is_ok()
            && let Ok(exit) = tokio::time::timeout(timeout, self.wait(id)).await
        {
            return exit;
        }
        let cgroup = self.cgroup(id)?;
        tokio::task::spawn_blocking(move || cgroup.kill_all())
            .await
            .map_err(|e| RuntimeError::Init(e.to_string()))??;
        self.wait(id).await
    }

    fn cgroup(&self, id: &str) -> Result<Cgroup, RuntimeError> {
        let saved = self.state.load(id)?;
        Ok(Cgroup::new(&self.hierarchy, &saved.cgroup)?)
    }

    pub fn pause(&self, id: &str) -> Result<(), RuntimeError> {
        Ok(self.cgroup(id)?.freeze()?)
    }

    pub fn resume(&self, id: &str) -> Result<(), RuntimeError> {
        Ok(self.cgroup(id)?.thaw()?)
    }

    pub fn stats(&self, id: &str) -> Result<Stats, RuntimeError> {
        Ok(self.cgroup(id)?.stats()?)
    }

    /// The container's processes, read from its cgroup and /proc.
    pub fn top(&self, id: &str) -> Result<Vec<ProcessEntry>, RuntimeError> {
        let mut pids = self.cgroup(id)?.all_procs()?;
        pids.sort_unstable();
        Ok(pids.into_iter().filter_map(process_entry).collect())
    }

    /// Everything known about a container.
    pub fn info(&self, id: &str) -> Result<Info, RuntimeError> {
        let saved = self.state.load(id)?;
        Ok(self.describe(&saved))
    }

    fn describe(&self, saved: &Saved) -> Info {
        let exit = self.exit_record(&saved.id);
        let alive = saved.alive();
        let status = if !alive {
            Status::Stopped
        } else if !saved.started {
            Status::Created
        } else {
            match Cgroup::new(&self.hierarchy, &saved.cgroup).and_then(|c| c.is_frozen()) {
                Ok(true) => Status::Paused,
                _ => Status::Running,
            }
        };
        Info {
            id: saved.id.clone(),
            pid: saved.pid,
            status,
            created: saved.created.clone(),
            exit: if alive { None } else { exit },
            monitored: self.monitor_alive(&saved.id),
        }
    }

    /// Every container under the root.
    pub fn list(&self) -> Vec<Info> {
        self.state
            .list()
            .iter()
            .filter_map(|id| self.state.load(id).ok())
            .map(|s| self.describe(&s))
            .collect()
    }

    /// Removes a container: a running one only with `force` (it is killed first).
    pub async fn delete(&self, id: &str, force: bool) -> Result<(), RuntimeError> {
        let info = self.info(id)?;
        if matches!(info.status, Status::Running | Status::Paused | Status::Created) {
            if !force && info.status != Status::Created {
                return Err(RuntimeError::WrongState {
                    id: id.into(),
                    status: info.status.to_string(),
                    what: "cannot remove; stop it first or force".into(),
                });
            }
            if info.status == Status::Paused {
                let _ = self.resume(id);
            }
            let cgroup = self.cgroup(id)?;
            tokio::task::spawn_blocking(move || cgroup.kill_all())
                .await
                .map_err(|e| RuntimeError::Init(e.to_string()))??;
        }
        // Let the monitor write the exit down and leave before its directory goes.
        for _ in 0..200 {
            if !self.monitor_alive(id) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let cgroup = self.cgroup(id)?;
        tokio::task::spawn_blocking(move || cgroup.destroy())
            .await
            .map_err(|e| RuntimeError::Init(e.to_string()))??;
        self.state.remove(id)
    }
}

fn process_entry(pid: i32) -> Option<ProcessEntry> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let comm = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
    let num = |i: usize| fields.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let args: Vec<String> = cmdline
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(ProcessEntry {
        pid,
        ppid: num(1) as i32,
        uid,
        state: fields.first().unwrap_or(&"?").to_string(),
        start_ticks: num(19),
        cpu_ticks: num(11) + num(12),
        rss_kib: num(21) * 4,
        tty: num(4) as i32,
        command: if args.is_empty() {
            format!("[{comm}]")
        } else {
            args.join(" ")
        },
    })
}
