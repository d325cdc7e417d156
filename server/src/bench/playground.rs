//! `slipway bench playground`: the playground targets, on a real `slipway serve`
//! with a throw-away data directory, the node image `slipway/node` from the catalog, and
//! `[playgrounds] total = 200`:
//!
//! 1. **Start**: from the POST that makes a one-node playground to the first byte of its
//!    shell's prompt on terminal 1's WebSocket (opened as soon as the POST answers), N
//!    times, each playground removed after. Interleaved with a bare start of the same
//!    image with the same runtime (`slipway runtime run` of a bundle on the node image's
//!    layers, `bash -l -i`, to the same prompt): what a playground adds over its container.
//! 2. **Echo**: 100 terminals (10 playgrounds of 10 terminals on node1) each type a key
//!    every 100 ms, alternately `x` and DEL, for 15 s after a 2 s warm-up; each keystroke is
//!    timed from its send to the receipt of the frame holding its echo. No web terminal
//!    runs offline here to compare with, so the same load is then typed straight into 100
//!    bash shells on plain PTYs driven by this process (no server, no container, no
//!    WebSocket): the floor of PTY and readline echo on this machine under this load.
//! 3. **Memory**: K idle playgrounds, each with one connected, idle terminal; the growth
//!    of the server's anonymous memory, the node monitors' private memory and page tables,
//!    and the playgrounds' cgroups' anonymous and kernel memory, per playground. The
//!    host's MemAvailable and kernel memory deltas are shown beside it as a cross-check
//!    (they see the whole machine, other work included). No peer runs offline.
//!
//! Everything made is removed at the end, on errors too: the playgrounds through the API,
//! then the server, the peers' mount and the cgroups.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use slipway_runtime::image::store::{Image, Store};
use tokio::io::AsyncReadExt;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::ServerProcess;
use super::stats::Stats;
use crate::playground::NODE_IMAGE;

/// Targets from the issue.
const START_TARGET_MS: f64 = 150.0;
const ECHO_P99_TARGET_MS: f64 = 5.0;
const MEMORY_TARGET_MIB: f64 = 8.0;
/// Typing cadence per terminal, and the warm-up whose keystrokes are not counted.
const KEY_INTERVAL: Duration = Duration::from_millis(100);
const WARM_UP: Duration = Duration::from_secs(2);
/// A keystroke whose echo has not come back by then is counted as lost.
const ECHO_TIMEOUT: Duration = Duration::from_secs(1);

pub struct Options {
    /// The catalog directory: its `images/` store must hold `slipway/node`.
    pub catalog_dir: PathBuf,
    pub lessons: PathBuf,
    /// Timed starts (after two warm-up rounds).
    pub runs: usize,
    /// Typing terminals, and terminals per playground (at most 16).
    pub terminals: usize,
    pub terminals_per_playground: usize,
    /// Seconds of measured typing.
    pub seconds: u64,
    /// Idle playgrounds for the memory figure.
    pub idle: usize,
}

