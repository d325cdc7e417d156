//! The monitor process itself: creates the container, then serves clients and relays its
//! streams until it has exited and everything is written down.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::path::Path;
use std::time::{Duration, Instant};

use mio::net::{UnixListener, UnixStream};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::{Exit, MonitorConfig, MonitorProcess, Reply, Request, frame};
use crate::cgroups::Cgroup;
use crate::container::{Launched, Runtime, exit_code};
use crate::error::RuntimeError;
use crate::logs::{LogConfig, LogWriter, Stream};
use crate::process::{ProcessConfig, Stdio, console};
use crate::rootfs::Overlay;

const LISTENER: Token = Token(0);
const SIGNALS: Token = Token(1);
/// A client that reads nothing while output piles up is dropped past this.
const MAX_BUFFERED: usize = 8 << 20;
/// After the init exits, how long output may keep arriving before the monitor ends.
const DRAIN: Duration = Duration::from_secs(2);

/// Runs the monitor for container `id` under `root`: reads its [`MonitorConfig`] from
/// standard input, creates the container, prints "ok <pid>" (or "error: ...") on standard
/// output, and serves until the container is gone. Called by `slipway runtime monitor`.
pub fn run(root: &Path, id: &str) -> Result<(), RuntimeError> {
    let _ = nix::unistd::setsid();
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(RuntimeError::io("reading the monitor's configuration"))?;
    let config: MonitorConfig =
        serde_json::from_slice(&input).map_err(|e| RuntimeError::InvalidSpec(format!("monitor configuration: {e}")))?;
    match Monitor::create(root, id, &config) {
        Ok(mut monitor) => {
            println!("ok {}", monitor.pid);
            let _ = std::io::stdout().flush();
            detach_stdio(&root.join(id).join(super::MONITOR_LOG));
            monitor.serve();
            Ok(())
        }
        Err(e) => {
            println!("error: {e}");
            let _ = std::io::stdout().flush();
            Err(e)
        }
    }
}

/// The monitor keeps no terminal or pipe of its caller: stdio goes to /dev/null and its own
/// diagnostics to a log file beside the container's state.
fn detach_stdio(log: &Path) {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    if let Ok(f) = std::fs::OpenOptions::new().create(true).append(true).open(log) {
        unsafe { libc::dup2(f.as_raw_fd(), 2) };
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), RuntimeError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(RuntimeError::os("creating a pipe"))
}

fn set_nonblocking(fd: &impl AsFd) {
    let _ = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK));
}

