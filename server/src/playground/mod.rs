//! Playgrounds: sets of 1 to 5 nodes (containers of `slipway/node`) on a private network,
//! under one cgroup with the playground's limits, each node with its own Engine API
//! socket and browser terminals. No HTTP here: `web::playground` is the face.

pub mod files;
pub mod network;
pub mod ports;
pub mod storage;
pub mod terminal;

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use serde::{Deserialize, Serialize};
use slipway_runtime::cgroups::{Cgroup, Hierarchy};
use slipway_runtime::image::store::Store;
use slipway_runtime::monitor::OverlayConfig;
use slipway_runtime::monitor::client::{Containers, CreateOptions, Output};
use time::OffsetDateTime;

use crate::engine::{self, Engine, Node};
use terminal::Terminal;

/// The image every node runs.
pub const NODE_IMAGE: &str = "slipway/node:latest";

/// Limits, all settable in `slipway.toml`'s `[playgrounds]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Nodes per playground.
    pub max_nodes: usize,
    /// Minutes a playground lives, and the most it can be extended to.
    pub lifetime_minutes: u64,
    pub max_lifetime_minutes: u64,
    /// Minutes without terminal input before a playground is removed.
    pub idle_minutes: u64,
    /// Per playground: memory (MiB), processes, CPU shares (1024 = one fair share).
    pub memory_mib: u64,
    pub pids: i64,
    pub cpu_shares: u64,
    /// Writable storage of the whole playground (MiB): filling it gives ENOSPC.
    pub disk_mib: u64,
    /// Playgrounds per learner, and on the whole server.
    pub per_learner: usize,
    pub total: usize,
    /// The largest file uploaded to or downloaded from a node (MiB).
    pub upload_mib: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_nodes: 5,
            lifetime_minutes: 240,
            max_lifetime_minutes: 480,
            idle_minutes: 60,
            memory_mib: 2048,
            pids: 2048,
            cpu_shares: 1024,
            disk_mib: 5120,
            per_learner: 1,
            total: 50,
            upload_mib: 100,
        }
    }
}

/// Why a playground was not made: the web face turns each into its status code.
#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    #[error("a playground has 1 to {max} nodes")]
    BadNodeCount { max: usize },
    #[error("you already have {0} playground(s) open: close one first")]
    LearnerLimit(usize),
    #[error("Slipway is at capacity ({total} playgrounds); one frees up by {retry_at} UTC at the latest")]
    AtCapacity { total: usize, retry_at: String },
    #[error("the node image is not ready yet (the image catalog is still building); try again in a few minutes")]
    NodeImageMissing,
    #[error("no such playground")]
    NotFound,
    #[error("no such node")]
    NoSuchNode,
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub ip: String,
    /// The runtime's container ID.
    pub container: String,
    /// The host path of its Engine API socket.
    pub docker_host: String,
}

/// What is kept on disk for a playground, and what the API shows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub owner: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub nodes: Vec<NodeInfo>,
    /// Whether anyone with a port's link may open it (a workshop showing its work).
    #[serde(default)]
    pub shared: bool,
}

pub struct Playground {
    record: Mutex<Record>,
    netns: String,
    dir: PathBuf,
    last_input: Mutex<std::time::Instant>,
    /// CPU time the playground's cgroup had used at the reaper's last look.
    cpu_seen: Mutex<u64>,
    terminals: tokio::sync::Mutex<HashMap<(String, u32), Arc<Terminal>>>,
    endpoints: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Each node's engine (its containers, volumes, networks and events), by node name.
    engines: Mutex<HashMap<String, Arc<Node>>>,
    /// Exercises set up here ("module/lesson/exercise") and when each started (Unix ns);
    /// held while a setup runs, so two pages never set one up twice.
    pub exercises: tokio::sync::Mutex<HashMap<String, i128>>,
}

impl Playground {
    /// A node's engine: what the grader reads and watches.
    pub fn engine(&self, node: &str) -> Option<Arc<Node>> {
        self.engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned()
    }