#[derive(Debug, Serialize)]
pub struct StartFigure {
    pub runs: usize,
    /// POST to its 201 answer (the playground's cgroup, network, node container, socket).
    pub create: Stats,
    /// POST to the WebSocket's 101 (the server execs the shell before it upgrades).
    pub websocket_open: Stats,
    /// POST to the first byte of terminal output (the node's welcome text).
    pub first_byte: Stats,
    /// POST to the frame holding the first byte of the prompt: the figure of the target.
    pub prompt: Stats,
    /// The same runtime's bare start of the node image to the same prompt.
    pub bare_start: Stats,
    pub bare_start_command: String,
    /// prompt median / bare start median.
    pub ratio: f64,
    pub target_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct EchoRun {
    /// Keystrokes timed (after the warm-up), and those whose echo never came.
    pub keystrokes: usize,
    pub lost: usize,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct EchoFigure {
    pub playgrounds: usize,
    pub terminals: usize,
    pub keys_per_second_per_terminal: f64,
    pub seconds: u64,
    pub slipway: EchoRun,
    /// The same typing into bash on plain PTYs in this process: no server at all.
    pub pty_floor: EchoRun,
    pub pty_floor_command: String,
    pub ratio_p50: f64,
    pub ratio_p99: f64,
    pub target_p99_ms: f64,
}

#[derive(Debug, Serialize)]
pub struct MemoryFigure {
    pub playgrounds: usize,
    /// Growth of the server's anonymous memory (RssAnon), all playgrounds together.
    pub server_anon_mib: f64,
    /// The node monitors' private memory (Private_Clean + Private_Dirty) and page tables.
    pub monitors_private_mib: f64,
    pub monitors_page_tables_mib: f64,
    /// The playgrounds' cgroups (tini, sleep and the shell): anonymous, shmem and kernel
    /// memory; and, not counted, the page cache charged to them (the image's files,
    /// shared by every node and reclaimable).
    pub cgroups_anon_kernel_mib: f64,
    pub cgroups_page_cache_mib: f64,
    /// (server + monitors + cgroups) / playgrounds: the figure of the target.
    pub per_playground_mib: f64,
    /// Whole-host cross-checks, per playground: the drop of MemAvailable, and the growth
    /// of unreclaimable slab, page tables and kernel stacks (which include what no cgroup
    /// holds: the network namespace, bridge and veth pair, the mounts).
    pub host_available_drop_per_playground_mib: f64,
    /// The rise of MemAvailable once they are removed again (a second, independent look
    /// at the same cost).
    pub host_available_return_per_playground_mib: f64,
    pub host_kernel_per_playground_mib: f64,
    /// per_playground_mib plus all of the host's kernel growth, though the cgroups' kernel
    /// memory is then counted twice: a pessimistic figure.
    pub pessimistic_mib: f64,
    pub target_mib: f64,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    pub node_image: String,
    pub memory: MemoryFigure,
    pub start: StartFigure,
    pub echo: EchoFigure,
}

pub fn run(o: &Options) -> Result<Figures> {
    if !nix::unistd::Uid::effective().is_root() {
        bail!("the playground benchmark needs root (playgrounds are containers)");
    }
    if o.runs == 0 || o.idle == 0 || o.terminals == 0 || o.seconds == 0 {
        bail!("--runs, --idle, --terminals and --seconds must be at least 1");
    }
    if !(1..=16).contains(&o.terminals_per_playground) {
        bail!("a node has terminals 1 to 16: --terminals-per-playground must be 1 to 16");
    }
    let images = o.catalog_dir.join("images");
    if !images.join("index.json").is_file() {
        bail!(
            "no image store at {}: build the catalog first (slipway images --data-dir {} ensure), or name it with --catalog-dir or SLIPWAY_CATALOG_DIR",
            images.display(),
            o.catalog_dir.display()
        );
    }
    let store = Store::open(&images)?;
    let image = store.resolve(NODE_IMAGE).with_context(|| {
        format!(
            "{NODE_IMAGE} is not in {} (slipway images --data-dir {} ensure slipway/node)",
            images.display(),
            o.catalog_dir.display()
        )
    })?;

    let work = std::env::temp_dir().join(format!("slipway-bench-pg-{}", std::process::id()));
    std::fs::create_dir_all(&work)?;
    let mut lab = Lab {
        work: work.clone(),
        cgroup_root: format!("slipway-bench-{}", std::process::id()),
        server: None,
        token: String::new(),
        node_root: None,
    };
    let config = work.join("slipway.toml");
    let playgrounds_at_once = o.terminals.div_ceil(o.terminals_per_playground).max(o.idle) + 1;
    std::fs::write(
        &config,
        format!("[playgrounds]\ntotal = {}\n", playgrounds_at_once.max(200)),
    )?;
    let server = ServerProcess::start_in_own_group(
        &o.lessons,
        &[
            ("SLIPWAY_IMAGES", &images.display().to_string()),
            ("SLIPWAY_CONFIG", &config.display().to_string()),
            ("SLIPWAY_CGROUP_ROOT", &lab.cgroup_root),
        ],
    )?;
    lab.token = server.info()?["admin_token"]
        .as_str()
        .context("no admin token in server.json")?
        .to_string();
    let (addr, server_pid, runtime_root) = (server.addr, server.pid(), server.data_dir().join("runtime"));
    lab.server = Some(server);
    lab.node_root = Some(NodeRoot::mount(&store, &image, &work.join("peer"), &lab.cgroup_root)?);

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let api = Api {
        http: reqwest::Client::new(),
        addr,
        token: lab.token.clone(),
    };
    let peer = lab.node_root.as_ref().expect("mounted");
    let measured = async {
        // Warm-up: the node image's files in the page cache, the server's first-use work
        // (the seccomp program's compile, the allocator's arenas) done.
        for _ in 0..2 {
            start_once(&api).await?;
            peer.bare_start().await?;
        }
        let memory = memory_figure(&api, o, server_pid, &runtime_root, &lab.cgroup_root).await?;
        let start = start_figure(&api, o, peer).await?;
        let echo = echo_figure(&api, o, &work).await?;
        Ok::<_, anyhow::Error>(Figures {
            node_image: format!(
                "{NODE_IMAGE} ({}, {} layers, {:.0} MiB)",
                &image.id()[..19.min(image.id().len())],
                image.record.layers.len(),
                image.size() as f64 / MIB
            ),
            memory,
            start,
            echo,
        })
    };
    let figures = runtime.block_on(async {
        // The server is in a process group of its own: a Ctrl-C stops only the measuring,
        // and what was made is removed below.
        tokio::select! {
            figures = measured => figures,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted (everything made has been removed)")),
        }
    });
    drop(runtime);
    drop(lab);
    figures
}

/// What the benchmark made, removed in order when dropped (on errors and panics too).
struct Lab {
    work: PathBuf,
    cgroup_root: String,
    server: Option<ServerProcess>,
    token: String,
    node_root: Option<NodeRoot>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(server) = &self.server {
            // The nodes would outlive the server (their monitors are their own processes).
            match remove_all(server.addr, &self.token) {
                Ok(0) => {}
                Ok(n) => eprintln!("removed {n} playground(s) left over"),
                Err(e) => eprintln!("warning: could not remove the playgrounds: {e:#}"),
            }
        }
        self.server = None;
        self.node_root = None;
        // Parents first made by the server and the bare starts, empty by now.
        super::lab::remove_cgroup_dirs(&[format!("{}/bare", self.cgroup_root), self.cgroup_root.clone()]);
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

/// A plain HTTP/1.1 request with the admin token, for clean-up outside the async runtime.
fn http_sync(addr: SocketAddr, method: &str, path: &str, token: &str) -> Result<(u16, Vec<u8>)> {
    let mut stream = StdTcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("no end of headers")?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .context("no status")?;
    let mut body = raw[split + 4..].to_vec();
    if super::header(&head, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body);
    }
    Ok((status, body))
}

fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(String::from_utf8_lossy(&raw[..eol]).trim(), 16).unwrap_or(0);
        if size == 0 || raw.len() < eol + 2 + size {
            break;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[(eol + 4 + size).min(raw.len())..];
    }
    out
}

/// Removes every playground on the (throw-away) server; returns how many there were.
fn remove_all(addr: SocketAddr, token: &str) -> Result<usize> {
    let (status, body) = http_sync(addr, "GET", "/api/playgrounds", token)?;
    if status != 200 {
        bail!("listing playgrounds: HTTP {status}");
    }
    let all: Vec<serde_json::Value> = serde_json::from_slice(&body)?;
    for p in &all {
        let id = p["id"].as_str().unwrap_or_default();
        let (status, _) = http_sync(addr, "DELETE", &format!("/api/playgrounds/{id}"), token)?;
        if status != 204 && status != 404 {
            eprintln!("warning: removing playground {id}: HTTP {status}");
        }
    }
    Ok(all.len())
}

type Ws = WebSocketStream<TcpStream>;

/// The REST API and the terminal sockets, as the admin.
struct Api {
    http: reqwest::Client,
    addr: SocketAddr,
    token: String,
}

impl Api {
    async fn create(&self) -> Result<String> {
        let response = self
            .http
            .post(format!("http://{}/api/playgrounds", self.addr))
            .bearer_auth(&self.token)
            .json(&serde_json::json!({ "nodes": 1 }))
            .send()
            .await?;
        let status = response.status();
        let body = response.bytes().await?;
        if status.as_u16() != 201 {
            bail!(
                "POST /api/playgrounds: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            );
        }
        let record: serde_json::Value = serde_json::from_slice(&body)?;
        Ok(record["id"].as_str().context("no playground id")?.to_string())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let response = self
            .http
            .delete(format!("http://{}/api/playgrounds/{id}", self.addr))
            .bearer_auth(&self.token)
            .send()
            .await?;
        if response.status().as_u16() != 204 {
            bail!("DELETE /api/playgrounds/{id}: HTTP {}", response.status());
        }
        Ok(())
    }

    /// Opens terminal `n` of node1, as the browser does: connect, then say the size.
    async fn terminal(&self, id: &str, n: usize) -> Result<Ws> {
        let stream = TcpStream::connect(self.addr).await?;
        stream.set_nodelay(true)?;
        let mut request = format!("ws://{}/pg/{id}/nodes/node1/terminals/{n}/ws", self.addr).into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", self.token))?,
        );
        let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
            .await
            .with_context(|| format!("opening terminal {n} of playground {id}"))?;
        SinkExt::send(&mut ws, Message::text(r#"{"type":"resize","rows":24,"cols":80}"#)).await?;
        Ok(ws)
    }
}

/// Terminal output, or an error once the terminal has ended.
async fn next_output(ws: &mut Ws) -> Result<Vec<u8>> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Binary(b))) => return Ok(b.to_vec()),
            Some(Ok(Message::Text(t))) => bail!("the terminal ended: {t}"),
            Some(Ok(Message::Close(_))) | None => bail!("the terminal's socket closed"),
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(e.into()),
        }
    }
}

