//! What a node's engine keeps: its containers, volumes, networks and image names, each
//! saved as JSON under the node's engine directory (on the playground's storage, inside
//! its quota), so a restarted server finds them again.
//!
//! The records hold what the clients sent, in bollard's model types, so `inspect` gives
//! back exactly what compose wrote (labels, config hash) and recreation decisions work.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use bollard_stubs::models::{ContainerCreateBody, Health, HostConfig, MountPoint, PortBinding};
use serde::{Deserialize, Serialize};

/// A container's state as Docker reports it.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunState {
    /// created, running, paused, restarting, removing, exited or dead.
    pub status: String,
    pub pid: i64,
    pub exit_code: i64,
    pub oom_killed: bool,
    pub error: String,
    pub started_at: String,
    pub finished_at: String,
    #[serde(default)]
    pub health: Option<Health>,
}

impl RunState {
    pub fn running(&self) -> bool {
        matches!(self.status.as_str(), "running" | "paused")
    }
}

/// A container's place on one network.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Endpoint {
    pub network_id: String,
    pub endpoint_id: String,
    pub ip: Option<Ipv4Addr>,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
    /// Names it answers to on this network besides its own (compose service names).
    pub aliases: Vec<String>,
    /// The address asked for (`--ip`), kept across restarts.
    #[serde(default)]
    pub requested_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub links: Vec<String>,
    /// Its interface in the container while it runs (`eth0`, `eth1`...).
    #[serde(default)]
    pub ifname: String,
}

pub const UNIX_EPOCH_TIME: &str = "0001-01-01T00:00:00Z";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    /// Without Docker's leading slash.
    pub name: String,
    pub created: String,
    /// The image as the client named it, and its ID.
    pub image: String,
    pub image_id: String,
    /// What `create` sent, merged with the image's defaults (Env, Cmd, WorkingDir, ...).
    pub config: ContainerCreateBody,
    pub host_config: HostConfig,
    /// By network name.
    pub networks: BTreeMap<String, Endpoint>,
    /// Published ports as they were bound ("80/tcp" → host bindings), while running.
    #[serde(default)]
    pub ports: BTreeMap<String, Vec<PortBinding>>,
    pub mounts: Vec<MountPoint>,
    pub path: String,
    pub args: Vec<String>,
    pub state: RunState,
    pub restart_count: i64,
    /// The runtime's ID for the current run.
    pub runtime_id: String,
    /// Whether a user stopped it (restart policies other than `always` leave it stopped).
    #[serde(default)]
    pub stopped_by_user: bool,
}

impl ContainerRecord {
    pub fn labels(&self) -> HashMap<String, String> {
        self.config.labels.clone().unwrap_or_default()
    }
    pub fn tty(&self) -> bool {
        self.config.tty.unwrap_or(false)
    }
    pub fn short_id(&self) -> &str {
        &self.id[..12]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VolumeRecord {
    pub name: String,
    pub driver: String,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    pub created_at: String,
    /// Made for a container (`-v /data`, an image's VOLUME) rather than by name.
    pub anonymous: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    /// bridge, host or null.
    pub driver: String,
    pub subnet: Option<String>,
    pub gateway: Option<Ipv4Addr>,
    pub ip_range: Option<String>,
    pub internal: bool,
    pub attachable: bool,
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
    pub created: String,
    /// The bridge's interface in the node (`docker0`, `br-<id>`).
    pub bridge: Option<String>,
    /// Whether it is one of the three every engine has (bridge, host, none).
    pub predefined: bool,
}

impl NetworkRecord {
    /// Names resolve through the embedded DNS on user-defined networks only, as in Docker.
    pub fn has_dns(&self) -> bool {
        self.driver == "bridge" && !self.predefined
    }
}

/// Everything a node's engine has.
#[derive(Debug, Default)]
pub struct State {
    pub containers: BTreeMap<String, ContainerRecord>,
    pub volumes: BTreeMap<String, VolumeRecord>,
    pub networks: BTreeMap<String, NetworkRecord>,
    /// Image names this node knows ("nginx:latest") → image ID. The image store is shared
    /// by every playground (content addressed); names are each node's own.
    pub images: BTreeMap<String, String>,
}

/// Finds an object by full ID, unique ID prefix or name, as Docker does.
pub enum Lookup<'a, T> {
    Found(&'a T),
    Missing,
    Ambiguous,
}

impl State {
    pub fn container(&self, key: &str) -> Lookup<'_, ContainerRecord> {
        let key = key.trim_start_matches('/');
        if let Some(c) = self.containers.get(key) {
            return Lookup::Found(c);
        }
        if let Some(c) = self.containers.values().find(|c| c.name == key) {
            return Lookup::Found(c);
        }
        prefix_lookup(key, self.containers.values(), |c| &c.id)
    }

    pub fn network(&self, key: &str) -> Lookup<'_, NetworkRecord> {
        if let Some(n) = self.networks.get(key) {
            return Lookup::Found(n);
        }
        if let Some(n) = self.networks.values().find(|n| n.name == key) {
            return Lookup::Found(n);
        }
        prefix_lookup(key, self.networks.values(), |n| &n.id)
    }

