//! `docker build` through the classic builder (`POST /build`, the context as a tar body)
//! and `docker builder prune` (`POST /build/prune`).
//!
//! A build in a node sees that node's names only: FROM resolves through the node's table,
//! then the catalog (pulling the name into the node, as Docker pulls a missing base); its
//! tags go into the node's table. RUN steps run in the node's network namespace and under
//! the playground's cgroup. The build cache is the node's own: its keys carry the node's
//! identity, and the node keeps the list of its entries so `docker builder prune` removes
//! exactly those.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Extension, Query, RawQuery, Request};
use axum::response::Response;
use axum::routing::post;
use axum::{Json, Router};
use bollard_stubs::models::BuildPruneResponse;
use serde_json::{Value, json};
use slipway_runtime::build::builder::{self, BaseImages, BoxFuture, BuildError, BuildRequest, Progress};
use slipway_runtime::build::runner::{ContainerRunner, RunNetwork};
use slipway_runtime::image::reference::Reference;
use slipway_runtime::image::store::{ImageError, Store};

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::super::filters::Filters;
use super::super::stream;
use super::flag;
use super::images::{self, BodyReader, query_pairs};

pub fn routes() -> Router {
    Router::new()
        .route("/build", post(build))
        .route("/build/prune", post(prune))
}

/// The node's build cache entries: full cache keys → image IDs. Writes to the file are
/// serialised by this lock (builds of one node may run side by side).
static CACHE_FILE: Mutex<()> = Mutex::new(());

fn cache_path(node: &Node) -> PathBuf {
    node.paths.root.join("build-cache.json")
}

/// One of the node's cache entries: the step's image and when it was made.
#[derive(serde::Serialize, serde::Deserialize, Clone)]
struct CacheEntry {
    id: String,
    /// Unix seconds.
    at: i64,
}