/// Whether `screen` shows the node's prompt (`root@node1:~# `, in colours) in full.
fn has_prompt(screen: &[u8], host: &str) -> bool {
    let text = String::from_utf8_lossy(screen);
    text.rfind(&format!("@{host}"))
        .is_some_and(|at| text[at..].contains("# "))
}

/// Reads until the prompt is shown, then lets readline settle into its read.
async fn wait_for_prompt(ws: &mut Ws) -> Result<()> {
    let mut screen = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while !has_prompt(&screen, "node1") {
            screen.extend(next_output(ws).await?);
        }
        Ok::<_, anyhow::Error>(())
    })
    .await
    .map_err(|_| {
        anyhow!(
            "no prompt within 20 s; the terminal showed {:?}",
            String::from_utf8_lossy(&screen)
        )
    })??;
    Ok(())
}

struct StartSample {
    create: f64,
    websocket_open: f64,
    first_byte: f64,
    prompt: f64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// One playground, from the POST to its prompt; removed after (not timed).
async fn start_once(api: &Api) -> Result<StartSample> {
    let t0 = Instant::now();
    let id = api.create().await?;
    let create = ms(t0.elapsed());
    let measured = async {
        let mut ws = api.terminal(&id, 1).await?;
        let websocket_open = ms(t0.elapsed());
        let mut screen = Vec::new();
        let mut first_byte = None;
        let prompt = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let data = next_output(&mut ws).await?;
                let now = ms(t0.elapsed());
                first_byte.get_or_insert(now);
                screen.extend(data);
                if String::from_utf8_lossy(&screen).contains("@node1") {
                    return Ok::<f64, anyhow::Error>(now);
                }
            }
        })
        .await
        .map_err(|_| anyhow!("no prompt within 20 s"))??;
        let _ = ws.close(None).await;
        Ok::<_, anyhow::Error>(StartSample {
            create,
            websocket_open,
            first_byte: first_byte.unwrap_or(prompt),
            prompt,
        })
    }
    .await;
    let removed = api.remove(&id).await;
    let sample = measured?;
    removed?;
    Ok(sample)
}