    pub fn record(&self) -> Record {
        self.record.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn touch(&self) {
        *self.last_input.lock().unwrap_or_else(|p| p.into_inner()) = std::time::Instant::now();
    }

    fn node(&self, name: &str) -> Option<NodeInfo> {
        self.record().nodes.into_iter().find(|n| n.name == name)
    }

    /// Keeps the exercises set up here across a restart of the server, so their setup is
    /// not done twice (a second `docker network create` would fail).
    pub fn save_exercises(&self, done: &HashMap<String, i128>) {
        let path = self.dir.join("exercises.json");
        let text: HashMap<&String, String> = done.iter().map(|(k, v)| (k, v.to_string())).collect();
        if let Err(e) = crate::engine::state::write_json(&path, &text) {
            tracing::warn!(error = format!("{e:#}"), "saving the playground's exercises");
        }
    }

    fn saved_exercises(dir: &Path) -> HashMap<String, i128> {
        let text: HashMap<String, String> =
            crate::engine::state::read_json(&dir.join("exercises.json")).unwrap_or_default();
        text.into_iter()
            .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
            .collect()
    }
}

pub struct Playgrounds {
    containers: Containers,
    engine: Arc<Engine>,
    images: Arc<Store>,
    dir: PathBuf,
    cgroup_root: String,
    hierarchy: Hierarchy,
    pub limits: Limits,
    live: Mutex<HashMap<String, Arc<Playground>>>,
    /// Serialises creations, so caps hold under a burst of requests.
    creating: tokio::sync::Mutex<()>,
}

fn random_id() -> String {
    hex::encode(rand::random::<[u8; 6]>())
}

impl Playgrounds {
    pub fn new(
        containers: Containers,
        images: Arc<Store>,
        data_dir: &Path,
        cgroup_root: String,
        limits: Limits,
    ) -> Result<Arc<Playgrounds>> {
        let dir = data_dir.join("playgrounds");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let hierarchy = Hierarchy::detect().map_err(|e| anyhow!("{e}"))?;
        let engine = Arc::new(Engine {
            containers: containers.clone(),
            images: images.clone(),
            cgroup_root: cgroup_root.clone(),
            memory_limit: limits.memory_mib * 1024 * 1024,
            cgroup_v2: hierarchy.is_v2(),
        });
        Ok(Arc::new(Playgrounds {
            engine,
            containers,
            images,
            dir,
            cgroup_root,
            hierarchy,
            limits,
            live: Mutex::new(HashMap::new()),
            creating: tokio::sync::Mutex::new(()),
        }))
    }

    fn live(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Playground>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, id: &str) -> Option<Arc<Playground>> {
        self.live().get(id).cloned()
    }

    pub fn list(&self) -> Vec<Record> {
        let mut all: Vec<Record> = self.live().values().map(|p| p.record()).collect();
        all.sort_by_key(|r| r.created_at);
        all
    }

    pub fn of_owner(&self, owner: &str) -> Vec<Record> {
        self.list().into_iter().filter(|r| r.owner == owner).collect()
    }

    fn netns_name(&self, id: &str) -> String {
        format!("{}-pg-{id}", self.cgroup_root.replace('/', "-"))
    }

    fn cgroup(&self, id: &str) -> Result<Cgroup> {
        Cgroup::new(&self.hierarchy, &format!("{}/pg-{id}", self.cgroup_root)).map_err(|e| anyhow!("{e}"))
    }

    /// Makes a playground of `nodes` nodes for `owner` (a learner's ID, or `admin`).
    pub async fn create(self: &Arc<Self>, owner: &str, nodes: usize, capped: bool) -> Result<Record, PlaygroundError> {
        if nodes == 0 || nodes > self.limits.max_nodes {
            return Err(PlaygroundError::BadNodeCount {
                max: self.limits.max_nodes,
            });
        }
        let _serial = self.creating.lock().await;
        if capped {
            let mine = self.of_owner(owner).len();
            if mine >= self.limits.per_learner {
                return Err(PlaygroundError::LearnerLimit(mine));
            }
        }
        let all = self.list();
        if all.len() >= self.limits.total {
            let first = all
                .iter()
                .map(|r| r.expires_at)
                .min()
                .unwrap_or_else(OffsetDateTime::now_utc);
            return Err(PlaygroundError::AtCapacity {
                total: self.limits.total,
                retry_at: format!("{:02}:{:02}", first.hour(), first.minute()),
            });
        }
        let image = self
            .images
            .resolve(NODE_IMAGE)
            .map_err(|_| PlaygroundError::NodeImageMissing)?;
        let id = random_id();
        let started = std::time::Instant::now();
        match self.build(&id, owner, nodes, &image).await {
            Ok(p) => {
                let record = p.record();
                tracing::info!(playground = %id, nodes, ms = started.elapsed().as_millis() as u64, "playground created");
                Ok(record)
            }
            Err(e) => {
                tracing::error!(playground = %id, error = format!("{e:#}"), "playground creation failed");
                self.teardown(&id, nodes).await;
                Err(PlaygroundError::Internal(e))
            }
        }
    }

