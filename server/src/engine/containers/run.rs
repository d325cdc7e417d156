//! Running containers: start (through the runtime's monitors), stop, kill, restart,
//! pause, wait, attach and remove, and the supervisor that sees each exit and applies the
//! restart policy and `--rm`.
//!
//! Each container's operations are serialised by a lock of its own; an exit is seen by
//! the task that waits on the monitor, which updates the record without that lock (a
//! `stop` holding it waits for exactly that update).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard_stubs::models::RestartPolicyNameEnum;
use nix::sys::signal::Signal;
use slipway_runtime::image::view::MergedView;
use slipway_runtime::monitor::OverlayConfig;
use slipway_runtime::monitor::client::{CreateOptions, Session};
use tokio::sync::{oneshot, watch};

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::super::networks;
use super::super::state::{ContainerRecord, State, now};
use super::{container_attributes, health, spec};

/// What a running container holds besides its record: port proxies, its DNS server, its
/// health checker; dropped when it stops.
#[derive(Default)]
pub struct Live {
    pub network: Option<networks::Attached>,
    /// The task waiting for the run's end (it carries out `exited`, so it is never
    /// aborted from there).
    waiter: Option<tokio::task::JoinHandle<()>>,
    /// Health checks and the like, stopped with the run.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Attach requests made before the container started (`docker run` attaches first).
    pending: Vec<(AttachWants, oneshot::Sender<Session>)>,
}