async fn start_figure(api: &Api, o: &Options, peer: &NodeRoot) -> Result<StartFigure> {
    let (mut create, mut open, mut first, mut prompt, mut bare) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..o.runs {
        // Alternate which goes first, so neither always follows the other's clean-up.
        let (s, b) = if i % 2 == 0 {
            let s = start_once(api).await?;
            (s, peer.bare_start().await?)
        } else {
            let b = peer.bare_start().await?;
            (start_once(api).await?, b)
        };
        create.push(s.create);
        open.push(s.websocket_open);
        first.push(s.first_byte);
        prompt.push(s.prompt);
        bare.push(b);
    }
    let prompt = Stats::of(prompt);
    let bare_start = Stats::of(bare);
    Ok(StartFigure {
        runs: o.runs,
        create: Stats::of(create),
        websocket_open: Stats::of(open),
        first_byte: Stats::of(first),
        ratio: prompt.median_ms / bare_start.median_ms,
        prompt,
        bare_start,
        bare_start_command: peer.command(),
        target_ms: START_TARGET_MS,
    })
}

/// The node image's layers as an overlay, and a bundle on it whose process is the node's
/// login shell, made interactive (`bash -l -i`: there is no terminal), with the node's
/// environment: the bare start that figure 1 compares with.
struct NodeRoot {
    dir: PathBuf,
    merged: PathBuf,
    exe: PathBuf,
    runs: std::sync::atomic::AtomicUsize,
}

impl NodeRoot {
    fn mount(store: &Store, image: &Image, dir: &Path, cgroup_root: &str) -> Result<NodeRoot> {
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged, &dir.join("state")] {
            std::fs::create_dir_all(d)?;
        }
        let lower: Vec<String> = store
            .lower_dirs(image)
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            upper.display(),
            work.display()
        );
        nix_mount_overlay(&merged, &options)?;
        let root = NodeRoot {
            dir: dir.to_path_buf(),
            merged: merged.clone(),
            exe: std::env::current_exe()?,
            runs: Default::default(),
        };
        let config = &image.config.config;
        let mut env = config.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(slipway_runtime::spec::DEFAULT_PATH.into());
        }
        env.retain(|e| !e.starts_with("TERM="));
        env.push("TERM=xterm-256color".into());
        let mut spec = serde_json::to_value(slipway_runtime::spec::docker_default(&["/bin/bash", "-l", "-i"], false))?;
        spec["root"]["path"] = serde_json::json!(merged);
        spec["hostname"] = serde_json::json!("node1");
        spec["process"]["env"] = serde_json::json!(env);
        spec["process"]["cwd"] = serde_json::json!("/root");
        spec["linux"]["cgroupsPath"] = serde_json::json!(format!("{cgroup_root}/bare"));
        std::fs::write(dir.join("config.json"), serde_json::to_vec_pretty(&spec)?)?;
        Ok(root)
    }

    fn command(&self) -> String {
        "slipway runtime --root $WORK/state run --bundle $WORK <id>   ($WORK/config.json: Docker's defaults, \
         /bin/bash -l -i, hostname node1; rootfs: the node image's layers as an overlay)"
            .to_string()
    }

    /// Milliseconds from the spawn of `slipway runtime run` to the prompt's first byte on
    /// the shell's stderr; then the shell reads the end of its input and exits.
    async fn bare_start(&self) -> Result<f64> {
        let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("slipway-bench-bare-{}-{n}", std::process::id());
        let t0 = Instant::now();
        let mut child = tokio::process::Command::new(&self.exe)
            .arg("runtime")
            .arg("--root")
            .arg(self.dir.join("state"))
            .arg("run")
            .arg("--bundle")
            .arg(&self.dir)
            .arg(&id)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting slipway runtime run")?;
        let mut stderr = child.stderr.take().expect("piped");
        let mut seen = Vec::new();
        let mut buf = [0u8; 4096];
        let prompt = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let n = stderr.read(&mut buf).await?;
                if n == 0 {
                    bail!(
                        "the bare container ended before its prompt: {}",
                        String::from_utf8_lossy(&seen)
                    );
                }
                seen.extend_from_slice(&buf[..n]);
                if String::from_utf8_lossy(&seen).contains("@node1") {
                    return Ok(ms(t0.elapsed()));
                }
            }
        })
        .await
        .map_err(|_| anyhow!("the bare container showed no prompt within 20 s"))??;
        // Its stdin is /dev/null: the shell exits at once; the runtime then deletes it.
        let drain = async {
            while stderr.read(&mut buf).await? > 0 {}
            child.wait().await
        };
        match tokio::time::timeout(Duration::from_secs(20), drain).await {
            Ok(Ok(_)) => Ok(prompt),
            Ok(Err(e)) => Err(e.into()),
            Err(_) => bail!("the bare container did not exit"),
        }
    }
}