fn read_cache(node: &Node) -> BTreeMap<String, CacheEntry> {
    std::fs::read(cache_path(node))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// How a build in a node sees names and the cache.
struct NodeImages {
    node: Arc<Node>,
    /// `--pull`: every FROM comes from the catalog afresh, as Docker pulls it.
    always_pull: bool,
    /// Cache lookups and hits, for the node's build record.
    lookups: AtomicUsize,
    hits: AtomicUsize,
}

impl NodeImages {
    /// Cache keys are the node's own: the same step in another node is not a hit.
    fn key(&self, key: &str) -> String {
        format!("node {}/{}\n{key}", self.node.playground, self.node.name)
    }
}

impl BaseImages for NodeImages {
    fn fetch<'a>(&'a self, reference: &'a Reference, progress: Progress) -> BoxFuture<'a, Result<String, BuildError>> {
        Box::pin(async move {
            let reference = reference.clone().with_default_tag();
            let pull = images::plan_pull(&self.node, &reference).map_err(|e| BuildError::Message(e.to_string()))?;
            for m in images::pull_messages(&pull) {
                let line = match (m["id"].as_str(), m["status"].as_str()) {
                    (Some(id), Some(s)) => format!("{id}: {s}\n"),
                    (None, Some(s)) => format!("{s}\n"),
                    _ => continue,
                };
                let _ = progress.send(line);
            }
            images::finish_pull(&self.node, &pull).map_err(|e| BuildError::Message(e.to_string()))?;
            Ok(pull.image.id().to_string())
        })
    }

    fn resolve(&self, _store: &Store, reference: &Reference) -> Result<Option<String>, ImageError> {
        if self.always_pull {
            return Ok(None);
        }
        let name = reference.clone().with_default_tag().familiar();
        if let Some(id) = self.node.state().images.get(&name).cloned() {
            return Ok(Some(id));
        }
        // `FROM <image ID>` (or a prefix of one) of an image the node has.
        if reference.tag.is_none() && reference.digest.is_none() {
            return Ok(self.node.image_id(&reference.familiar_name()));
        }
        Ok(None)
    }

    fn tag(&self, _store: &Store, id: &str, reference: &Reference) -> Result<(), ImageError> {
        let name = reference.clone().with_default_tag().familiar();
        {
            let mut st = self.node.state();
            images::set_name(&mut st, name.clone(), id);
            st.save_images(&self.node.paths)
                .map_err(|e| ImageError::Corrupt(format!("saving the node's image names: {e:#}")))?;
        }
        self.node.emit("image", "tag", id, [("name".to_string(), name)]);
        Ok(())
    }

    fn cache_get(&self, store: &Store, key: &str) -> Option<String> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let hit = store.cache_get(&self.key(key));
        if hit.is_some() {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    fn step_dir(&self, _store: &Store) -> Result<PathBuf, ImageError> {
        let dir = self
            .node
            .paths
            .root
            .join("builds")
            .join(format!("step-{}", &super::super::state::new_id()[..16]));
        std::fs::create_dir_all(&dir).map_err(|e| ImageError::Io {
            what: format!("creating {}", dir.display()),
            source: e,
        })?;
        Ok(dir)
    }

    fn cache_put(&self, store: &Store, key: &str, id: &str) -> Result<(), ImageError> {
        let key = self.key(key);
        store.cache_put(&key, id)?;
        let _guard = CACHE_FILE.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = read_cache(&self.node);
        entries.insert(
            key,
            CacheEntry {
                id: id.to_string(),
                at: time::OffsetDateTime::now_utc().unix_timestamp(),
            },
        );
        super::super::state::write_json(&cache_path(&self.node), &entries)
            .map_err(|e| ImageError::Corrupt(format!("saving the node's build cache: {e:#}")))
    }
}

/// `docker build`'s parameters.
struct Params {
    tags: Vec<Reference>,
    dockerfile: String,
    build_args: BTreeMap<String, String>,
    labels: BTreeMap<String, String>,
    no_cache: bool,
    target: Option<String>,
    quiet: bool,
    pull: bool,
    /// `--network none` cuts RUN steps off; anything else is the node's network (the
    /// node is the Docker host, and its network what a build's containers reach).
    no_network: bool,
}

fn params(raw: Option<&str>) -> ApiResult<Params> {
    let pairs = query_pairs(raw);
    let one = |k: &str| pairs.iter().rev().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut tags = Vec::new();
    for (_, t) in pairs.iter().filter(|(k, _)| k == "t") {
        let r = Reference::parse(t).map_err(|e| ApiError::bad(format!("invalid tag \"{t}\": {e}")))?;
        if r.digest.is_some() {
            return Err(ApiError::bad(format!(
                "invalid tag \"{t}\": a tag cannot hold a digest"
            )));
        }
        tags.push(r.with_default_tag());
    }
    // Build args: a JSON map whose null values mean "from the client's environment", which
    // the CLI already filled in; a null left is an unset argument.
    let build_args: BTreeMap<String, Option<String>> = match one("buildargs").filter(|s| !s.is_empty()) {
        Some(s) => serde_json::from_str(&s).map_err(|e| ApiError::bad(format!("invalid buildargs: {e}")))?,
        None => BTreeMap::new(),
    };
    let labels: BTreeMap<String, String> = match one("labels").filter(|s| !s.is_empty()) {
        Some(s) => serde_json::from_str(&s).map_err(|e| ApiError::bad(format!("invalid labels: {e}")))?,
        None => BTreeMap::new(),
    };
    if let Some(remote) = one("remote").filter(|r| !r.is_empty()) {
        return Err(ApiError::bad(format!(
            "cannot fetch the build context from {remote}: Slipway is offline; build from a directory instead"
        )));
    }
    if let Some(p) = one("platform").filter(|p| !p.is_empty()) {
        let host = format!("linux/{}", slipway_runtime::image::config::host_architecture());
        if !host.starts_with(&p) {
            return Err(ApiError::bad(format!("this engine builds for {host} only, not {p}")));
        }
    }
    Ok(Params {
        tags,
        dockerfile: one("dockerfile")
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| "Dockerfile".into()),
        build_args: build_args.into_iter().filter_map(|(k, v)| Some((k, v?))).collect(),
        labels,
        no_cache: flag(one("nocache").as_deref()),
        target: one("target").filter(|t| !t.is_empty()),
        quiet: flag(one("q").as_deref()),
        pull: flag(one("pull").as_deref()),
        no_network: one("networkmode").as_deref() == Some("none"),
    })
}

/// Reads a file of the node's root (/etc/resolv.conf, /etc/hosts) inside that root, so a
/// symlink in the node cannot point the read at a host file.
fn node_file(pid: i32, path: &str) -> Option<Vec<u8>> {
    use nix::fcntl::OFlag;
    let root = std::fs::File::open(format!("/proc/{pid}/root")).ok()?;
    let fd = slipway_runtime::linux::fs::open_in_root(
        std::os::fd::AsFd::as_fd(&root),
        std::path::Path::new(path),
        OFlag::O_RDONLY,
    )
    .ok()?;
    let mut f = std::fs::File::from(fd);
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(&mut f, 1 << 20), &mut out).ok()?;
    Some(out)
}