    async fn build(
        &self,
        id: &str,
        owner: &str,
        nodes: usize,
        image: &slipway_runtime::image::store::Image,
    ) -> Result<Arc<Playground>> {
        let dir = self.dir.join(id);
        storage::create(&self.image_path(id), &dir, self.limits.disk_mib)?;
        // One cgroup for everything the playground runs, with its limits.
        let cgroup = self.cgroup(id)?;
        cgroup.create().map_err(|e| anyhow!("{e}"))?;
        let resources: oci_spec::runtime::LinuxResources = serde_json::from_value(serde_json::json!({
            "memory": { "limit": self.limits.memory_mib as i64 * 1024 * 1024 },
            "pids": { "limit": self.limits.pids },
            "cpu": { "shares": self.limits.cpu_shares },
        }))?;
        cgroup.apply(&resources).map_err(|e| anyhow!("{e}"))?;
        let netns = self.netns_name(id);
        network::create(&netns)?;

        let mut hosts = String::from("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n");
        for n in 1..=nodes {
            hosts.push_str(&format!("{}\tnode{n}\n", network::node_ip(n)));
        }
        let now = OffsetDateTime::now_utc();
        let playground = Arc::new(Playground {
            record: Mutex::new(Record {
                id: id.to_string(),
                owner: owner.to_string(),
                created_at: now,
                expires_at: now + Duration::from_secs(self.limits.lifetime_minutes * 60),
                nodes: Vec::new(),
                shared: false,
            }),
            netns: netns.clone(),
            dir: dir.clone(),
            last_input: Mutex::new(std::time::Instant::now()),
            cpu_seen: Mutex::new(0),
            terminals: tokio::sync::Mutex::new(HashMap::new()),
            endpoints: Mutex::new(Vec::new()),
            engines: Mutex::new(HashMap::new()),
            exercises: tokio::sync::Mutex::new(HashMap::new()),
        });
        self.live().insert(id.to_string(), playground.clone());
        for n in 1..=nodes {
            let node = self
                .start_node(id, n, &hosts, image, &netns, &playground)
                .await
                .with_context(|| format!("starting node{n}"))?;
            playground
                .record
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .nodes
                .push(node);
        }
        self.save(&playground)?;
        Ok(playground)
    }

    async fn start_node(
        &self,
        id: &str,
        n: usize,
        hosts: &str,
        image: &slipway_runtime::image::store::Image,
        netns: &str,
        playground: &Playground,
    ) -> Result<NodeInfo> {
        let name = format!("node{n}");
        let dir = self.dir.join(id).join(&name);
        let (upper, work, merged, sock) = (
            dir.join("upper"),
            dir.join("work"),
            dir.join("merged"),
            dir.join("sock"),
        );
        for d in [&upper, &work, &merged, &sock] {
            std::fs::create_dir_all(d)?;
        }
        // The Engine API socket lives in a directory bound into the node at /run/slipway,
        // and /var/run/docker.sock points there: a restarted server binds a new socket in
        // the same directory and the node sees it.
        std::fs::create_dir_all(upper.join("run"))?;
        std::os::unix::fs::symlink("/run/slipway/docker.sock", upper.join("run/docker.sock"))?;
        std::fs::write(dir.join("hosts"), hosts)?;
        std::fs::write(dir.join("hostname"), format!("{name}\n"))?;
        let socket = sock.join("docker.sock");
        let container = format!("pg-{id}-{name}");
        self.serve_engine(playground, id, &name, &container)?;

        let config = &image.config.config;
        let mut args: Vec<String> = config.entrypoint.clone().unwrap_or_default();
        args.extend(config.cmd.clone().unwrap_or_default());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut v = serde_json::to_value(slipway_runtime::spec::docker_default(&argv, false))?;
        v["root"]["path"] = serde_json::json!(merged);
        v["hostname"] = serde_json::json!(name);
        let mut env = config.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.push(slipway_runtime::spec::DEFAULT_PATH.into());
        }
        // The engine builds with the classic builder; without this, buildx (in the node for
        // `docker buildx`) would have compose and `docker build` start a BuildKit container.
        env.push("DOCKER_BUILDKIT=0".into());
        v["process"]["env"] = serde_json::json!(env);
        v["process"]["cwd"] = serde_json::json!(if config.working_dir.is_empty() {
            "/"
        } else {
            &config.working_dir
        });
        v["linux"]["cgroupsPath"] = serde_json::json!(format!("{}/pg-{id}/{name}", self.cgroup_root));
        let mounts = v["mounts"].as_array_mut().context("mounts")?;
        for (source, dest) in [
            (sock.clone(), "/run/slipway"),
            (dir.join("hosts"), "/etc/hosts"),
            (dir.join("hostname"), "/etc/hostname"),
        ] {
            mounts.push(serde_json::json!({ "destination": dest, "type": "bind", "source": source, "options": ["rbind", "rprivate"] }));
        }
        // Shells and commands exec'd later run as the node's own process does.
        std::fs::write(dir.join("process.json"), serde_json::to_vec(&v["process"])?)?;
        let spec: oci_spec::runtime::Spec = serde_json::from_value(v)?;
        let info = self
            .containers
            .create(
                &container,
                CreateOptions {
                    spec,
                    bundle: dir.clone(),
                    overlay: Some(OverlayConfig {
                        lower: self.images.lower_dirs(image),
                        upper,
                        work,
                    }),
                    open_stdin: false,
                    init: false,
                    log_path: dir.join("node.log"),
                    log_max_size: Some(1 << 20),
                    log_max_files: Some(1),
                },
            )
            .await?;
        network::attach(netns, n, info.pid)?;
        self.containers.start(&container).await?;
        Ok(NodeInfo {
            name,
            ip: network::node_ip(n).to_string(),
            container,
            docker_host: format!("unix://{}", socket.display()),
        })
    }