impl Drop for NodeRoot {
    fn drop(&mut self) {
        if let Ok(path) = std::ffi::CString::new(self.merged.as_os_str().as_encoded_bytes()) {
            // SAFETY: a valid C string; detaching cannot fail in a way that harms us.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn nix_mount_overlay(target: &Path, options: &str) -> Result<()> {
    let c = |s: &[u8]| std::ffi::CString::new(s).map_err(|e| anyhow!("{e}"));
    let (source, fstype, target_c, data) = (
        c(b"overlay")?,
        c(b"overlay")?,
        c(target.as_os_str().as_encoded_bytes())?,
        c(options.as_bytes())?,
    );
    // SAFETY: valid C strings that outlive the call.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target_c.as_ptr(),
            fstype.as_ptr(),
            0,
            data.as_ptr().cast(),
        )
    };
    if rc != 0 {
        bail!(
            "mounting the node image's layers at {}: {}",
            target.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// A terminal to type into and read the echo from.
trait Line: Send + 'static {
    fn send(&mut self, key: u8) -> impl Future<Output = Result<()>> + Send;
    fn recv(&mut self) -> impl Future<Output = Result<Vec<u8>>> + Send;
}

impl Line for Ws {
    async fn send(&mut self, key: u8) -> Result<()> {
        Ok(SinkExt::send(self, Message::binary(vec![key])).await?)
    }
    async fn recv(&mut self) -> Result<Vec<u8>> {
        next_output(self).await
    }
}

/// Keystrokes timed after the warm-up (µs), and those lost.
struct Typed {
    micros: Vec<f64>,
    lost: usize,
}

/// Types `x` and DEL alternately, one key every 100 ms from `first`, until `end`; times
/// each from just before its send to the receipt of the output holding its echo (`x`, or
/// the backspace of DEL's erase). Output between keystrokes (there should be none) is
/// read and dropped, outside the timing.
async fn typist<L: Line>(mut line: L, first: Instant, warm_until: Instant, end: Instant) -> Result<Typed> {
    let mut typed = Typed {
        micros: Vec::new(),
        lost: 0,
    };
    let mut next = first;
    let mut k = 0u64;
    while next < end {
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(next) => break,
                out = line.recv() => { out?; }
            }
        }
        let (key, echo) = if k.is_multiple_of(2) {
            (b'x', b'x')
        } else {
            (0x7f, 0x08)
        };
        let t0 = std::time::Instant::now();
        line.send(key).await?;
        let echoed = tokio::time::timeout(ECHO_TIMEOUT, async {
            loop {
                if line.recv().await?.contains(&echo) {
                    return Ok::<_, anyhow::Error>(std::time::Instant::now());
                }
            }
        })
        .await;
        let counted = Instant::now() >= warm_until && next >= warm_until;
        match echoed {
            Ok(Ok(t1)) if counted => typed.micros.push((t1 - t0).as_secs_f64() * 1e6),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => {
                if counted {
                    typed.lost += 1;
                }
            }
        }
        k += 1;
        next += KEY_INTERVAL;
        let now = Instant::now();
        while next < now {
            next += KEY_INTERVAL;
        }
    }
    Ok(typed)
}

/// Runs one typist per line, with phases spread over the interval, and gathers them.
async fn type_on<L: Line>(lines: Vec<L>, seconds: u64) -> Result<EchoRun> {
    let count = lines.len();
    let start = Instant::now() + Duration::from_millis(200);
    let warm_until = start + WARM_UP;
    let end = warm_until + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        let phase = KEY_INTERVAL.mul_f64(i as f64 / count as f64);
        tasks.push(tokio::spawn(typist(line, start + phase, warm_until, end)));
    }
    let (mut micros, mut lost) = (Vec::new(), 0);
    for t in tasks {
        let typed = t.await??;
        micros.extend(typed.micros);
        lost += typed.lost;
    }
    let ms: Vec<f64> = micros.into_iter().map(|u| u / 1000.0).collect();
    let s = Stats::of(ms);
    Ok(EchoRun {
        keystrokes: s.samples + lost,
        lost,
        p50_ms: s.median_ms,
        p90_ms: s.p90_ms,
        p99_ms: s.p99_ms,
        max_ms: s.max_ms,
    })
}