impl Drop for Live {
    fn drop(&mut self) {
        for t in self.tasks.iter().chain(self.waiter.iter()) {
            t.abort();
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct AttachWants {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A node's running containers' side state.
pub struct Runs {
    live: Mutex<HashMap<String, Live>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Bumped on every change of any container's state; waiters watch it.
    changed: watch::Sender<u64>,
    /// Per container: how many times it has exited, and the last exit code (kept after
    /// removal for `wait?condition=removed`).
    exits: Mutex<HashMap<String, (u64, i64)>>,
}

impl Default for Runs {
    fn default() -> Self {
        Runs {
            live: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            changed: watch::channel(0).0,
            exits: Mutex::new(HashMap::new()),
        }
    }
}

impl Runs {
    fn lock_of(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(id.to_string())
            .or_default()
            .clone()
    }
    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn bump(&self) {
        self.changed.send_modify(|n| *n += 1);
    }
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
    fn exits(&self, id: &str) -> (u64, i64) {
        self.exits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .copied()
            .unwrap_or((0, 0))
    }
    /// Published ports of a running container, for `docker port` and inspect.
    pub fn with_live<T>(&self, id: &str, f: impl FnOnce(Option<&Live>) -> T) -> T {
        f(self.live().get(id))
    }
}

/// `SIGTERM`, `TERM`, `15` → the signal.
pub fn parse_signal(s: &str) -> Option<Signal> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        return Signal::try_from(n).ok();
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<Signal>().ok()
}

fn set_state(node: &Node, id: &str, f: impl FnOnce(&mut ContainerRecord)) -> ApiResult<ContainerRecord> {
    let mut st = node.state();
    let rec = st
        .containers
        .get_mut(id)
        .ok_or_else(|| ApiError::no_such_container(id))?;
    f(rec);
    State::save_container(&node.paths, rec)?;
    let out = rec.clone();
    drop(st);
    node.runs.bump();
    Ok(out)
}

/// `docker start`: a new run of the container.
pub async fn start(node: &Arc<Node>, key: &str) -> ApiResult<()> {
    let id = node.container(key)?.id;
    let lock = node.runs.lock_of(&id);
    let _held = lock.lock().await;
    let rec = node.container(&id)?;
    match rec.state.status.as_str() {
        "running" => return Err(ApiError::NotModified),
        "paused" => {
            return Err(ApiError::Conflict(
                "cannot start a paused container, try unpause instead".into(),
            ));
        }
        "removing" | "dead" => {
            return Err(ApiError::Conflict(format!(
                "container {} is marked for removal",
                rec.id
            )));
        }
        _ => {}
    }
    let auto_remove = rec.host_config.auto_remove == Some(true);
    let Err(e) = run_once(node, rec).await else {
        return Ok(());
    };
    let message = e.to_string();
    // The codes Docker gives a process that could not be started.
    let code = if message.contains("executable file not found") || message.contains("no such file") {
        127
    } else if message.contains("permission denied") {
        126
    } else {
        128
    };
    let _ = set_state(node, &id, |r| {
        r.state.error = message.clone();
        if r.state.status != "running" {
            r.state.status = if r.state.started_at.starts_with("0001") {
                "created"
            } else {
                "exited"
            }
            .into();
            r.state.exit_code = code;
        }
    });
    node.runs.live().remove(&id);
    drop(_held);
    // `--rm` holds for a container that never ran too (the CLI waits for its removal).
    if auto_remove {
        let _ = remove(node, &id, true, true).await;
    }
    Err(e)
}

/// Boxed with a named type: a run's supervisor may start the next run (restart
/// policies), and the compiler needs the cycle broken to see the future is Send.
fn run_once(
    node: &Arc<Node>,
    rec: ContainerRecord,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ApiResult<()>> + Send + '_>> {
    Box::pin(run_once_inner(node, rec))
}

async fn run_once_inner(node: &Arc<Node>, mut rec: ContainerRecord) -> ApiResult<()> {
    let engine = &node.engine;
    let image = engine.images.image(&rec.image_id)?;
    let lower = engine.images.lower_dirs(&image);
    let dir = node.paths.container(&rec.id);
    let (upper, work) = node.container_layer(&rec.id);
    let rootfs = dir.join("rootfs");
    for d in [&upper, &work, &rootfs] {
        std::fs::create_dir_all(d).map_err(|e| ApiError::internal(format!("{}: {e}", d.display())))?;
    }
    let node_pid = node.node_pid()?;
    let joins = networks::joins(node, &rec, node_pid)?;
    // Addresses first: /etc/hosts names the container's own.
    networks::allocate(node, &mut rec)?;
    networks::write_files(node, &rec, &dir, node_pid)?;

    let mut layers = vec![upper.clone()];
    layers.extend(lower.iter().cloned());
    let view = MergedView::new(layers);
    make_workdir(&rec, &view, &upper)?;
    let spec = spec::build(node, &rec, &view, &rootfs, &dir, &joins)?;
    // `exec` and healthchecks run processes like the container's own.
    let process = serde_json::to_vec(&spec.process()).map_err(ApiError::internal)?;
    std::fs::write(dir.join("process.json"), process).map_err(ApiError::internal)?;
    let log_opts = rec
        .host_config
        .log_config
        .as_ref()
        .and_then(|l| l.config.clone())
        .unwrap_or_default();
    let options = CreateOptions {
        spec,
        bundle: dir.clone(),
        overlay: Some(OverlayConfig { lower, upper, work }),
        open_stdin: rec.config.open_stdin.unwrap_or(false),
        init: rec.host_config.init.unwrap_or(false),
        log_path: dir.join(format!("{}-json.log", rec.id)),
        log_max_size: log_opts.get("max-size").and_then(|s| parse_size(s)).or(Some(10 << 20)),
        log_max_files: log_opts.get("max-file").and_then(|s| s.parse().ok()).or(Some(3)),
    };
    // A run left over from before (a crash, a restart of the server) goes first.
    if engine.containers.info(&rec.runtime_id).is_ok() {
        let _ = engine.containers.delete(&rec.runtime_id, true).await;
    }
    let info = engine.containers.create(&rec.runtime_id, options).await?;
    let mut live = Live::default();
    let attached = networks::connect(node, &rec, info.pid, node_pid).await;
    let attached = match attached {
        Ok(a) => a,
        Err(e) => {
            let _ = engine.containers.delete(&rec.runtime_id, true).await;
            return Err(e);
        }
    };
    live.network = Some(attached);
    if let Err(e) = mount_node_binds(&rec, node_pid, info.pid).await {
        let _ = engine.containers.delete(&rec.runtime_id, true).await;
        return Err(e);
    }
    // Attachers waiting for this start get their streams before the workload runs, so
    // they see all of its output.
    let pending = node
        .runs
        .live()
        .get_mut(&rec.id)
        .map(|l| std::mem::take(&mut l.pending))
        .unwrap_or_default();
    for (wants, tx) in pending {
        if let Ok(session) = engine
            .containers
            .attach(&rec.runtime_id, wants.stdin, wants.stdout, wants.stderr)
            .await
        {
            let _ = tx.send(session);
        }
    }
    if let Err(e) = engine.containers.start(&rec.runtime_id).await {
        let _ = engine.containers.delete(&rec.runtime_id, true).await;
        return Err(e.into());
    }
    let ports = live.network.as_ref().map(|a| a.ports.clone()).unwrap_or_default();
    let endpoints = live.network.as_ref().map(|a| a.endpoints.clone()).unwrap_or_default();
    let rec = set_state(node, &rec.id, |r| {
        r.state.status = "running".into();
        r.state.pid = info.pid as i64;
        r.state.exit_code = 0;
        r.state.error = String::new();
        r.state.oom_killed = false;
        r.state.started_at = now();
        r.stopped_by_user = false;
        r.ports = ports;
        for (name, ep) in endpoints {
            r.networks.insert(name, ep);
        }
        if let Some(h) = &mut r.state.health {
            h.status = Some(bollard_stubs::models::HealthStatusEnum::STARTING);
            h.failing_streak = Some(0);
        }
    })?;
    let node2 = node.clone();
    let id = rec.id.clone();
    let runtime_id = rec.runtime_id.clone();
    live.waiter = Some(tokio::spawn(async move {
        let exit = node2.engine.containers.wait(&runtime_id).await;
        exited(&node2, &id, exit.ok()).await;
    }));
    if let Some(task) = health::spawn(node, &rec) {
        live.tasks.push(task);
    }
    node.runs.live().insert(rec.id.clone(), live);
    node.emit("container", "start", &rec.id, container_attributes(&rec));
    Ok(())
}

/// Docker makes a missing working directory (`-w /srv`) in the container's filesystem;
/// it goes in the container's own layer, owned by the container's user.
fn make_workdir(rec: &ContainerRecord, view: &MergedView, upper: &std::path::Path) -> ApiResult<()> {
    let Some(dir) = rec
        .config
        .working_dir
        .as_deref()
        .filter(|d| d.starts_with('/') && *d != "/")
    else {
        return Ok(());
    };
    let clean = slipway_runtime::build::builder::normalize(std::path::Path::new(dir));
    if view.resolve(&clean, true).is_some() {
        return Ok(());
    }
    let target = upper.join(clean.strip_prefix("/").unwrap_or(&clean));
    std::fs::create_dir_all(&target)
        .map_err(|e| ApiError::internal(format!("making the working directory {dir}: {e}")))?;
    if let Ok((uid, gid, _)) = spec::resolve_user(view, rec.config.user.as_deref().unwrap_or("")) {
        let _ = std::os::unix::fs::chown(&target, Some(uid), Some(gid));
    }
    Ok(())
}

/// `-v /node/path:/dest` and `--mount type=bind`: the node's trees into the container.
async fn mount_node_binds(rec: &ContainerRecord, node_pid: i32, pid: i32) -> ApiResult<()> {
    for m in rec.mounts.iter().filter(|m| m.typ.as_deref() == Some("bind")) {
        let source = m.source.clone().unwrap_or_default();
        let dest = m.destination.clone().unwrap_or_default();
        let readonly = m.rw == Some(false);
        tokio::task::spawn_blocking(move || {
            let (tree, is_dir) = super::binds::clone_from_node(node_pid, &source, readonly)
                .map_err(|e| ApiError::bad(format!("invalid mount config for type \"bind\": {e}")))?;
            super::binds::mount_into(pid, tree, &dest, is_dir).map_err(|e| ApiError::internal(format!("{e}")))
        })
        .await
        .map_err(ApiError::internal)??;
    }
    Ok(())
}

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s.as_str(), 1),
    };
    num.trim().parse::<u64>().ok().map(|n| n * mult)
}