    pub fn name_taken(&self, name: &str) -> Option<&ContainerRecord> {
        self.containers.values().find(|c| c.name == name)
    }
}

fn prefix_lookup<'a, T>(key: &str, items: impl Iterator<Item = &'a T>, id: impl Fn(&T) -> &str) -> Lookup<'a, T> {
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Lookup::Missing;
    }
    let mut found = None;
    for item in items {
        if id(item).starts_with(key) {
            if found.is_some() {
                return Lookup::Ambiguous;
            }
            found = Some(item);
        }
    }
    found.map(Lookup::Found).unwrap_or(Lookup::Missing)
}

/// Where a node's engine keeps things.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
}

impl Paths {
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }
    pub fn container(&self, id: &str) -> PathBuf {
        self.root.join("containers").join(id)
    }
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }
    pub fn volume(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }
    /// A volume's data, what containers mount.
    pub fn volume_data(&self, name: &str) -> PathBuf {
        self.volume(name).join("_data")
    }
    pub fn networks(&self) -> PathBuf {
        self.root.join("networks")
    }
    pub fn images(&self) -> PathBuf {
        self.root.join("images.json")
    }
}

/// Writes JSON through a temporary file and a rename, so a crash leaves the old or the new.
pub fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(value)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))
}

impl State {
    /// Reads what a node's engine saved; unreadable records are logged and skipped.
    pub fn load(paths: &Paths) -> State {
        let mut state = State::default();
        for entry in std::fs::read_dir(paths.containers()).into_iter().flatten().flatten() {
            match read_json::<ContainerRecord>(&entry.path().join("container.json")) {
                Ok(c) => {
                    state.containers.insert(c.id.clone(), c);
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = format!("{e:#}"), "skipping a container record")
                }
            }
        }
        for entry in std::fs::read_dir(paths.volumes()).into_iter().flatten().flatten() {
            match read_json::<VolumeRecord>(&entry.path().join("volume.json")) {
                Ok(v) => {
                    state.volumes.insert(v.name.clone(), v);
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = format!("{e:#}"), "skipping a volume record")
                }
            }
        }
        for entry in std::fs::read_dir(paths.networks()).into_iter().flatten().flatten() {
            match read_json::<NetworkRecord>(&entry.path()) {
                Ok(n) => {
                    state.networks.insert(n.id.clone(), n);
                }
                Err(e) => {
                    tracing::warn!(path = %entry.path().display(), error = format!("{e:#}"), "skipping a network record")
                }
            }
        }
        if let Ok(images) = read_json(&paths.images()) {
            state.images = images;
        }
        state
    }

    pub fn save_container(paths: &Paths, c: &ContainerRecord) -> Result<()> {
        let dir = paths.container(&c.id);
        std::fs::create_dir_all(&dir)?;
        write_json(&dir.join("container.json"), c)
    }

    pub fn save_volume(paths: &Paths, v: &VolumeRecord) -> Result<()> {
        let dir = paths.volume(&v.name);
        std::fs::create_dir_all(dir.join("_data"))?;
        write_json(&dir.join("volume.json"), v)
    }

    pub fn save_network(paths: &Paths, n: &NetworkRecord) -> Result<()> {
        std::fs::create_dir_all(paths.networks())?;
        write_json(&paths.networks().join(format!("{}.json", n.id)), n)
    }

    pub fn save_images(&self, paths: &Paths) -> Result<()> {
        write_json(&paths.images(), &self.images)
    }
}

pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))
}

/// A new 64-hex-digit object ID.
pub fn new_id() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// Docker's time format: RFC 3339 in UTC with nanoseconds.
pub fn now() -> String {
    slipway_runtime::image::config::now_rfc3339()
}