async fn echo_figure(api: &Api, o: &Options, work: &Path) -> Result<EchoFigure> {
    let playgrounds = o.terminals.div_ceil(o.terminals_per_playground);
    let mut ids = Vec::new();
    let slipway = async {
        let mut lines = Vec::new();
        for p in 0..playgrounds {
            let id = api.create().await?;
            ids.push(id.clone());
            for n in 1..=o
                .terminals_per_playground
                .min(o.terminals - p * o.terminals_per_playground)
            {
                let mut ws = api.terminal(&id, n).await?;
                wait_for_prompt(&mut ws).await?;
                lines.push(ws);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        type_on(lines, o.seconds).await
    }
    .await;
    for id in &ids {
        api.remove(id).await?;
    }
    let slipway = slipway?;

    let home = work.join("pty-home");
    std::fs::create_dir_all(&home)?;
    let mut lines = Vec::new();
    for _ in 0..o.terminals {
        lines.push(Pty::shell(&home)?);
    }
    for line in &mut lines {
        line.wait_for_prompt().await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let floor = type_on(lines, o.seconds).await?;
    Ok(EchoFigure {
        playgrounds,
        terminals: o.terminals,
        keys_per_second_per_terminal: 1.0 / KEY_INTERVAL.as_secs_f64(),
        seconds: o.seconds,
        ratio_p50: slipway.p50_ms / floor.p50_ms,
        ratio_p99: slipway.p99_ms / floor.p99_ms,
        slipway,
        pty_floor: floor,
        pty_floor_command: "/bin/bash --noprofile --norc -i on a PTY (TERM=xterm-256color, 24x80), one per terminal, read and written by this process".into(),
        target_p99_ms: ECHO_P99_TARGET_MS,
    })
}

/// A host bash on a PTY of its own, driven by this process.
struct Pty {
    master: AsyncFd<OwnedFd>,
    _child: tokio::process::Child,
}

impl Pty {
    fn shell(home: &Path) -> Result<Pty> {
        use std::os::unix::process::CommandExt;
        // SAFETY: plain libc calls on descriptors we own; each result is checked.
        let master = unsafe {
            let fd = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC);
            if fd < 0 {
                return Err(std::io::Error::last_os_error()).context("posix_openpt");
            }
            let master = OwnedFd::from_raw_fd(fd);
            if libc::grantpt(fd) != 0 || libc::unlockpt(fd) != 0 {
                return Err(std::io::Error::last_os_error()).context("unlocking a PTY");
            }
            let size = libc::winsize {
                ws_row: 24,
                ws_col: 80,
                ws_xpixel: 0,
                ws_ypixel: 0,
            };
            libc::ioctl(fd, libc::TIOCSWINSZ, &size);
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
            master
        };
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: the buffer is as long as we say.
        if unsafe { libc::ptsname_r(master.as_raw_fd(), name.as_mut_ptr(), name.len()) } != 0 {
            return Err(std::io::Error::last_os_error()).context("ptsname");
        }
        // SAFETY: ptsname_r wrote a NUL-terminated string.
        let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        let slave = {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
                .open(&path)?
        };
        let mut command = tokio::process::Command::new("/bin/bash");
        command
            .args(["--noprofile", "--norc", "-i"])
            .env_clear()
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .env("TERM", "xterm-256color")
            .env("HOME", home)
            .env("LANG", "C.UTF-8")
            .env("PS1", "\\u@pty:\\w\\$ ")
            .current_dir(home)
            .stdin(slave.try_clone()?)
            .stdout(slave.try_clone()?)
            .stderr(slave)
            .kill_on_drop(true);
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.as_std_mut().pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command.spawn().context("starting /bin/bash on a PTY")?;
        // SAFETY: an OwnedFd keeps its descriptor open and the same for its whole life.
        let master = unsafe { AsyncFd::register_with_interest(master, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow!("{e}"))?;
        Ok(Pty { master, _child: child })
    }

    async fn wait_for_prompt(&mut self) -> Result<()> {
        let mut screen = Vec::new();
        tokio::time::timeout(Duration::from_secs(20), async {
            while !has_prompt(&screen, "pty") {
                screen.extend(self.recv().await?);
            }
            Ok::<_, anyhow::Error>(())
        })
        .await
        .map_err(|_| anyhow!("no prompt from bash on a PTY within 20 s"))?
    }
}

impl Line for Pty {
    async fn send(&mut self, key: u8) -> Result<()> {
        // SAFETY: one byte from a live buffer to our descriptor; a PTY takes it at once.
        let n = unsafe { libc::write(self.master.as_raw_fd(), [key].as_ptr().cast(), 1) };
        if n != 1 {
            return Err(std::io::Error::last_os_error()).context("writing to a PTY");
        }
        Ok(())
    }
    async fn recv(&mut self) -> Result<Vec<u8>> {
        let mut buf = [0u8; 4096];
        loop {
            let mut ready = self.master.readable().await?;
            match ready.try_io(|fd| {
                // SAFETY: reads into a live buffer of the stated length.
                let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
                if n < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(n as usize)
                }
            }) {
                Ok(Ok(0)) => bail!("the shell on the PTY ended"),
                Ok(Ok(n)) => return Ok(buf[..n].to_vec()),
                Ok(Err(e)) => return Err(anyhow!(e).context("reading a PTY")),
                Err(_would_block) => continue,
            }
        }
    }
}

/// /proc/meminfo, in KiB.
fn meminfo() -> HashMap<String, u64> {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.split_whitespace().next()?.parse().ok()?))
        })
        .collect()
}

/// A `Key:   N kB` field of a /proc file, in KiB (0 if absent).
fn proc_kib(path: &Path, keys: &[&str]) -> u64 {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            keys.contains(&k.trim())
                .then(|| v.split_whitespace().next()?.parse::<u64>().ok())?
        })
        .sum()
}

/// Processes whose command line is a node monitor of one of `containers`.
fn monitors(runtime_root: &Path, containers: &[String]) -> Vec<u32> {
    let root = runtime_root.display().to_string();
    let mut pids = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = raw
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let is_monitor = args.windows(2).any(|w| w[0] == "--root" && w[1] == root)
            && args.iter().any(|a| a == "monitor")
            && args.last().is_some_and(|id| containers.contains(id));
        if is_monitor {
            pids.push(pid);
        }
    }
    pids
}

