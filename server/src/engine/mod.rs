//! The Docker Engine API, one endpoint per node: a Unix socket on the host, bind-mounted
//! into the node, so the socket a request arrives on says whose objects it may touch.
//!
//! Layout: [`Node`] is one node's engine (its objects in [`state`], its [`events`]);
//! `api/` holds the HTTP handlers, thin, one file per kind of object; the modules beside
//! this one carry the work out with the runtime (no HTTP in them).

pub mod api;
pub mod archive;
pub mod builds;
pub mod containers;
pub mod error;
pub mod events;
pub mod exec;
pub mod filters;
pub mod net;
pub mod networks;
pub mod state;
pub mod stream;
pub mod volumes;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use slipway_runtime::image::store::Store;
use slipway_runtime::monitor::client::Containers;

use error::{ApiError, ApiResult};
use state::{Lookup, Paths, State};

/// The API version we speak: the one docker-cli 26 asks for; older clients name theirs.
pub const API_VERSION: &str = "1.45";
pub const MIN_API_VERSION: &str = "1.24";
/// The Docker release whose behaviour we follow.
pub const ENGINE_VERSION: &str = "26.1.5";

/// What every node's engine shares: the runtime, the image store, the cgroup root.
pub struct Engine {
    pub containers: Containers,
    pub images: Arc<Store>,
    /// Learners' containers go under `<cgroup_root>/pg-<playground>/`, inside the
    /// playground's limits.
    pub cgroup_root: String,
    /// The playground's memory limit (bytes), the most a container may ask for.
    pub memory_limit: u64,
    /// Whether cgroups are v2 (unified), for `docker info`.
    pub cgroup_v2: bool,
}

/// One node's engine.
pub struct Node {
    pub engine: Arc<Engine>,
    pub playground: String,
    /// `node1`, ...
    pub name: String,
    /// The runtime's ID of the node's own container.
    pub node_container: String,
    pub paths: Paths,
    state: Mutex<State>,
    pub events: events::Events,
    pub runs: containers::run::Runs,
    pub execs: exec::Execs,
}

impl Node {
    /// Opens a node's engine over `dir` (made if missing), with what it saved before.
    pub fn open(
        engine: Arc<Engine>,
        playground: &str,
        name: &str,
        node_container: &str,
        dir: &Path,
    ) -> anyhow::Result<Arc<Node>> {
        let paths = Paths {
            root: dir.to_path_buf(),
        };
        for d in [paths.containers(), paths.volumes(), paths.networks()] {
            std::fs::create_dir_all(&d)?;
        }
        let state = State::load(&paths);
        let node = Arc::new(Node {
            engine,
            playground: playground.to_string(),
            name: name.to_string(),
            node_container: node_container.to_string(),
            paths,
            state: Mutex::new(state),
            events: events::Events::default(),
            runs: containers::run::Runs::default(),
            execs: exec::Execs::default(),
        });
        networks::ensure_predefined(&node)?;
        Ok(node)
    }

    /// The node's objects. Never held across an await.
    pub fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The host PID of the node's init (the "host" of this Docker).
    pub fn node_pid(&self) -> ApiResult<i32> {
        let info = self.engine.containers.info(&self.node_container)?;
        if info.pid <= 0 || info.status == slipway_runtime::state::Status::Stopped {
            return Err(ApiError::internal(format!("{} is not running", self.name)));
        }
        Ok(info.pid)
    }

    /// A container's record by ID, ID prefix or name.
    pub fn container(&self, key: &str) -> ApiResult<state::ContainerRecord> {
        match self.state().container(key) {
            Lookup::Found(c) => Ok(c.clone()),
            Lookup::Missing => Err(ApiError::no_such_container(key)),
            Lookup::Ambiguous => Err(ApiError::bad(format!("multiple IDs found with provided prefix: {key}"))),
        }
    }

    /// Where a container's writable layer lives (upper and work dirs of its overlay).
    pub fn container_layer(&self, id: &str) -> (PathBuf, PathBuf) {
        let dir = self.paths.container(id);
        (dir.join("upper"), dir.join("work"))
    }

    /// Resolves an image name or ID as this node sees it: its own names, or an ID (or ID
    /// prefix) of an image one of its names or containers points at.
    pub fn resolve_image(&self, name: &str) -> ApiResult<slipway_runtime::image::store::Image> {
        let id = self.image_id(name).ok_or_else(|| ApiError::no_such_image(name))?;
        Ok(self.engine.images.image(&id)?)
    }

    /// The image ID `name` means on this node, if it means one.
    pub fn image_id(&self, name: &str) -> Option<String> {
        let state = self.state();
        if let Ok(r) = slipway_runtime::image::reference::Reference::parse(name) {
            let r = r.with_default_tag();
            if let Some(id) = state.images.get(&r.familiar()) {
                return Some(id.clone());
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if hex.len() < 4 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let known = state
            .images
            .values()
            .cloned()
            .chain(state.containers.values().map(|c| c.image_id.clone()));
        let mut found: Option<String> = None;
        for id in known {
            if id.trim_start_matches("sha256:").starts_with(hex) {
                if found.as_ref().is_some_and(|f| f != &id) {
                    return None;
                }
                found = Some(id);
            }
        }
        found
    }

    pub fn emit(
        &self,
        typ: &'static str,
        action: &str,
        id: &str,
        attributes: impl IntoIterator<Item = (String, String)>,
    ) {
        self.events
            .emit(events::Event::new(typ, action, id, attributes.into_iter().collect()));
    }
}

/// Serves `node`'s endpoint on a Unix socket at `path` until the task is aborted.
pub fn serve(path: &Path, node: Arc<Node>) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener =
        slipway_runtime::linux::socket::SocketPath::new(path).and_then(|p| tokio::net::UnixListener::bind(p.path()))?;
    // Only root reaches the host side; inside the node, the learner is root.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let app = api::router(node);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "engine endpoint stopped");
        }
    }))
}