/// The supervisor's part: a run ended.
async fn exited(node: &Arc<Node>, id: &str, exit: Option<slipway_runtime::monitor::Exit>) {
    let code = exit.map(|e| e.code as i64).unwrap_or(255);
    let oom = exit.is_some_and(|e| e.oom_killed);
    // The run's runtime container goes before the record says "exited": whoever waits for
    // that (stop, restart) may start the next run at once, under the same runtime ID.
    if let Ok(rec) = node.container(id) {
        let _ = node.engine.containers.delete(&rec.runtime_id, true).await;
    }
    let Ok(rec) = set_state(node, id, |r| {
        r.state.status = "exited".into();
        r.state.exit_code = code;
        r.state.oom_killed = oom;
        r.state.pid = 0;
        r.state.finished_at = now();
        r.ports.clear();
        for ep in r.networks.values_mut() {
            ep.ip = None;
        }
        if let Some(h) = &mut r.state.health {
            h.status = Some(bollard_stubs::models::HealthStatusEnum::UNHEALTHY);
        }
    }) else {
        return;
    };
    {
        let mut exits = node.runs.exits.lock().unwrap_or_else(|p| p.into_inner());
        let e = exits.entry(id.to_string()).or_insert((0, 0));
        *e = (e.0 + 1, code);
    }
    // Ports, DNS and health checks end with the run; pending attachers stay.
    {
        let mut live = node.runs.live();
        if let Some(l) = live.get_mut(id) {
            l.network = None;
            // The waiter is this very task: let it go on rather than abort it.
            drop(l.waiter.take());
            for t in l.tasks.drain(..) {
                t.abort();
            }
        }
    }
    let mut attrs = container_attributes(&rec);
    attrs.push(("exitCode".into(), code.to_string()));
    if oom {
        node.emit("container", "oom", id, container_attributes(&rec));
    }
    node.emit("container", "die", id, attrs);
    node.runs.bump();

    if rec.host_config.auto_remove == Some(true) {
        match remove(node, id, true, true).await {
            // Removed meanwhile by a `docker rm -f`.
            Ok(()) | Err(ApiError::NotFound(_)) => {}
            Err(e) => tracing::warn!(container = %id, error = %e, "removing a --rm container"),
        }
        return;
    }
    let policy = rec.host_config.restart_policy.clone().unwrap_or_default();
    let restart = match policy.name {
        Some(RestartPolicyNameEnum::ALWAYS) => true,
        Some(RestartPolicyNameEnum::UNLESS_STOPPED) => !rec.stopped_by_user,
        Some(RestartPolicyNameEnum::ON_FAILURE) => {
            let max = policy.maximum_retry_count.unwrap_or(0);
            code != 0 && (max == 0 || rec.restart_count < max)
        }
        _ => false,
    } && !rec.stopped_by_user;
    if !restart {
        return;
    }
    // Docker doubles the delay from 100 ms while a container keeps failing fast.
    let delay = Duration::from_millis(100u64 << rec.restart_count.clamp(0, 9));
    let _ = set_state(node, id, |r| r.state.status = "restarting".into());
    let node = node.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        tokio::time::sleep(delay).await;
        let lock = node.runs.lock_of(&id);
        let _held = lock.lock().await;
        let Ok(rec) = node.container(&id) else { return };
        if rec.stopped_by_user || rec.state.status != "restarting" {
            return;
        }
        let _ = set_state(&node, &id, |r| r.restart_count += 1);
        let rec = match node.container(&id) {
            Ok(r) => r,
            Err(_) => return,
        };
        if let Err(e) = run_once(&node, rec).await {
            tracing::warn!(container = %id, error = %e, "restarting a container");
            let _ = set_state(&node, &id, |r| {
                r.state.status = "exited".into();
                r.state.error = e.to_string();
            });
        }
    });
}