async fn build(Extension(node): Extension<Arc<Node>>, RawQuery(raw): RawQuery, req: Request) -> ApiResult<Response> {
    let p = params(raw.as_deref())?;
    let pid = node.node_pid()?;
    // The context goes to the node's own storage (inside the playground's quota).
    let builds = node.paths.root.join("builds");
    remove_stale(&builds);
    let dir = builds.join(&super::super::state::new_id()[..16]);
    std::fs::create_dir_all(dir.join("context")).map_err(ApiError::internal)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Value>(64);
    let node2 = node.clone();
    let body = req.into_body();
    tokio::spawn(async move {
        let result = run_build(&node2, p, pid, &dir, body, &tx).await;
        if let Err(message) = result {
            let _ = tx.send(stream::stream_error(&message)).await;
        }
        let _ = tokio::fs::remove_dir_all(&dir).await;
    });
    Ok(stream::ndjson(rx))
}

/// Removes what builds cut short by a server's end left behind (a day old: no build runs
/// that long).
fn remove_stale(builds: &std::path::Path) {
    for e in std::fs::read_dir(builds).into_iter().flatten().flatten() {
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age.as_secs() > 24 * 3600);
        if old {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

/// Runs the build, streaming its output to `tx`; the error message if it fails.
async fn run_build(
    node: &Arc<Node>,
    p: Params,
    pid: i32,
    dir: &std::path::Path,
    body: axum::body::Body,
    tx: &tokio::sync::mpsc::Sender<Value>,
) -> Result<(), String> {
    let context = dir.join("context");
    let reader = BodyReader::new(body);
    let target = context.clone();
    let extracted = tokio::task::spawn_blocking(move || slipway_runtime::build::context::extract(reader, &target))
        .await
        .map_err(|e| e.to_string())?;
    if let Err(e) = extracted {
        let full = matches!(&e, slipway_runtime::build::context::ExtractError::Io(io)
            if matches!(io.raw_os_error(), Some(libc::EDQUOT) | Some(libc::ENOSPC)));
        return Err(if full {
            format!("the playground's storage quota is full: {e}")
        } else {
            e.to_string()
        });
    }
    // RUN steps see the node's resolver and hosts, copied out of the node.
    let mut resolv_conf = None;
    let mut hosts = None;
    for (file, slot) in [("/etc/resolv.conf", &mut resolv_conf), ("/etc/hosts", &mut hosts)] {
        if let Some(bytes) = node_file(pid, file) {
            let copy = dir.join(file.trim_start_matches("/etc/"));
            if std::fs::write(&copy, bytes).is_ok() {
                *slot = Some(copy);
            }
        }
    }
    let runner = ContainerRunner {
        containers: node.engine.containers.clone(),
        network: if p.no_network {
            RunNetwork::None
        } else {
            RunNetwork::Namespace(PathBuf::from(format!("/proc/{pid}/ns/net")))
        },
        cgroup_parent: format!(
            "{}/pg-{}/{}-builds",
            node.engine.cgroup_root, node.playground, node.name
        ),
        resolv_conf,
        hosts,
        scratch: dir.join("steps"),
    };
    let request = BuildRequest {
        context,
        dockerfile: PathBuf::from(&p.dockerfile),
        tags: p.tags.clone(),
        build_args: p.build_args.clone(),
        target: p.target.clone(),
        no_cache: p.no_cache,
        labels: p.labels.clone(),
    };
    let bases = NodeImages {
        node: node.clone(),
        always_pull: p.pull,
        lookups: AtomicUsize::new(0),
        hits: AtomicUsize::new(0),
    };
    let (ptx, mut prx): (Progress, _) = tokio::sync::mpsc::unbounded_channel();
    let quiet = p.quiet;
    let out = tx.clone();
    // Output to the client; when it goes away this ends, dropping the receiver, and the
    // builder stops (a running step is killed).
    let forward = tokio::spawn(async move {
        loop {
            tokio::select! {
                line = prx.recv() => match line {
                    Some(line) => {
                        if !quiet && out.send(json!({ "stream": line })).await.is_err() {
                            return;
                        }
                    }
                    None => return,
                },
                _ = out.closed() => return,
            }
        }
    });
    let store = node.engine.images.clone();
    let result = builder::build(store, &bases, &runner, request, ptx).await;
    let _ = forward.await;
    match result {
        Ok(built) => {
            super::super::builds::record(
                node,
                &built.id,
                &built.tags,
                bases.lookups.load(Ordering::Relaxed),
                bases.hits.load(Ordering::Relaxed),
            );
            if quiet {
                let _ = tx.send(json!({ "stream": format!("{}\n", built.id) })).await;
            }
            let _ = tx.send(json!({ "aux": { "ID": built.id } })).await;
            if built.tags.is_empty() {
                // An untagged build is still the node's, as <none>.
                let mut st = node.state();
                if !st.images.values().any(|v| v == &built.id) {
                    st.images
                        .insert(format!("{}{}", images::DANGLING, built.id), built.id.clone());
                    let _ = st.save_images(&node.paths);
                }
            }
            Ok(())
        }
        Err(e) => Err(e.to_string()),
    }
}

#[derive(serde::Deserialize, Default)]
struct PruneQuery {
    filters: Option<String>,
    all: Option<String>,
}

/// `docker builder prune`: the node's own cache entries (older than `until`, if given),
/// and nothing of anyone else's.
async fn prune(
    Extension(node): Extension<Arc<Node>>,
    Query(q): Query<PruneQuery>,
) -> ApiResult<Json<BuildPruneResponse>> {
    let filters = Filters::parse(
        q.filters.as_deref(),
        &[
            "until",
            "unused-for",
            "id",
            "parent",
            "type",
            "description",
            "inuse",
            "shared",
            "private",
        ],
    )?;
    // Every entry is unused once its build is over; `--all` changes nothing here.
    let _all = flag(q.all.as_deref());
    let now = time::OffsetDateTime::now_utc();
    let mut until = None;
    for v in filters.get("until").iter().chain(filters.get("unused-for")) {
        let t = slipway_runtime::logs::parse_time_arg(v, now)
            .map_err(|e| ApiError::bad(format!("invalid filter 'until={v}': {e}")))?;
        until = Some(t.unix_timestamp());
    }
    let store = node.engine.images.clone();
    let removed = {
        let _guard = CACHE_FILE.lock().unwrap_or_else(|p| p.into_inner());
        let mut entries = read_cache(&node);
        let mut removed = Vec::new();
        entries.retain(|key, entry| {
            if until.is_some_and(|u| entry.at >= u) {
                return true;
            }
            if store.cache_remove(key) {
                removed.push(entry.id.clone());
            }
            false
        });
        super::super::state::write_json(&cache_path(&node), &entries).map_err(ApiError::Internal)?;
        removed
    };
    // The cached steps' images stay in the shared store (content other builds may share);
    // forgetting the entries frees no disk, so none is reported.
    Ok(Json(BuildPruneResponse {
        caches_deleted: Some(removed),
        space_reclaimed: Some(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_params() {
        let p = params(Some(
            "t=app%3Av1&t=app&dockerfile=sub%2FDockerfile&buildargs=%7B%22A%22%3A%221%22%2C%22B%22%3Anull%7D&nocache=1&q=1&target=prod",
        ))
        .unwrap();
        let tags: Vec<String> = p.tags.iter().map(|t| t.familiar()).collect();
        assert_eq!(tags, ["app:v1", "app:latest"]);
        assert_eq!(p.dockerfile, "sub/Dockerfile");
        assert_eq!(p.build_args.get("A").map(String::as_str), Some("1"));
        assert!(!p.build_args.contains_key("B"));
        assert!(p.no_cache && p.quiet);
        assert_eq!(p.target.as_deref(), Some("prod"));
        assert!(params(Some("t=Bad%20Name")).is_err());
        assert_eq!(params(None).unwrap().dockerfile, "Dockerfile");
    }
}