/// A playground cgroup's (anonymous + shmem + kernel, page cache) in bytes, v1 or v2.
fn cgroup_memory(cgroup_root: &str, id: &str) -> Result<(u64, u64)> {
    let stat = |dir: &Path| -> HashMap<String, u64> {
        std::fs::read_to_string(dir.join("memory.stat"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let (k, v) = l.split_once(' ')?;
                Some((k.to_string(), v.trim().parse().ok()?))
            })
            .collect()
    };
    let v1 = Path::new("/sys/fs/cgroup/memory")
        .join(cgroup_root)
        .join(format!("pg-{id}"));
    if v1.is_dir() {
        let s = stat(&v1);
        let kmem: u64 = std::fs::read_to_string(v1.join("memory.kmem.usage_in_bytes"))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0);
        let shmem = s.get("total_shmem").copied().unwrap_or(0);
        let anon = s.get("total_rss").copied().unwrap_or(0);
        let cache = s.get("total_cache").copied().unwrap_or(0);
        return Ok((anon + shmem + kmem, cache.saturating_sub(shmem)));
    }
    for base in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
        let v2 = Path::new(base).join(cgroup_root).join(format!("pg-{id}"));
        if v2.join("memory.stat").is_file() {
            let s = stat(&v2);
            let get = |k: &str| s.get(k).copied().unwrap_or(0);
            let kernel = if s.contains_key("kernel") {
                get("kernel")
            } else {
                get("kernel_stack") + get("pagetables") + get("percpu") + get("sock") + get("slab")
            };
            return Ok((
                get("anon") + get("shmem") + kernel,
                get("file").saturating_sub(get("shmem")),
            ));
        }
    }
    bail!("no memory cgroup for playground {id} under {cgroup_root}")
}

const MIB: f64 = 1024.0 * 1024.0;

async fn memory_figure(
    api: &Api,
    o: &Options,
    server_pid: u32,
    runtime_root: &Path,
    cgroup_root: &str,
) -> Result<MemoryFigure> {
    let server_status = PathBuf::from(format!("/proc/{server_pid}/status"));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let host_before = meminfo();
    let server_before = proc_kib(&server_status, &["RssAnon"]);
    let mut ids = Vec::new();
    let mut sockets = Vec::new();
    let measured = async {
        for _ in 0..o.idle {
            let id = api.create().await?;
            ids.push(id.clone());
            let mut ws = api.terminal(&id, 1).await?;
            wait_for_prompt(&mut ws).await?;
            sockets.push(ws);
        }
        // Idle: let the shells, the monitors and the kernel's deferred work settle.
        tokio::time::sleep(Duration::from_secs(5)).await;
        let host_after = meminfo();
        let server_after = proc_kib(&server_status, &["RssAnon"]);
        let containers: Vec<String> = ids.iter().map(|id| format!("pg-{id}-node1")).collect();
        let pids = monitors(runtime_root, &containers);
        if pids.len() != ids.len() {
            bail!("found {} node monitors for {} playgrounds", pids.len(), ids.len());
        }
        let mut private = 0;
        let mut page_tables = 0;
        for pid in &pids {
            private += proc_kib(
                &PathBuf::from(format!("/proc/{pid}/smaps_rollup")),
                &["Private_Clean", "Private_Dirty", "Private_Hugetlb"],
            );
            page_tables += proc_kib(&PathBuf::from(format!("/proc/{pid}/status")), &["VmPTE"]);
        }
        let (mut in_cgroups, mut cache) = (0u64, 0u64);
        for id in &ids {
            let (a, c) = cgroup_memory(cgroup_root, id)?;
            in_cgroups += a;
            cache += c;
        }
        let k = ids.len() as f64;
        let kib = |v: i64| v as f64 * 1024.0 / MIB;
        let delta = |key: &str| {
            host_after.get(key).copied().unwrap_or(0) as i64 - host_before.get(key).copied().unwrap_or(0) as i64
        };
        let server = kib(server_after as i64 - server_before as i64);
        let monitors_private = kib(private as i64);
        let monitors_pt = kib(page_tables as i64);
        let cgroups = in_cgroups as f64 / MIB;
        let per_playground = (server + monitors_private + monitors_pt + cgroups) / k;
        let host_kernel = kib(delta("SUnreclaim") + delta("PageTables") + delta("KernelStack")) / k;
        Ok::<_, anyhow::Error>(MemoryFigure {
            playgrounds: ids.len(),
            server_anon_mib: server,
            monitors_private_mib: monitors_private,
            monitors_page_tables_mib: monitors_pt,
            cgroups_anon_kernel_mib: cgroups,
            cgroups_page_cache_mib: cache as f64 / MIB,
            per_playground_mib: per_playground,
            host_available_drop_per_playground_mib: kib(-delta("MemAvailable")) / k,
            host_available_return_per_playground_mib: f64::NAN,
            host_kernel_per_playground_mib: host_kernel,
            pessimistic_mib: per_playground + host_kernel.max(0.0),
            target_mib: MEMORY_TARGET_MIB,
        })
    }
    .await;
    let with_them = meminfo();
    drop(sockets);
    for id in &ids {
        api.remove(id).await?;
    }
    let mut figure = measured?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = meminfo();
    let available = |m: &HashMap<String, u64>| m.get("MemAvailable").copied().unwrap_or(0) as f64 / 1024.0;
    figure.host_available_return_per_playground_mib = (available(&after) - available(&with_them)) / ids.len() as f64;
    Ok(figure)
}