    /// Opens a node's engine and serves it on the node's socket.
    fn serve_engine(&self, playground: &Playground, id: &str, name: &str, container: &str) -> Result<()> {
        let dir = self.dir.join(id).join(name);
        let node = Node::open(self.engine.clone(), id, name, container, &dir.join("engine"))?;
        let task = engine::serve(&dir.join("sock/docker.sock"), node.clone())?;
        let adopting = node.clone();
        tokio::spawn(async move { engine::containers::run::adopt(&adopting).await });
        playground
            .endpoints
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(task);
        playground
            .engines
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), node);
        Ok(())
    }

    fn save(&self, p: &Playground) -> Result<()> {
        let path = p.dir.join("playground.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&p.record())?)
            .with_context(|| format!("writing {}", path.display()))
    }

    /// Removes what a playground made, whatever state it is in.
    async fn teardown(&self, id: &str, nodes: usize) {
        let playground = self.live().remove(id);
        if let Some(p) = &playground {
            for t in p.endpoints.lock().unwrap_or_else(|p| p.into_inner()).drain(..) {
                t.abort();
            }
            // The learners' containers first: they live in the nodes' networks and cgroups.
            let engines: Vec<Arc<Node>> = p
                .engines
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .values()
                .cloned()
                .collect();
            for node in engines {
                engine::containers::run::shutdown(&node).await;
            }
        }
        // Learners' containers a crash left without their engine, then the nodes.
        let prefix = format!("pgc-{id}-");
        for info in self.containers.list() {
            if info.id.starts_with(&prefix) {
                let _ = self.containers.delete(&info.id, true).await;
            }
        }
        for n in 1..=nodes.max(self.limits.max_nodes) {
            let _ = self.containers.delete(&format!("pg-{id}-node{n}"), true).await;
        }
        if let Err(e) = network::remove(&self.netns_name(id)) {
            tracing::warn!(playground = %id, error = format!("{e:#}"), "removing the network");
        }
        if let Ok(cgroup) = self.cgroup(id)
            && let Err(e) = cgroup.destroy()
        {
            tracing::warn!(playground = %id, error = %e, "removing the cgroup");
        }
        let dir = self.dir.join(id);
        storage::remove(&self.image_path(id), &dir);
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn image_path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.img"))
    }

    pub async fn remove(&self, id: &str) -> Result<(), PlaygroundError> {
        let p = self.get(id).ok_or(PlaygroundError::NotFound)?;
        let nodes = p.record().nodes.len();
        self.teardown(id, nodes).await;
        tracing::info!(playground = %id, "playground removed");
        Ok(())
    }

    /// Pushes the expiry back by the playground's lifetime, up to the maximum.
    /// Opens the playground's port links to anyone who has them, or closes them again.
    pub fn share(&self, id: &str, shared: bool) -> Result<Record, PlaygroundError> {
        let p = self.get(id).ok_or(PlaygroundError::NotFound)?;
        p.record.lock().unwrap_or_else(|p| p.into_inner()).shared = shared;
        self.save(&p)?;
        tracing::info!(playground = %id, shared, "port links sharing changed");
        Ok(p.record())
    }

    pub fn extend(&self, id: &str) -> Result<Record, PlaygroundError> {
        let p = self.get(id).ok_or(PlaygroundError::NotFound)?;
        {
            let mut r = p.record.lock().unwrap_or_else(|p| p.into_inner());
            let latest = r.created_at + Duration::from_secs(self.limits.max_lifetime_minutes * 60);
            let wanted = OffsetDateTime::now_utc() + Duration::from_secs(self.limits.lifetime_minutes * 60);
            r.expires_at = wanted.min(latest).max(r.expires_at);
        }
        self.save(&p)?;
        Ok(p.record())
    }

    /// The process a shell or a command runs as in a node: the node's own, with new args.
    fn process(&self, id: &str, node: &NodeInfo, args: Vec<String>, tty: bool) -> Result<oci_spec::runtime::Process> {
        let path = self.dir.join(id).join(&node.name).join("process.json");
        let mut process: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)?;
        process["args"] = serde_json::json!(args);
        process["terminal"] = serde_json::json!(tty);
        process["cwd"] = serde_json::json!("/root");
        if let Some(env) = process["env"].as_array_mut() {
            env.retain(|e| !e.as_str().is_some_and(|s| s.starts_with("TERM=")));
            env.push(serde_json::json!(if tty { "TERM=xterm-256color" } else { "TERM=dumb" }));
        }
        Ok(serde_json::from_value(process)?)
    }

    /// Terminal `n` of a node, started on first use.
    pub async fn terminal(&self, id: &str, node: &str, n: u32) -> Result<Arc<Terminal>, PlaygroundError> {
        let p = self.get(id).ok_or(PlaygroundError::NotFound)?;
        let info = p.node(node).ok_or(PlaygroundError::NoSuchNode)?;
        let mut terminals = p.terminals.lock().await;
        let key = (node.to_string(), n);
        if let Some(t) = terminals.get(&key)
            && !t.exited()
        {
            return Ok(t.clone());
        }
        let process = self.process(id, &info, vec!["/bin/bash".into(), "-l".into()], true)?;
        let t = Terminal::open(&self.containers, &info.container, process).await?;
        terminals.insert(key, t.clone());
        Ok(t)
    }

    /// Runs a command in a node to its end: (exit code, stdout, stderr).
    pub async fn exec(
        &self,
        id: &str,
        node: &str,
        args: Vec<String>,
    ) -> Result<(i32, Vec<u8>, Vec<u8>), PlaygroundError> {
        let p = self.get(id).ok_or(PlaygroundError::NotFound)?;
        let info = p.node(node).ok_or(PlaygroundError::NoSuchNode)?;
        let process = self.process(id, &info, args, false)?;
        let exec_id = format!("exec-{}", random_id());
        let mut session = self
            .containers
            .exec(&info.container, &exec_id, process)
            .await
            .map_err(|e| anyhow!("{e}"))?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match session.output.next().await.map_err(|e| anyhow!("{e}"))? {
                Some(Output::Stdout(d)) => out.extend(d),
                Some(Output::Stderr(d)) => err.extend(d),
                Some(Output::Exit(e)) => return Ok((e.code, out, err)),
                Some(Output::Error(m)) => return Err(PlaygroundError::Internal(anyhow!(m))),
                None => return Err(PlaygroundError::Internal(anyhow!("the node's monitor went away"))),
            }
        }
    }

    /// Removes expired and idle playgrounds, every 15 seconds.
    pub fn reap_in_background(self: &Arc<Self>) {
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(15)).await;
                let Some(me) = me.upgrade() else { return };
                let now = OffsetDateTime::now_utc();
                let idle = Duration::from_secs(me.limits.idle_minutes * 60);
                // Work in the playground (a build, a server answering) counts as activity,
                // as typing does: more than 1% of a CPU since the last look.
                for p in me.live().values() {
                    let id = p.record().id;
                    let used = me
                        .cgroup(&id)
                        .ok()
                        .and_then(|c| c.stats().ok())
                        .and_then(|s| s.cpu.usage_ns)
                        .unwrap_or(0);
                    let mut last = p.cpu_seen.lock().unwrap_or_else(|p| p.into_inner());
                    if used.saturating_sub(*last) > 150_000_000 {
                        p.touch();
                    }
                    *last = used;
                }
                let due: Vec<(String, usize, &'static str)> = me
                    .live()
                    .values()
                    .filter_map(|p| {
                        let r = p.record();
                        if r.expires_at <= now {
                            Some((r.id, r.nodes.len(), "expired"))
                        } else if p.last_input.lock().unwrap_or_else(|p| p.into_inner()).elapsed() > idle {
                            Some((r.id, r.nodes.len(), "idle"))
                        } else {
                            None
                        }
                    })
                    .collect();
                for (id, nodes, why) in due {
                    tracing::info!(playground = %id, why, "removing playground");
                    me.teardown(&id, nodes).await;
                }
            }
        });
    }

    /// At start: playgrounds whose nodes still run are served again; the rest are removed.
    pub async fn adopt(self: &Arc<Self>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            if !entry.path().is_dir() {
                // A storage image whose playground directory is gone.
                if let Some(stem) = id.strip_suffix(".img")
                    && !self.dir.join(stem).exists()
                {
                    let _ = std::fs::remove_file(entry.path());
                }
                continue;
            }
            let record: Option<Record> = std::fs::read(entry.path().join("playground.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok());
            let alive = record.as_ref().is_some_and(|r| {
                !r.nodes.is_empty()
                    && r.expires_at > OffsetDateTime::now_utc()
                    && r.nodes.iter().all(|n| {
                        self.containers
                            .info(&n.container)
                            .is_ok_and(|i| i.status == slipway_runtime::state::Status::Running)
                    })
            });
            match record {
                Some(record) if alive => {
                    let p = Arc::new(Playground {
                        netns: self.netns_name(&id),
                        dir: entry.path(),
                        last_input: Mutex::new(std::time::Instant::now()),
                        cpu_seen: Mutex::new(0),
                        terminals: tokio::sync::Mutex::new(HashMap::new()),
                        endpoints: Mutex::new(Vec::new()),
                        engines: Mutex::new(HashMap::new()),
                        exercises: tokio::sync::Mutex::new(Playground::saved_exercises(&entry.path())),
                        record: Mutex::new(record.clone()),
                    });
                    for node in &record.nodes {
                        if let Err(e) = self.serve_engine(&p, &id, &node.name, &node.container) {
                            tracing::warn!(playground = %id, node = %node.name, error = format!("{e:#}"), "re-serving the engine socket")
                        }
                    }
                    self.live().insert(id.clone(), p);
                    tracing::info!(playground = %id, "playground adopted after restart");
                }
                _ => {
                    let nodes = record.map(|r| r.nodes.len()).unwrap_or(0);
                    self.teardown(&id, nodes).await;
                }
            }
        }
    }

    /// The host PID of a node's init, if the node runs.
    pub fn node_pid(&self, id: &str, node: &str) -> Result<i32, PlaygroundError> {
        let p = self.get(id).ok_or(PlaygroundError::NotFound)?;
        let info = p.node(node).ok_or(PlaygroundError::NoSuchNode)?;
        let state = self.containers.info(&info.container).map_err(|e| anyhow!("{e}"))?;
        if state.pid <= 0 || state.status == slipway_runtime::state::Status::Stopped {
            return Err(anyhow!("{node} of playground {id} is not running").into());
        }
        Ok(state.pid)
    }

    /// A descriptor of `/proc/<pid>` for a node's init, for `ports` and `files`. The node is
    /// looked up again once it is open: a descriptor of /proc/<pid> stays tied to the process
    /// it was opened for, so a PID freed and reused in between cannot lead into another
    /// process's network or files.
    pub fn node_proc(&self, id: &str, node: &str) -> Result<OwnedFd, PlaygroundError> {
        let pid = self.node_pid(id, node)?;
        let flags = OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let path = format!("/proc/{pid}");
        let fd = nix::fcntl::open(path.as_str(), flags, Mode::empty()).map_err(|e| anyhow!("opening {path}: {e}"))?;
        if self.node_pid(id, node)? != pid {
            return Err(anyhow!("{node} of playground {id} restarted meanwhile").into());
        }
        Ok(fd)
    }

    /// The playground's network namespace name, for tests and diagnostics.
    pub fn network_of(&self, id: &str) -> Option<String> {
        self.get(id).map(|p| p.netns.clone())
    }
}