/// Waits until `id`'s record satisfies `done` (or the container is gone).
async fn until(node: &Node, id: &str, done: impl Fn(Option<&ContainerRecord>) -> bool) {
    let mut rx = node.runs.subscribe();
    loop {
        {
            let st = node.state();
            if done(st.containers.get(id)) {
                return;
            }
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

/// Waits until the container is no longer running (or is gone).
pub async fn until_stopped(node: &Node, id: &str) {
    until(node, id, |r| r.is_none_or(|r| !r.state.running())).await;
}

/// `docker stop`: the stop signal, then SIGKILL after the timeout.
pub async fn stop(node: &Arc<Node>, key: &str, signal: Option<&str>, timeout: Option<i64>) -> ApiResult<()> {
    let id = node.container(key)?.id;
    let lock = node.runs.lock_of(&id);
    let _held = lock.lock().await;
    stop_locked(node, &id, signal, timeout).await
}

async fn stop_locked(node: &Arc<Node>, id: &str, signal: Option<&str>, timeout: Option<i64>) -> ApiResult<()> {
    let rec = node.container(id)?;
    if rec.state.status == "restarting" {
        set_state(node, id, |r| {
            r.stopped_by_user = true;
            r.state.status = "exited".into();
        })?;
        return Ok(());
    }
    if !rec.state.running() {
        return Err(ApiError::NotModified);
    }
    let sig_name = signal
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .or_else(|| rec.config.stop_signal.clone().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "SIGTERM".into());
    let sig = parse_signal(&sig_name).ok_or_else(|| ApiError::bad(format!("Invalid signal: {sig_name}")))?;
    let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
    set_state(node, id, |r| r.stopped_by_user = true)?;
    let mut attrs = container_attributes(&rec);
    attrs.push(("signal".into(), (sig as i32).to_string()));
    node.emit("container", "kill", id, attrs);
    let wait = if secs < 0 {
        Duration::from_secs(3600 * 24)
    } else {
        Duration::from_secs(secs as u64)
    };
    // The supervisor may delete the run as soon as it ends, under the stop's feet: what
    // counts is the record saying it is no longer running.
    if let Err(e) = node.engine.containers.stop(&rec.runtime_id, sig, wait).await
        && node.container(id).is_ok_and(|r| r.state.running())
        && node.engine.containers.info(&rec.runtime_id).is_ok()
    {
        return Err(e.into());
    }
    until(node, id, |r| r.is_none_or(|r| !r.state.running())).await;
    node.emit("container", "stop", id, container_attributes(&rec));
    Ok(())
}

/// `docker kill`.
pub async fn kill(node: &Arc<Node>, key: &str, signal: Option<&str>) -> ApiResult<()> {
    let rec = node.container(key)?;
    let sig_name = signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL");
    let sig = parse_signal(sig_name).ok_or_else(|| ApiError::bad(format!("Invalid signal: {sig_name}")))?;
    if !rec.state.running() {
        return Err(ApiError::Conflict(format!(
            "Cannot kill container: {key}: container {} is not running",
            rec.id
        )));
    }
    if matches!(sig, Signal::SIGKILL | Signal::SIGTERM | Signal::SIGINT) {
        set_state(node, &rec.id, |r| r.stopped_by_user = true)?;
    }
    if rec.state.status == "paused" && sig == Signal::SIGKILL {
        let _ = node.engine.containers.resume(&rec.runtime_id);
    }
    node.engine.containers.signal(&rec.runtime_id, sig)?;
    let mut attrs = container_attributes(&rec);
    attrs.push(("signal".into(), (sig as i32).to_string()));
    node.emit("container", "kill", &rec.id, attrs);
    if sig == Signal::SIGKILL {
        until(node, &rec.id, |r| r.is_none_or(|r| !r.state.running())).await;
    }
    Ok(())
}

/// `docker restart`.
pub async fn restart(node: &Arc<Node>, key: &str, signal: Option<&str>, timeout: Option<i64>) -> ApiResult<()> {
    let id = node.container(key)?.id;
    {
        let lock = node.runs.lock_of(&id);
        let _held = lock.lock().await;
        match stop_locked(node, &id, signal, timeout).await {
            Ok(()) | Err(ApiError::NotModified) => {}
            Err(e) => return Err(e),
        }
    }
    start(node, &id).await?;
    let rec = node.container(&id)?;
    node.emit("container", "restart", &id, container_attributes(&rec));
    Ok(())
}

pub fn pause(node: &Node, key: &str) -> ApiResult<()> {
    let rec = node.container(key)?;
    match rec.state.status.as_str() {
        "running" => {}
        "paused" => return Err(ApiError::Conflict(format!("Container {} is already paused", rec.id))),
        _ => return Err(ApiError::Conflict(format!("Container {} is not running", rec.id))),
    }
    node.engine.containers.pause(&rec.runtime_id)?;
    set_state(node, &rec.id, |r| r.state.status = "paused".into())?;
    node.emit("container", "pause", &rec.id, container_attributes(&rec));
    Ok(())
}

pub fn unpause(node: &Node, key: &str) -> ApiResult<()> {
    let rec = node.container(key)?;
    if rec.state.status != "paused" {
        return Err(ApiError::Conflict(format!("Container {} is not paused", rec.id)));
    }
    node.engine.containers.resume(&rec.runtime_id)?;
    set_state(node, &rec.id, |r| r.state.status = "running".into())?;
    node.emit("container", "unpause", &rec.id, container_attributes(&rec));
    Ok(())
}

/// `POST /containers/{id}/wait?condition=`: not-running (default), next-exit, removed.
pub async fn wait(node: &Arc<Node>, key: &str, condition: &str) -> ApiResult<i64> {
    let rec = node.container(key)?;
    let id = rec.id.clone();
    match condition {
        "" | "not-running" => {
            until(node, &id, |r| {
                r.is_none_or(|r| !r.state.running() && r.state.status != "restarting")
            })
            .await;
        }
        "next-exit" => {
            let (seen, _) = node.runs.exits(&id);
            let runs = &node.runs;
            until(node, &id, |r| r.is_none() || runs.exits(&id).0 > seen).await;
        }
        "removed" => {
            until(node, &id, |r| r.is_none()).await;
        }
        other => {
            return Err(ApiError::bad(format!("invalid condition: \"{other}\"")));
        }
    }
    let code = node
        .state()
        .containers
        .get(&id)
        .map(|r| r.state.exit_code)
        .unwrap_or_else(|| node.runs.exits(&id).1);
    Ok(code)
}

/// An attach stream, to be had at once for a running container, else when it next
/// starts. The request is registered before this returns (the CLI starts the container as
/// soon as its attach is answered), the stream comes with the future.
pub fn attach(
    node: &Arc<Node>,
    key: &str,
    wants: AttachWants,
) -> ApiResult<impl std::future::Future<Output = ApiResult<Session>> + Send + 'static> {
    let rec = node.container(key)?;
    let node = node.clone();
    let pending = if rec.state.running() {
        None
    } else {
        let (tx, rx) = oneshot::channel();
        node.runs
            .live()
            .entry(rec.id.clone())
            .or_default()
            .pending
            .push((wants, tx));
        Some(rx)
    };
    Ok(async move {
        match pending {
            None => Ok(node
                .engine
                .containers
                .attach(&rec.runtime_id, wants.stdin, wants.stdout, wants.stderr)
                .await?),
            Some(rx) => rx
                .await
                .map_err(|_| ApiError::Conflict(format!("container {} was removed before it started", rec.id))),
        }
    })
}

/// `docker rm`: a running container only with force; `volumes` removes its anonymous
/// volumes too.
pub async fn remove(node: &Arc<Node>, key: &str, force: bool, volumes: bool) -> ApiResult<()> {
    let rec = node.container(key)?;
    let id = rec.id.clone();
    let lock = node.runs.lock_of(&id);
    let _held = lock.lock().await;
    let rec = node.container(&id)?;
    if rec.state.running() || rec.state.status == "restarting" {
        if !force {
            let what = if rec.state.status == "paused" {
                "paused"
            } else {
                "running"
            };
            return Err(ApiError::Conflict(format!(
                "cannot remove container \"/{}\": container is {what}: stop the container before removing or force remove",
                rec.name
            )));
        }
        set_state(node, &id, |r| {
            r.stopped_by_user = true;
            if r.state.status == "restarting" {
                r.state.status = "exited".into();
            }
        })?;
        if rec.state.running() {
            let _ = node.engine.containers.resume(&rec.runtime_id);
            let _ = node.engine.containers.signal(&rec.runtime_id, Signal::SIGKILL);
            until(node, &id, |r| r.is_none_or(|r| !r.state.running())).await;
        }
    }
    if rec.state.status == "removing" {
        return Err(ApiError::Conflict(format!(
            "removal of container {id} is already in progress"
        )));
    }
    set_state(node, &id, |r| r.state.status = "removing".into())?;
    let _ = node.engine.containers.delete(&rec.runtime_id, true).await;
    node.runs.live().remove(&id);
    let dir = node.paths.container(&id);
    let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(dir)).await;
    let rec = {
        let mut st = node.state();
        st.containers.remove(&id)
    };
    if let Some(rec) = &rec {
        if volumes {
            super::super::volumes::remove_anonymous_of(node, rec);
        }
        node.emit("container", "destroy", &id, container_attributes(rec));
    }
    node.runs.locks.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    node.runs.bump();
    Ok(())
}

/// At start of the server: containers whose runs ended meanwhile are marked exited (and
/// restarted per policy); running ones get their supervisor back.
pub async fn adopt(node: &Arc<Node>) {
    let recs: Vec<ContainerRecord> = node.state().containers.values().cloned().collect();
    for rec in recs {
        if !rec.state.running() {
            continue;
        }
        let alive = node
            .engine
            .containers
            .info(&rec.runtime_id)
            .is_ok_and(|i| i.status != slipway_runtime::state::Status::Stopped);
        if alive {
            let node2 = node.clone();
            let id = rec.id.clone();
            let runtime_id = rec.runtime_id.clone();
            let mut live = Live::default();
            live.waiter = Some(tokio::spawn(async move {
                let exit = node2.engine.containers.wait(&runtime_id).await;
                exited(&node2, &id, exit.ok()).await;
            }));
            node.runs.live().insert(rec.id.clone(), live);
        } else {
            exited(node, &rec.id, None).await;
        }
    }
}

/// Stops every container of the node (its playground is going away).
pub async fn shutdown(node: &Arc<Node>) {
    let recs: Vec<ContainerRecord> = node.state().containers.values().cloned().collect();
    for rec in recs {
        node.runs.live().remove(&rec.id);
        let _ = node.engine.containers.delete(&rec.runtime_id, true).await;
    }
}