pub fn print(f: &Figures) {
    println!("node image: {}", f.node_image);
    let s = &f.start;
    println!();
    println!(
        "1. Start: POST /api/playgrounds (1 node) to the prompt on terminal 1's WebSocket, {} runs",
        s.runs
    );
    Stats::print_header(44);
    let row = |label: &str, st: &Stats| st.print_row(label, 44);
    row("POST answered (201)", &s.create);
    row("WebSocket open (101; shell exec'd)", &s.websocket_open);
    row("first byte of output (welcome text)", &s.first_byte);
    row("first byte of the prompt", &s.prompt);
    row("peer: bare start of the node image to prompt", &s.bare_start);
    println!("   peer: {}", s.bare_start_command);
    println!(
        "   playground / bare start = {:.2}x; target: median at most {} ms: {} ({:.1} ms)",
        s.ratio,
        s.target_ms,
        if s.prompt.median_ms <= s.target_ms {
            "met"
        } else {
            "NOT met"
        },
        s.prompt.median_ms
    );
    let e = &f.echo;
    println!();
    println!(
        "2. Keystroke echo: {} terminals ({} playgrounds), each typing {} keys/s for {} s (after {} s warm-up)",
        e.terminals,
        e.playgrounds,
        e.keys_per_second_per_terminal,
        e.seconds,
        WARM_UP.as_secs()
    );
    println!(
        "   {:<44} {:>9} {:>9} {:>9} {:>9} {:>9} {:>6}",
        "", "keys", "p50", "p90", "p99", "max", "lost"
    );
    for (label, r) in [
        ("slipway (WebSocket, server, monitor, PTY)", &e.slipway),
        ("floor: bash on a PTY, no server", &e.pty_floor),
    ] {
        println!(
            "   {:<44} {:>9} {:>6.2} ms {:>6.2} ms {:>6.2} ms {:>6.1} ms {:>6}",
            label, r.keystrokes, r.p50_ms, r.p90_ms, r.p99_ms, r.max_ms, r.lost
        );
    }
    println!("   floor: {}", e.pty_floor_command);
    println!(
        "   slipway / floor = {:.2}x (p50), {:.2}x (p99); target: p99 at most {} ms: {} ({:.2} ms)",
        e.ratio_p50,
        e.ratio_p99,
        e.target_p99_ms,
        if e.slipway.p99_ms <= e.target_p99_ms && e.slipway.lost == 0 {
            "met"
        } else {
            "NOT met"
        },
        e.slipway.p99_ms
    );
    let m = &f.memory;
    println!();
    println!(
        "3. Host memory per idle playground: {} playgrounds, one node, one connected idle shell each",
        m.playgrounds
    );
    println!(
        "   server's anonymous memory, growth      {:>8.1} MiB",
        m.server_anon_mib
    );
    println!(
        "   node monitors, private memory          {:>8.1} MiB",
        m.monitors_private_mib
    );
    println!(
        "   node monitors, page tables             {:>8.1} MiB",
        m.monitors_page_tables_mib
    );
    println!(
        "   playground cgroups, anon+shmem+kernel  {:>8.1} MiB",
        m.cgroups_anon_kernel_mib
    );
    println!(
        "   (not counted: page cache charged to the cgroups, shared and reclaimable: {:.1} MiB)",
        m.cgroups_page_cache_mib
    );
    println!(
        "   per playground: {:.2} MiB; target at most {} MiB: {}",
        m.per_playground_mib,
        m.target_mib,
        if m.per_playground_mib <= m.target_mib {
            "met"
        } else {
            "NOT met"
        }
    );
    println!(
        "   whole-host cross-checks per playground (other work on the machine moves these): MemAvailable dropped {:.2} MiB as they were made and rose {:.2} MiB as they were removed; unreclaimable slab + page tables + kernel stacks grew {:.2} MiB",
        m.host_available_drop_per_playground_mib,
        m.host_available_return_per_playground_mib,
        m.host_kernel_per_playground_mib
    );
    println!(
        "   pessimistic (per playground + all that kernel growth): {:.2} MiB",
        m.pessimistic_mib
    );
    println!(
        "   no peer: nothing else that runs a playground (Docker's daemon, Play with Docker) is installed or installable offline here"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_is_found_only_in_full() {
        let welcome = b"\r\n  Welcome to your Slipway node.\r\n";
        assert!(!has_prompt(welcome, "node1"));
        let prompt = b"\x1b[?2004h\x1b[1;32mroot@node1\x1b[0m:\x1b[1;34m~\x1b[0m# ";
        assert!(has_prompt(&[&welcome[..], &prompt[..]].concat(), "node1"));
        assert!(!has_prompt(&prompt[..prompt.len() - 2], "node1"));
        assert!(has_prompt(b"root@pty:~# ", "pty"));
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(dechunk(b"4\r\n[{}]\r\n3\r\nabc\r\n0\r\n\r\n"), b"[{}]abc");
    }
}