/// A copy of tini, sealed in memory, to be PID 1 of `--init` containers: nothing in the
/// container can reach a host file through it.
fn sealed_init() -> Result<OwnedFd, RuntimeError> {
    let source = ["/usr/bin/tini-static", "/usr/bin/catatonit"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .ok_or_else(|| RuntimeError::Unsupported("--init needs tini: apt-get install tini".into()))?;
    let bytes = std::fs::read(source).map_err(RuntimeError::io(format!("reading {source}")))?;
    let fd = nix::sys::memfd::memfd_create(
        c"docker-init",
        nix::sys::memfd::MFdFlags::MFD_CLOEXEC | nix::sys::memfd::MFdFlags::MFD_ALLOW_SEALING,
    )
    .map_err(RuntimeError::os("creating a memfd"))?;
    let mut file = std::fs::File::from(fd);
    file.write_all(&bytes).map_err(RuntimeError::io("copying the init"))?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    Errno::result(unsafe { libc::fcntl(file.as_raw_fd(), libc::F_ADD_SEALS, seals) })
        .map_err(RuntimeError::os("sealing the init"))?;
    Ok(OwnedFd::from(file))
}

/// Where a client's frames go, and what it receives.
enum Role {
    /// Still to send its request line.
    Request,
    Attached {
        stdout: bool,
        stderr: bool,
        stdin: bool,
    },
    Exec(String),
    Waiting,
    /// Replied; the connection closes once its buffer is written.
    Closing,
}

struct Client {
    stream: UnixStream,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
    role: Role,
    writable: bool,
}

/// The container's or an exec's streams, as the monitor holds them.
#[derive(Default)]
struct Io {
    /// A console's master (stdin and stdout both), or None with pipes.
    console: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    pending_stdin: Vec<u8>,
    close_stdin: bool,
}

impl Io {
    fn open_outputs(&self) -> usize {
        [&self.console, &self.stdout, &self.stderr]
            .iter()
            .filter(|f| f.is_some())
            .count()
    }
}

struct ExecSession {
    pid: Pid,
    io: Io,
    client: Token,
    exit: Option<i32>,
}

/// What a registered descriptor is.
#[derive(Clone, PartialEq, Eq)]
enum Source {
    Output {
        owner: Option<String>,
        stream: Stream,
        console: bool,
    },
    Input {
        owner: Option<String>,
    },
    Client,
}

struct Monitor {
    poll: Poll,
    listener: UnixListener,
    signals: SignalFd,
    pid: Pid,
    launched: Option<Launched>,
    runtime: Runtime,
    cgroup: Cgroup,
    oom_before: u64,
    spec: oci_spec::runtime::Spec,
    tty: bool,
    io: Io,
    log: LogWriter,
    clients: HashMap<Token, Client>,
    sources: HashMap<Token, Source>,
    fd_tokens: HashMap<RawFd, Token>,
    execs: HashMap<String, ExecSession>,
    exit: Option<Exit>,
    exited_at: Option<Instant>,
    next: usize,
    dir: std::path::PathBuf,
}

impl Monitor {
    fn create(root: &Path, id: &str, config: &MonitorConfig) -> Result<Monitor, RuntimeError> {
        let runtime = Runtime::new(root)?;
        let process = config
            .spec
            .process()
            .as_ref()
            .ok_or_else(|| RuntimeError::InvalidSpec("no process".into()))?;
        let tty = process.terminal().unwrap_or(false);
        let null = || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map(OwnedFd::from)
        };
        let null = null().map_err(RuntimeError::io("opening /dev/null"))?;
        let mut io = Io::default();
        // The child's ends, kept until the fork has copied them.
        let mut child_ends: Vec<OwnedFd> = Vec::new();
        let stdio = if tty {
            Stdio {
                stdin: Some(null.as_raw_fd()),
                stdout: Some(null.as_raw_fd()),
                stderr: Some(null.as_raw_fd()),
            }
        } else {
            let stdin = if config.open_stdin {
                let (r, w) = pipe()?;
                io.stdin = Some(w);
                let raw = r.as_raw_fd();
                child_ends.push(r);
                raw
            } else {
                null.as_raw_fd()
            };
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            io.stdout = Some(out_r);
            io.stderr = Some(err_r);
            let s = Stdio {
                stdin: Some(stdin),
                stdout: Some(out_w.as_raw_fd()),
                stderr: Some(err_w.as_raw_fd()),
            };
            child_ends.push(out_w);
            child_ends.push(err_w);
            s
        };
        let init_exe = if config.init { Some(sealed_init()?) } else { None };
        let overlay = config.overlay.as_ref().map(|o| Overlay {
            lower: o.lower.clone(),
            upper: o.upper.clone(),
            work: o.work.clone(),
        });
        let launched = runtime.launch(id, &config.spec, &config.bundle, stdio, |c| {
            c.overlay = overlay;
            c.process.init_exe = init_exe;
        })?;
        drop(child_ends);
        drop(null);
        // Past this point the container exists: a failure must not leave it (or its cgroup)
        // behind.
        let saved = launched.saved.clone();
        Self::assemble(runtime, launched, io, id, config, tty).inspect_err(|_| {
            if let Ok(r) = Runtime::new(root) {
                let _ = r.destroy(&saved);
            }
        })
    }

    fn assemble(
        runtime: Runtime,
        launched: Launched,
        mut io: Io,
        id: &str,
        config: &MonitorConfig,
        tty: bool,
    ) -> Result<Monitor, RuntimeError> {
        let mut launched = launched;
        io.console = launched.console.take();
        let dir = runtime.state_dir().dir(id);
        let cgroup = Cgroup::new(runtime.hierarchy(), &launched.saved.cgroup)?;
        let oom_before = cgroup.oom_kills().unwrap_or(0);
        let log = LogWriter::open(
            &config.log_path,
            LogConfig {
                max_size: config.log_max_size.unwrap_or(LogConfig::default().max_size),
                max_files: config.log_max_files.unwrap_or(LogConfig::default().max_files),
            },
        )
        .map_err(RuntimeError::io(format!(
            "opening the log {}",
            config.log_path.display()
        )))?;

        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
            Signal::SIGPIPE,
        ] {
            mask.add(s);
        }
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None).map_err(RuntimeError::os("blocking signals"))?;
        let mut childs = SigSet::empty();
        childs.add(Signal::SIGCHLD);
        let signals = SignalFd::with_flags(&childs, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
            .map_err(RuntimeError::os("signalfd"))?;

        let socket = dir.join(super::SOCKET);
        let _ = std::fs::remove_file(&socket);
        let listener = crate::linux::socket::SocketPath::new(&socket)
            .and_then(|p| UnixListener::bind(p.path()))
            .map_err(RuntimeError::io("binding the monitor socket"))?;
        let me = Pid::this();
        let info = MonitorProcess {
            pid: me.as_raw(),
            start_time: crate::linux::start_time(me).unwrap_or(0),
        };
        std::fs::write(
            dir.join(super::MONITOR_FILE),
            serde_json::to_vec(&info).unwrap_or_default(),
        )
        .map_err(RuntimeError::io("saving the monitor's PID"))?;

        let poll = Poll::new().map_err(RuntimeError::io("creating the poller"))?;
        let mut monitor = Monitor {
            poll,
            listener,
            signals,
            pid: launched.pid,
            launched: Some(launched),
            runtime,
            cgroup,
            oom_before,
            spec: config.spec.clone(),
            tty,
            io,
            log,
            clients: HashMap::new(),
            sources: HashMap::new(),
            fd_tokens: HashMap::new(),
            execs: HashMap::new(),
            exit: None,
            exited_at: None,
            next: 10,
            dir,
        };
        monitor
            .poll
            .registry()
            .register(&mut monitor.listener, LISTENER, Interest::READABLE)
            .map_err(RuntimeError::io("polling the socket"))?;
        let raw = monitor.signals.as_fd().as_raw_fd();
        monitor
            .poll
            .registry()
            .register(&mut SourceFd(&raw), SIGNALS, Interest::READABLE)
            .map_err(RuntimeError::io("polling signals"))?;
        monitor.register_io(None);
        Ok(monitor)
    }

    fn token(&mut self) -> Token {
        self.next += 1;
        Token(self.next)
    }

    /// Registers the output descriptors of the container (`owner` None) or of an exec.
    fn register_io(&mut self, owner: Option<String>) {
        let io = match &owner {
            None => &self.io,
            Some(id) => match self.execs.get(id) {
                Some(e) => &e.io,
                None => return,
            },
        };
        let mut plan = Vec::new();
        if let Some(c) = &io.console {
            plan.push((
                c.as_raw_fd(),
                Source::Output {
                    owner: owner.clone(),
                    stream: Stream::Stdout,
                    console: true,
                },
            ));
        }
        if let Some(o) = &io.stdout {
            plan.push((
                o.as_raw_fd(),
                Source::Output {
                    owner: owner.clone(),
                    stream: Stream::Stdout,
                    console: false,
                },
            ));
        }
        if let Some(e) = &io.stderr {
            plan.push((
                e.as_raw_fd(),
                Source::Output {
                    owner: owner.clone(),
                    stream: Stream::Stderr,
                    console: false,
                },
            ));
        }
        let stdin_fd = io.stdin.as_ref().map(|f| f.as_raw_fd());
        for (fd, source) in plan {
            set_nonblocking(&unsafe { BorrowedFd::borrow_raw(fd) });
            let token = self.token();
            if self
                .poll
                .registry()
                .register(&mut SourceFd(&fd), token, Interest::READABLE)
                .is_ok()
            {
                self.sources.insert(token, source);
                self.fd_tokens.insert(fd, token);
            }
        }
        if let Some(fd) = stdin_fd {
            set_nonblocking(&unsafe { BorrowedFd::borrow_raw(fd) });
        }
    }

    fn serve(&mut self) {
        let mut events = Events::with_capacity(256);
        loop {
            if self.finished() {
                break;
            }
            let timeout = self
                .exited_at
                .map(|t| DRAIN.saturating_sub(t.elapsed()).max(Duration::from_millis(10)));
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                eprintln!("monitor: poll: {e}");
                break;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    SIGNALS => self.reap(),
                    token => match self.sources.get(&token).cloned() {
                        Some(Source::Output { owner, stream, console }) => {
                            self.read_output(token, owner, stream, console)
                        }
                        Some(Source::Input { owner }) => self.flush_input(owner),
                        Some(Source::Client) => {
                            if event.is_readable() || event.is_read_closed() {
                                self.read_client(token);
                            }
                            if event.is_writable() {
                                self.write_client(token);
                            }
                        }
                        None => {}
                    },
                }
            }
        }
        self.finish();
    }

    /// Done when the container has exited and its output is closed (or has had its time).
    fn finished(&self) -> bool {
        match self.exited_at {
            None => false,
            Some(t) => self.io.open_outputs() == 0 || t.elapsed() >= DRAIN,
        }
    }

    fn accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((mut stream, _)) => {
                    let token = self.token();
                    if self
                        .poll
                        .registry()
                        .register(&mut stream, token, Interest::READABLE)
                        .is_ok()
                    {
                        self.clients.insert(
                            token,
                            Client {
                                stream,
                                inbuf: Vec::new(),
                                outbuf: Vec::new(),
                                role: Role::Request,
                                writable: false,
                            },
                        );
                        self.sources.insert(token, Source::Client);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(_) => return,
            }
        }
    }

    fn reap(&mut self) {
        while let Ok(Some(_)) = self.signals.read_signal() {}
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(status) => {
                    let Some(pid) = status.pid() else { return };
                    let Some(code) = exit_code(status) else { continue };
                    if pid == self.pid {
                        self.container_exited(code);
                    } else if let Some(id) = self.execs.iter().find(|(_, e)| e.pid == pid).map(|(k, _)| k.clone()) {
                        if let Some(e) = self.execs.get_mut(&id) {
                            e.exit = Some(code);
                        }
                        self.maybe_finish_exec(&id);
                    }
                }
            }
        }
    }

    fn container_exited(&mut self, code: i32) {
        let oom_killed = self.cgroup.oom_kills().map(|n| n > self.oom_before).unwrap_or(false);
        let finished_at = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        self.exit = Some(Exit {
            code,
            oom_killed,
            finished_at,
        });
        self.exited_at = Some(Instant::now());
    }

    fn read_output(&mut self, token: Token, owner: Option<String>, stream: Stream, console: bool) {
        let fd = match self.io_of(&owner).and_then(|io| {
            if console {
                io.console.as_ref()
            } else if stream == Stream::Stdout {
                io.stdout.as_ref()
            } else {
                io.stderr.as_ref()
            }
        }) {
            Some(fd) => fd.as_raw_fd(),
            None => return,
        };
        let mut buf = [0u8; 32 * 1024];
        loop {
            match nix::unistd::read(unsafe { BorrowedFd::borrow_raw(fd) }, &mut buf) {
                Ok(0) | Err(Errno::EIO) => {
                    self.close_output(token, &owner, stream, console);
                    return;
                }
                Ok(n) => self.deliver(&owner, stream, &buf[..n]),
                Err(Errno::EAGAIN) => return,
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    self.close_output(token, &owner, stream, console);
                    return;
                }
            }
        }
    }

    fn io_of(&self, owner: &Option<String>) -> Option<&Io> {
        match owner {
            None => Some(&self.io),
            Some(id) => self.execs.get(id).map(|e| &e.io),
        }
    }

    fn io_of_mut(&mut self, owner: &Option<String>) -> Option<&mut Io> {
        match owner {
            None => Some(&mut self.io),
            Some(id) => self.execs.get_mut(id).map(|e| &mut e.io),
        }
    }

    fn close_output(&mut self, token: Token, owner: &Option<String>, stream: Stream, console: bool) {
        self.sources.remove(&token);
        let Some(io) = self.io_of_mut(owner) else { return };
        let fd = if console {
            // A console's master is also its input: it closes once the output has ended.
            io.console.take()
        } else if stream == Stream::Stdout {
            io.stdout.take()
        } else {
            io.stderr.take()
        };
        if let Some(fd) = fd {
            let raw = fd.as_raw_fd();
            let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
            self.fd_tokens.remove(&raw);
        }
        if owner.is_none() {
            if self.io.open_outputs() == 0 {
                let _ = self.log.flush_partial();
            }
        } else if let Some(id) = owner {
            self.maybe_finish_exec(id);
        }
    }

    /// Output goes to the log (the container's, not an exec's) and to every client that
    /// wants it.
    fn deliver(&mut self, owner: &Option<String>, stream: Stream, data: &[u8]) {
        let kind = if stream == Stream::Stderr {
            frame::STDERR
        } else {
            frame::STDOUT
        };
        if owner.is_none()
            && let Err(e) = self.log.write(stream, data)
        {
            eprintln!("monitor: writing the log: {e}");
        }
        let mut out = Vec::with_capacity(data.len() + frame::HEADER);
        frame::encode(kind, data, &mut out);
        let targets: Vec<Token> = self
            .clients
            .iter()
            .filter(|(_, c)| match (&c.role, owner) {
                (Role::Attached { stdout, stderr, .. }, None) => {
                    if stream == Stream::Stderr {
                        *stderr
                    } else {
                        *stdout
                    }
                }
                (Role::Exec(id), Some(o)) => id == o,
                _ => false,
            })
            .map(|(t, _)| *t)
            .collect();
        for t in targets {
            self.queue(t, &out);
        }
    }

    fn queue(&mut self, token: Token, bytes: &[u8]) {
        let Some(c) = self.clients.get_mut(&token) else { return };
        if c.outbuf.len() + bytes.len() > MAX_BUFFERED {
            // A reader that has stopped reading does not hold the container up.
            self.drop_client(token);
            return;
        }
        c.outbuf.extend_from_slice(bytes);
        self.write_client(token);
    }

    fn write_client(&mut self, token: Token) {
        let Some(c) = self.clients.get_mut(&token) else { return };
        while !c.outbuf.is_empty() {
            match c.stream.write(&c.outbuf) {
                Ok(0) => break,
                Ok(n) => {
                    c.outbuf.drain(..n);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    self.drop_client(token);
                    return;
                }
            }
        }
        let want_write = !c.outbuf.is_empty();
        if want_write != c.writable {
            c.writable = want_write;
            let interest = if want_write {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let _ = self.poll.registry().reregister(&mut c.stream, token, interest);
        }
        if !want_write && matches!(c.role, Role::Closing) {
            self.drop_client(token);
        }
    }

    fn drop_client(&mut self, token: Token) {
        if let Some(mut c) = self.clients.remove(&token) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
        self.sources.remove(&token);
    }

    fn reply(&mut self, token: Token, reply: &Reply, then: Role) {
        let mut line = serde_json::to_vec(reply).unwrap_or_default();
        line.push(b'\n');
        if let Some(c) = self.clients.get_mut(&token) {
            c.role = then;
        }
        self.queue(token, &line);
    }

    fn read_client(&mut self, token: Token) {
        let mut buf = [0u8; 32 * 1024];
        let mut closed = false;
        {
            let Some(c) = self.clients.get_mut(&token) else { return };
            loop {
                match c.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => c.inbuf.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
        }
        loop {
            let Some(c) = self.clients.get_mut(&token) else { return };
            match c.role {
                Role::Request => {
                    let Some(end) = c.inbuf.iter().position(|&b| b == b'\n') else {
                        break;
                    };
                    let line: Vec<u8> = c.inbuf.drain(..=end).collect();
                    match serde_json::from_slice::<Request>(&line) {
                        Ok(request) => self.handle(token, request),
                        Err(e) => self.reply(token, &Reply::error(format!("bad request: {e}")), Role::Closing),
                    }
                }
                Role::Attached { .. } | Role::Exec(_) => {
                    let Some((kind, payload, used)) = frame::decode(&c.inbuf) else {
                        break;
                    };
                    let payload = payload.to_vec();
                    c.inbuf.drain(..used);
                    let owner = match &c.role {
                        Role::Exec(id) => Some(id.clone()),
                        _ => None,
                    };
                    let may_write = !matches!(c.role, Role::Attached { stdin: false, .. });
                    self.client_frame(owner, kind, &payload, may_write);
                }
                _ => {
                    c.inbuf.clear();
                    break;
                }
            }
        }
        if closed {
            self.drop_client(token);
        }
    }

    fn client_frame(&mut self, owner: Option<String>, kind: u8, payload: &[u8], may_write: bool) {
        match kind {
            frame::STDIN if may_write => {
                if let Some(io) = self.io_of_mut(&owner) {
                    io.pending_stdin.extend_from_slice(payload);
                }
                self.flush_input(owner);
            }
            frame::CLOSE_STDIN if may_write => {
                if let Some(io) = self.io_of_mut(&owner) {
                    io.close_stdin = true;
                }
                self.flush_input(owner);
            }
            frame::RESIZE if payload.len() == 4 => {
                let size = console::WinSize {
                    rows: u16::from_be_bytes([payload[0], payload[1]]),
                    cols: u16::from_be_bytes([payload[2], payload[3]]),
                };
                if let Some(c) = self.io_of(&owner).and_then(|io| io.console.as_ref()) {
                    let _ = console::set_size(c, size);
                }
            }
            _ => {}
        }
    }

    /// Writes pending input to the container's (or an exec's) stdin or console.
    fn flush_input(&mut self, owner: Option<String>) {
        let Some(io) = self.io_of_mut(&owner) else { return };
        let fd = match (&io.console, &io.stdin) {
            (Some(c), _) => c.as_raw_fd(),
            (None, Some(s)) => s.as_raw_fd(),
            (None, None) => {
                io.pending_stdin.clear();
                return;
            }
        };
        while !io.pending_stdin.is_empty() {
            match nix::unistd::write(unsafe { BorrowedFd::borrow_raw(fd) }, &io.pending_stdin) {
                Ok(n) => {
                    io.pending_stdin.drain(..n);
                }
                Err(Errno::EAGAIN) => break,
                Err(Errno::EINTR) => continue,
                Err(_) => {
                    io.pending_stdin.clear();
                    break;
                }
            }
        }
        let blocked = !io.pending_stdin.is_empty();
        let close = io.close_stdin && !blocked && io.console.is_none();
        let stdin_token = self.fd_tokens.get(&fd).copied();
        if blocked && stdin_token.is_none() {
            let token = self.token();
            if self
                .poll
                .registry()
                .register(&mut SourceFd(&fd), token, Interest::WRITABLE)
                .is_ok()
            {
                self.sources.insert(token, Source::Input { owner: owner.clone() });
                self.fd_tokens.insert(fd, token);
            }
        } else if !blocked
            && let Some(t) = stdin_token
            && matches!(self.sources.get(&t), Some(Source::Input { .. }))
        {
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            self.sources.remove(&t);
            self.fd_tokens.remove(&fd);
        }
        if close && let Some(io) = self.io_of_mut(&owner) {
            // The container reads end-of-file, as `docker run -i` gives when input ends.
            io.stdin = None;
        }
    }

    fn handle(&mut self, token: Token, request: Request) {
        match request {
            Request::Start => {
                let reply = match self.launched.as_mut() {
                    None => Reply::error("the container was already started"),
                    Some(l) => match crate::process::release(&l.channel) {
                        Ok(()) => {
                            l.saved.started = true;
                            let _ = self.runtime.state_dir().save(&l.saved);
                            Reply::ok()
                        }
                        Err(e) => Reply::error(e),
                    },
                };
                if reply.ok {
                    self.launched = None;
                }
                self.reply(token, &reply, Role::Closing);
            }
            Request::Attach { stdin, stdout, stderr } => {
                let mut reply = Reply::ok();
                reply.tty = Some(self.tty);
                self.reply(token, &reply, Role::Attached { stdout, stderr, stdin });
                if let Some(exit) = self.exit.filter(|_| self.io.open_outputs() == 0) {
                    self.send_exit(token, exit);
                }
            }
            Request::Resize { rows, cols } => {
                let reply = match &self.io.console {
                    Some(c) => match console::set_size(c, console::WinSize { rows, cols }) {
                        Ok(()) => Reply::ok(),
                        Err(e) => Reply::error(format!("resizing: {e}")),
                    },
                    None => Reply::error("the container has no terminal"),
                };
                self.reply(token, &reply, Role::Closing);
            }
            Request::Exec { id, process } => match self.start_exec(&id, &process, token) {
                Ok(reply) => self.reply(token, &reply, Role::Exec(id)),
                Err(e) => self.reply(token, &Reply::error(e), Role::Closing),
            },
            Request::ExecResize { id, rows, cols } => {
                let reply = match self.execs.get(&id).and_then(|e| e.io.console.as_ref()) {
                    Some(c) => match console::set_size(c, console::WinSize { rows, cols }) {
                        Ok(()) => Reply::ok(),
                        Err(e) => Reply::error(format!("resizing: {e}")),
                    },
                    None => Reply::error(format!("no exec {id} with a terminal")),
                };
                self.reply(token, &reply, Role::Closing);
            }
            Request::Wait => match self.exit {
                Some(exit) => {
                    let reply = Reply {
                        ok: true,
                        exit: Some(exit),
                        ..Default::default()
                    };
                    self.reply(token, &reply, Role::Closing);
                }
                None => {
                    if let Some(c) = self.clients.get_mut(&token) {
                        c.role = Role::Waiting;
                    }
                }
            },
            Request::Status => {
                let reply = Reply {
                    ok: true,
                    pid: Some(self.pid.as_raw()),
                    started: Some(self.launched.is_none()),
                    exit: self.exit,
                    tty: Some(self.tty),
                    ..Default::default()
                };
                self.reply(token, &reply, Role::Closing);
            }
        }
    }

    fn start_exec(
        &mut self,
        id: &str,
        process: &oci_spec::runtime::Process,
        client: Token,
    ) -> Result<Reply, RuntimeError> {
        if self.exit.is_some() || self.launched.is_some() {
            return Err(RuntimeError::WrongState {
                id: id.into(),
                status: if self.exit.is_some() {
                    "stopped".into()
                } else {
                    "created".into()
                },
                what: "cannot exec".into(),
            });
        }
        if self.execs.contains_key(id) {
            return Err(RuntimeError::AlreadyExists(format!("exec {id}")));
        }
        let mut cfg = ProcessConfig::from_process(process)?;
        if let Some(seccomp) = self.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            cfg.seccomp = Some(crate::seccomp::compile(
                seccomp,
                Some(&self.runtime.state_dir().root().join(".seccomp")),
            )?);
        }
        let mut namespaces = nix::sched::CloneFlags::empty();
        for ns in self
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .into_iter()
            .flatten()
        {
            namespaces |= crate::process::namespace_flag(ns.typ())?;
        }
        let pidfd = crate::linux::pidfd_open(self.pid).map_err(RuntimeError::os("opening the container's init"))?;
        let target = crate::process::exec::Target { pidfd, namespaces };
        let tty = cfg.terminal.is_some();
        let null = OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
                .map_err(RuntimeError::io("opening /dev/null"))?,
        );
        let mut io = Io::default();
        let mut child_ends = Vec::new();
        let stdio = if tty {
            Stdio {
                stdin: Some(null.as_raw_fd()),
                stdout: Some(null.as_raw_fd()),
                stderr: Some(null.as_raw_fd()),
            }
        } else {
            let (in_r, in_w) = pipe()?;
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            io.stdin = Some(in_w);
            io.stdout = Some(out_r);
            io.stderr = Some(err_r);
            let s = Stdio {
                stdin: Some(in_r.as_raw_fd()),
                stdout: Some(out_w.as_raw_fd()),
                stderr: Some(err_w.as_raw_fd()),
            };
            child_ends.extend([in_r, out_w, err_w]);
            s
        };
        // SAFETY: the monitor is single-threaded.
        let spawned = unsafe { crate::process::exec::spawn(&target, &cfg, stdio)? };
        drop(child_ends);
        let result = (|| {
            self.cgroup.add_process(spawned.pid.as_raw())?;
            spawned
                .channel
                .send(crate::process::sync::GO)
                .map_err(RuntimeError::os("starting the exec"))?;
            io.console = crate::process::await_ready(&spawned.channel)?;
            crate::process::release(&spawned.channel)
        })();
        if let Err(e) = result {
            let _ = nix::sys::signal::kill(spawned.pid, Signal::SIGKILL);
            return Err(e);
        }
        self.execs.insert(
            id.to_string(),
            ExecSession {
                pid: spawned.pid,
                io,
                client,
                exit: None,
            },
        );
        self.register_io(Some(id.to_string()));
        Ok(Reply {
            ok: true,
            tty: Some(tty),
            pid: Some(spawned.pid.as_raw()),
            ..Default::default()
        })
    }

    /// An exec is over when its process has exited and its output is read: its client
    /// gets the exit frame.
    fn maybe_finish_exec(&mut self, id: &str) {
        let Some(e) = self.execs.get(id) else { return };
        let Some(code) = e.exit else { return };
        if e.io.open_outputs() > 0 && e.io.console.is_none() {
            return;
        }
        let Some(e) = self.execs.remove(id) else { return };
        for fd in [&e.io.console, &e.io.stdout, &e.io.stderr].into_iter().flatten() {
            let raw = fd.as_raw_fd();
            // A console may still have output buffered: take it before closing.
            if e.io.console.as_ref().map(|c| c.as_raw_fd()) == Some(raw) {
                let mut buf = [0u8; 32 * 1024];
                while let Ok(n) = nix::unistd::read(unsafe { BorrowedFd::borrow_raw(raw) }, &mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut out = Vec::new();
                    frame::encode(frame::STDOUT, &buf[..n], &mut out);
                    self.queue(e.client, &out);
                }
            }
            let _ = self.poll.registry().deregister(&mut SourceFd(&raw));
            if let Some(t) = self.fd_tokens.remove(&raw) {
                self.sources.remove(&t);
            }
        }
        self.send_exit(
            e.client,
            Exit {
                code,
                oom_killed: false,
                finished_at: time::OffsetDateTime::now_utc().unix_timestamp_nanos(),
            },
        );
    }

    fn send_exit(&mut self, token: Token, exit: Exit) {
        let mut out = Vec::new();
        frame::encode(frame::EXIT, &serde_json::to_vec(&exit).unwrap_or_default(), &mut out);
        if let Some(c) = self.clients.get_mut(&token) {
            c.role = Role::Closing;
        }
        self.queue(token, &out);
    }

    /// The container is gone: write its exit down, tell everyone, and leave.
    fn finish(&mut self) {
        let _ = self.log.flush_partial();
        let exit = self.exit.unwrap_or(Exit {
            code: 255,
            oom_killed: false,
            finished_at: 0,
        });
        let tmp = self.dir.join(format!("{}.tmp", super::EXIT_FILE));
        if std::fs::write(&tmp, serde_json::to_vec(&exit).unwrap_or_default()).is_ok() {
            let _ = std::fs::rename(&tmp, self.dir.join(super::EXIT_FILE));
        }
        let tokens: Vec<Token> = self.clients.keys().copied().collect();
        for t in tokens {
            match self.clients.get(&t).map(|c| &c.role) {
                Some(Role::Waiting) => {
                    let reply = Reply {
                        ok: true,
                        exit: Some(exit),
                        ..Default::default()
                    };
                    self.reply(t, &reply, Role::Closing);
                }
                Some(Role::Attached { .. }) => self.send_exit(t, exit),
                Some(Role::Exec(_)) => self.send_exit(
                    t,
                    Exit {
                        code: 137,
                        oom_killed: false,
                        finished_at: exit.finished_at,
                    },
                ),
                _ => {}
            }
        }
        let _ = std::fs::remove_file(self.dir.join(super::SOCKET));
        // Give clients a moment to take what is buffered for them.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline && self.clients.values().any(|c| !c.outbuf.is_empty()) {
            let tokens: Vec<Token> = self.clients.keys().copied().collect();
            for t in tokens {
                if let Some(c) = self.clients.get_mut(&t) {
                    let _ = c.stream.flush();
                }
                self.write_client(t);
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = std::fs::remove_file(self.dir.join(super::MONITOR_FILE));
    }
}
