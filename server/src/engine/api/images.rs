//! Images as one node sees them: list, inspect, history, tag, remove, prune, save, load,
//! commit and pull (from the offline catalog).
//!
//! The image store is shared by every node and by the catalog (content addressed); the
//! names are each node's own (`State::images`, name → image ID). Nothing here tags,
//! untags or deletes anything in the store's own tag index: that index is the catalog.
//! An image a node still has but no longer names (a tag moved away by a rebuild, the last
//! tag removed while a container uses it) stays in the table under `<none>@<id>`, which
//! is how `docker images` comes to show `<none>` and `docker image prune` finds it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Read, Write};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Extension, Path, Query, RawQuery, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bollard_stubs::models::{ImageDeleteResponseItem, ImagePruneResponse, ImageSummary};
use futures_util::StreamExt;
use serde_json::{Value, json};
use slipway_runtime::image::config::{Empty, RunConfig};
use slipway_runtime::image::reference::Reference;
use slipway_runtime::image::store::{Image, short_id};

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::super::filters::Filters;
use super::super::state::State;
use super::super::stream;
use super::flag;

/// The table key of an image the node has without a name.
pub const DANGLING: &str = "<none>@";

pub fn routes() -> Router {
    Router::new()
        .route("/images/json", get(list))
        .route("/images/create", post(create))
        .route("/images/load", post(load))
        .route("/images/prune", post(prune))
        .route("/images/get", get(save_many))
        .route("/images/search", get(search))
        .route("/images/{*rest}", get(get_one).post(post_one).delete(remove))
        .route("/commit", post(commit))
}

// ------------------------------------------------------------------------ the node's table

/// The names `id` has on this node, sorted (the `<none>` entry left out).
pub fn names_of(images: &BTreeMap<String, String>, id: &str) -> Vec<String> {
    images
        .iter()
        .filter(|(k, v)| v.as_str() == id && !k.starts_with(DANGLING))
        .map(|(k, _)| k.clone())
        .collect()
}

/// Every image ID the node has.
fn ids(images: &BTreeMap<String, String>) -> BTreeSet<String> {
    images.values().cloned().collect()
}

/// Points `name` at `id` on the node. An image the name leaves with no name at all stays
/// the node's, as `<none>`, as in Docker.
pub fn set_name(state: &mut State, name: String, id: &str) {
    let old = state.images.insert(name, id.to_string());
    state.images.remove(&format!("{DANGLING}{id}"));
    if let Some(old) = old
        && old != id
        && names_of(&state.images, &old).is_empty()
    {
        state.images.insert(format!("{DANGLING}{old}"), old);
    }
}

/// Forgets an image altogether (all its names).
fn forget(state: &mut State, id: &str) {
    state.images.retain(|_, v| v != id);
}

fn save(node: &Node, state: &State) -> ApiResult<()> {
    state.save_images(&node.paths).map_err(ApiError::Internal)
}

/// The container (ID, running) of the node that uses `id`, if one does; running first.
fn user_of(state: &State, id: &str) -> Option<(String, bool)> {
    let mut users: Vec<(String, bool)> = state
        .containers
        .values()
        .filter(|c| c.image_id == id)
        .map(|c| (c.id.clone(), c.state.running()))
        .collect();
    users.sort_by_key(|(_, running)| !running);
    users.into_iter().next()
}

/// Unix seconds of an RFC 3339 time (0 when it does not parse).
pub fn unix_time(rfc3339: &str) -> i64 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .map(|t| t.unix_timestamp())
        .unwrap_or(0)
}

/// A reference as the node keys it ("nginx:latest"); 400 when it is not one.
pub fn parse_reference(name: &str) -> ApiResult<Reference> {
    Reference::parse(name)
        .map(Reference::with_default_tag)
        .map_err(|e| ApiError::bad(e.to_string()))
}

/// The tags among a node's names of an image (a name pulled by digest is no tag).
fn tags(names: &[String]) -> Vec<String> {
    names.iter().filter(|n| !n.contains('@')).cloned().collect()
}

/// The repository digests to show for an image: the names the node pulled by digest, and
/// the store's digests of repositories the node names.
fn repo_digests(image: &Image, names: &[String]) -> Vec<String> {
    let repos: BTreeSet<String> = names
        .iter()
        .filter_map(|n| Reference::parse(n).ok().map(|r| r.familiar_name()))
        .collect();
    let mut out: Vec<String> = names.iter().filter(|n| n.contains('@')).cloned().collect();
    for d in &image.record.repo_digests {
        if d.split_once('@').is_some_and(|(r, _)| repos.contains(r)) && !out.contains(d) {
            out.push(d.clone());
        }
    }
    out
}

// ---------------------------------------------------------------------------- list

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    filters: Option<String>,
}

/// Docker's reference filter: a glob over the familiar name, with or without the tag.
pub fn reference_matches(pattern: &str, name: &str) -> bool {
    let glob = |p: &str, n: &str| {
        let (ps, ns): (Vec<&str>, Vec<&str>) = (p.split('/').collect(), n.split('/').collect());
        ps.len() == ns.len()
            && ps
                .iter()
                .zip(&ns)
                .all(|(p, n)| slipway_runtime::build::context::component_match(p, n))
    };
    if glob(pattern, name) {
        return true;
    }
    // `nginx` and `ngi*` match every tag of the repository.
    match name.rsplit_once(':') {
        Some((repo, _)) if !pattern.contains(':') => glob(pattern, repo),
        _ => false,
    }
}

async fn list(Extension(node): Extension<Arc<Node>>, Query(q): Query<ListQuery>) -> ApiResult<Json<Vec<ImageSummary>>> {
    let filters = Filters::parse(
        q.filters.as_deref(),
        &["dangling", "label", "label!", "reference", "before", "since", "until"],
    )?;
    let dangling = filters.boolean("dangling")?;
    let (table, containers): (BTreeMap<String, String>, HashMap<String, i64>) = {
        let st = node.state();
        let mut counts = HashMap::new();
        for c in st.containers.values() {
            *counts.entry(c.image_id.clone()).or_insert(0) += 1;
        }
        (st.images.clone(), counts)
    };
    let store = node.engine.images.clone();
    let created_of = |name: &str| -> ApiResult<i64> {
        let image = node.resolve_image(name)?;
        Ok(unix_time(&image.config.created))
    };
    let before = filters
        .get("before")
        .iter()
        .map(|b| created_of(b))
        .collect::<ApiResult<Vec<_>>>()?;
    let since = filters
        .get("since")
        .iter()
        .map(|s| created_of(s))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut out = Vec::new();
    for id in ids(&table) {
        let image = match store.image(&id) {
            Ok(i) => i,
            Err(e) => {
                tracing::warn!(%id, error = %e, "a node names an image the store lacks");
                continue;
            }
        };
        let names = names_of(&table, &id);
        if dangling.is_some_and(|d| d != names.is_empty()) {
            continue;
        }
        let labels: HashMap<String, String> = image.config.config.labels.clone().into_iter().collect();
        if !filters.labels_match("label", &labels) || !filters.labels_excluded("label!", &labels) {
            continue;
        }
        let tags: Vec<String> = if filters.has("reference") {
            let kept: Vec<String> = names
                .iter()
                .filter(|n| !n.contains('@'))
                .filter(|n| filters.get("reference").iter().any(|p| reference_matches(p, n)))
                .cloned()
                .collect();
            if kept.is_empty() {
                continue;
            }
            kept
        } else {
            tags(&names)
        };
        let created = unix_time(&image.config.created);
        if before.iter().any(|b| created >= *b) || since.iter().any(|s| created <= *s) {
            continue;
        }
        out.push(ImageSummary {
            id: id.clone(),
            parent_id: image.record.parent.clone().unwrap_or_default(),
            repo_digests: repo_digests(&image, &names),
            repo_tags: tags,
            created,
            size: image.size() as i64,
            shared_size: -1,
            labels,
            containers: containers.get(&id).copied().unwrap_or(0),
            manifests: None,
            descriptor: None,
        });
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok(Json(out))
}

// ------------------------------------------------------------------------ inspect

fn map_of_empty(m: &BTreeMap<String, Empty>) -> Value {
    Value::Object(m.keys().map(|k| (k.clone(), json!({}))).collect())
}

/// The image's Config as Docker shows it in inspect (nulls where Docker has them).
fn config_json(c: &RunConfig) -> Value {
    json!({
        "Hostname": "", "Domainname": "", "User": c.user,
        "AttachStdin": false, "AttachStdout": false, "AttachStderr": false,
        "ExposedPorts": if c.exposed_ports.is_empty() { Value::Null } else { map_of_empty(&c.exposed_ports) },
        "Tty": false, "OpenStdin": false, "StdinOnce": false,
        "Env": c.env,
        "Cmd": c.cmd,
        "Healthcheck": c.healthcheck,
        "ArgsEscaped": c.args_escaped,
        "Image": "",
        "Volumes": if c.volumes.is_empty() { Value::Null } else { map_of_empty(&c.volumes) },
        "WorkingDir": c.working_dir,
        "Entrypoint": c.entrypoint,
        "OnBuild": c.on_build,
        "Labels": c.labels,
        "StopSignal": if c.stop_signal.is_empty() { Value::Null } else { json!(c.stop_signal) },
        "Shell": c.shell,
    })
}

fn inspect_json(node: &Node, image: &Image) -> Value {
    let names = names_of(&node.state().images, image.id());
    let layer_dirs: Vec<String> = node
        .engine
        .images
        .lower_dirs(image)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    let c = &image.config;
    json!({
        "Id": image.id(),
        "RepoTags": tags(&names),
        "RepoDigests": repo_digests(image, &names),
        "Parent": image.record.parent.clone().unwrap_or_default(),
        "Comment": c.comment,
        "Created": c.created,
        "DockerVersion": "",
        "Author": c.author,
        "Config": config_json(&c.config),
        "Architecture": c.architecture,
        "Os": c.os,
        "Size": image.size(),
        "VirtualSize": image.size(),
        "GraphDriver": {
            "Name": "overlay2",
            "Data": { "LowerDir": layer_dirs.join(":") },
        },
        "RootFS": { "Type": "layers", "Layers": c.rootfs.diff_ids },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    })
}

fn history_json(node: &Node, image: &Image) -> Value {
    let store = &node.engine.images;
    let table = node.state().images.clone();
    // Each classic-builder step is an image whose parent is the step before: walk that
    // chain beside the history, newest first; what the store lacks is <missing>.
    let mut chain = vec![image.id().to_string()];
    while let Some(parent) = chain.last().and_then(|id| store.record(id).ok()).and_then(|r| r.parent) {
        if chain.len() > image.config.history.len() {
            break;
        }
        chain.push(parent);
    }
    let layers: Vec<u64> = image.record.layers.iter().map(|l| l.size).collect();
    let mut layer_index = image.config.history.iter().filter(|h| !h.empty_layer).count();
    let mut out = Vec::new();
    for (i, h) in image.config.history.iter().rev().enumerate() {
        let size = if h.empty_layer {
            0
        } else {
            layer_index = layer_index.saturating_sub(1);
            layers.get(layer_index).copied().unwrap_or(0)
        };
        let id = chain.get(i).cloned().unwrap_or_else(|| "<missing>".into());
        out.push(json!({
            "Id": id,
            "Created": unix_time(&h.created),
            "CreatedBy": h.created_by,
            "Tags": tags(&names_of(&table, &id)),
            "Size": size,
            "Comment": h.comment,
        }));
    }
    Value::Array(out)
}

// ---------------------------------------------------------------------------- the catch-all

async fn get_one(Extension(node): Extension<Arc<Node>>, Path(rest): Path<String>) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/json") {
        let image = node.resolve_image(name)?;
        return Ok(Json(inspect_json(&node, &image)).into_response());
    }
    if let Some(name) = rest.strip_suffix("/history") {
        let image = node.resolve_image(name)?;
        return Ok(Json(history_json(&node, &image)).into_response());
    }
    if let Some(name) = rest.strip_suffix("/get") {
        return save_images(&node, &[name.to_string()]);
    }
    Err(ApiError::NotFound(format!("page not found: /images/{rest}")))
}

#[derive(serde::Deserialize)]
struct TagQuery {
    repo: Option<String>,
    tag: Option<String>,
}

async fn post_one(
    Extension(node): Extension<Arc<Node>>,
    Path(rest): Path<String>,
    Query(q): Query<TagQuery>,
) -> ApiResult<Response> {
    if let Some(name) = rest.strip_suffix("/tag") {
        tag(&node, name, q.repo.as_deref().unwrap_or(""), q.tag.as_deref())?;
        return Ok(StatusCode::CREATED.into_response());
    }
    if let Some(name) = rest.strip_suffix("/push") {
        node.resolve_image(name)?;
        return Err(ApiError::bad(format!(
            "cannot push {name}: Slipway is offline and this engine has no registry to push to"
        )));
    }
    Err(ApiError::NotFound(format!("page not found: /images/{rest}")))
}

/// `docker tag`: one more name for an image of the node.
pub fn tag(node: &Node, source: &str, repo: &str, tag: Option<&str>) -> ApiResult<()> {
    let id = node.image_id(source).ok_or_else(|| ApiError::no_such_image(source))?;
    if repo.is_empty() {
        return Err(ApiError::bad("repository name must have at least one component"));
    }
    let full = match tag.filter(|t| !t.is_empty()) {
        Some(t) => format!("{repo}:{t}"),
        None => repo.to_string(),
    };
    let reference = parse_reference(&full)?;
    if reference.digest.is_some() {
        return Err(ApiError::bad("refusing to create a tag with a digest reference"));
    }
    let name = reference.familiar();
    {
        let mut st = node.state();
        set_name(&mut st, name.clone(), &id);
        save(node, &st)?;
    }
    node.emit("image", "tag", &id, [("name".to_string(), name)]);
    Ok(())
}

// ------------------------------------------------------------------------ remove

#[derive(serde::Deserialize)]
struct RemoveQuery {
    force: Option<String>,
    #[allow(dead_code)]
    noprune: Option<String>,
}

fn untagged(name: &str) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: Some(name.to_string()),
        deleted: None,
    }
}

fn deleted(id: &str) -> ImageDeleteResponseItem {
    ImageDeleteResponseItem {
        untagged: None,
        deleted: Some(id.to_string()),
    }
}

async fn remove(
    Extension(node): Extension<Arc<Node>>,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> ApiResult<Json<Vec<ImageDeleteResponseItem>>> {
    Ok(Json(remove_image(&node, &name, flag(q.force.as_deref()))?))
}

/// `docker rmi`, with Docker's rules and conflict messages, on the node's names.
pub fn remove_image(node: &Node, name: &str, force: bool) -> ApiResult<Vec<ImageDeleteResponseItem>> {
    let id = node.image_id(name).ok_or_else(|| ApiError::no_such_image(name))?;
    let mut out = Vec::new();
    let mut events = Vec::new();
    {
        let mut st = node.state();
        let names = names_of(&st.images, &id);
        let user = user_of(&st, &id);
        let by_name = Reference::parse(name)
            .ok()
            .map(|r| r.with_default_tag().familiar())
            .filter(|n| names.contains(n));
        match &by_name {
            Some(n) if names.len() > 1 => {
                // One name of several: only that name goes, whoever uses the image.
                st.images.remove(n);
                save(node, &st)?;
                drop(st);
                node.emit("image", "untag", &id, [("name".to_string(), n.clone())]);
                return Ok(vec![untagged(n)]);
            }
            Some(n) => {
                if let Some((container, _)) = &user
                    && !force
                {
                    return Err(ApiError::Conflict(format!(
                        "conflict: unable to remove repository reference \"{name}\" (must force) - container {} is using its referenced image {}",
                        &container[..12],
                        short_id(&id)
                    )));
                }
                st.images.remove(n);
                out.push(untagged(n));
                events.push(("untag", n.clone()));
            }
            None => {
                if let Some((container, running)) = &user {
                    if *running {
                        return Err(ApiError::Conflict(format!(
                            "conflict: unable to delete {} (cannot be forced) - image is being used by running container {}",
                            short_id(&id),
                            &container[..12]
                        )));
                    }
                    if !force {
                        return Err(ApiError::Conflict(format!(
                            "conflict: unable to delete {} (must be forced) - image is being used by stopped container {}",
                            short_id(&id),
                            &container[..12]
                        )));
                    }
                }
                if names.len() > 1 && !force {
                    return Err(ApiError::Conflict(format!(
                        "conflict: unable to delete {} (must be forced) - image is referenced in multiple repositories",
                        short_id(&id)
                    )));
                }
                for n in &names {
                    st.images.remove(n);
                    out.push(untagged(n));
                    events.push(("untag", n.clone()));
                }
            }
        }
        // A running container keeps its image; a stopped one only unless forced.
        let keep = match &user {
            Some((_, true)) => true,
            Some((_, false)) => !force,
            None => false,
        };
        if keep {
            st.images.insert(format!("{DANGLING}{id}"), id.clone());
        } else {
            forget(&mut st, &id);
            out.push(deleted(&id));
            events.push(("delete", String::new()));
        }
        save(node, &st)?;
    }
    for (action, n) in events {
        let attrs: Vec<(String, String)> = if n.is_empty() {
            Vec::new()
        } else {
            vec![("name".into(), n)]
        };
        node.emit("image", action, &id, attrs);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------- prune

#[derive(serde::Deserialize, Default)]
struct PruneQuery {
    filters: Option<String>,
}

async fn prune(
    Extension(node): Extension<Arc<Node>>,
    Query(q): Query<PruneQuery>,
) -> ApiResult<Json<ImagePruneResponse>> {
    let filters = Filters::parse(q.filters.as_deref(), &["dangling", "label", "label!", "until"])?;
    let dangling_only = filters.boolean("dangling")?.unwrap_or(true);
    let now = time::OffsetDateTime::now_utc();
    let until = match filters.get("until").first() {
        Some(u) => Some(
            slipway_runtime::logs::parse_time_arg(u, now)
                .map_err(|e| ApiError::bad(format!("invalid until {u:?}: {e}")))?
                .unix_timestamp(),
        ),
        None => None,
    };
    let store = node.engine.images.clone();
    let candidates: Vec<String> = {
        let st = node.state();
        ids(&st.images)
            .into_iter()
            .filter(|id| user_of(&st, id).is_none())
            .filter(|id| !dangling_only || names_of(&st.images, id).is_empty())
            .collect()
    };
    let mut removed = Vec::new();
    let mut gone: Vec<Image> = Vec::new();
    for id in candidates {
        let Ok(image) = store.image(&id) else { continue };
        let labels: HashMap<String, String> = image.config.config.labels.clone().into_iter().collect();
        if !filters.labels_match("label", &labels) || !filters.labels_excluded("label!", &labels) {
            continue;
        }
        if until.is_some_and(|u| unix_time(&image.config.created) >= u) {
            continue;
        }
        match remove_image(&node, &id, true) {
            Ok(items) => removed.extend(items),
            Err(e) => tracing::debug!(%id, error = %e, "prune skipped an image"),
        }
        gone.push(image);
    }
    Ok(Json(ImagePruneResponse {
        space_reclaimed: Some(reclaimed(&node, &gone) as i64),
        images_deleted: Some(removed),
    }))
}

/// Bytes of the layers of `gone` that no image the node keeps still uses: what this
/// node's Docker would free. (The shared store's own garbage collection frees the disk.)
fn reclaimed(node: &Node, gone: &[Image]) -> u64 {
    let store = &node.engine.images;
    let kept: BTreeSet<String> = {
        let st = node.state();
        ids(&st.images)
            .into_iter()
            .chain(st.containers.values().map(|c| c.image_id.clone()))
            .collect()
    };
    let kept_layers: BTreeSet<String> = kept
        .iter()
        .filter_map(|id| store.record(id).ok())
        .flat_map(|r| r.layers.into_iter().map(|l| l.diff_id))
        .collect();
    let mut freed = BTreeMap::new();
    for image in gone {
        for l in &image.record.layers {
            if !kept_layers.contains(&l.diff_id) {
                freed.insert(l.diff_id.clone(), l.size);
            }
        }
    }
    freed.values().sum()
}

// ------------------------------------------------------------------------ search

async fn search() -> ApiError {
    ApiError::internal("Slipway is offline: there is no registry to search (`docker images` lists what this node has)")
}

// ------------------------------------------------------------------------ save and load

/// A blocking reader over a request body, for code that reads with `std::io::Read` on a
/// blocking thread: chunks arrive through a small channel, so the body is never held
/// whole in memory.
pub struct BodyReader {
    rx: tokio::sync::mpsc::Receiver<std::io::Result<Bytes>>,
    buf: Bytes,
}

impl BodyReader {
    pub fn new(body: Body) -> BodyReader {
        let (tx, rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let mut stream = body.into_data_stream();
            while let Some(chunk) = stream.next().await {
                if tx.send(chunk.map_err(std::io::Error::other)).await.is_err() {
                    break;
                }
            }
        });
        BodyReader { rx, buf: Bytes::new() }
    }
}

impl Read for BodyReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.buf = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}

/// A blocking writer into a response body (a `docker save` archive as it is written).
struct BodyWriter(tokio::sync::mpsc::Sender<Bytes>);

impl Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn save_many(Extension(node): Extension<Arc<Node>>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let names: Vec<String> = query_pairs(q.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "names")
        .map(|(_, v)| v)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad("no images named"));
    }
    save_images(&node, &names)
}

/// A query string's pairs, decoded, repeated keys kept (`t=a&t=b`, `names=...`).
pub fn query_pairs(q: Option<&str>) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    q.unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

/// Which images `names` mean on this node, each with the names to record for it, as
/// `docker save` picks them: `app:v1` that name, `app` every tag of the repository, an ID
/// the image with no name.
fn select(node: &Node, names: &[String]) -> ApiResult<Vec<(String, Vec<String>)>> {
    let table = node.state().images.clone();
    let mut chosen: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |id: String, name: Option<String>| match chosen.iter_mut().find(|(i, _)| *i == id) {
        Some((_, tags)) => tags.extend(name.filter(|n| !tags.contains(n))),
        None => chosen.push((id, name.into_iter().collect())),
    };
    for name in names {
        match Reference::parse(name) {
            Ok(r) if r.tag.is_none() && r.digest.is_none() => {
                let repo = r.familiar_name();
                let tagged: Vec<(String, String)> = table
                    .iter()
                    .filter(|(k, _)| k.rsplit_once(':').is_some_and(|(n, _)| n == repo))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if tagged.is_empty() {
                    let id = node.image_id(name).ok_or_else(|| ApiError::no_such_image(name))?;
                    add(id, None);
                }
                for (k, id) in tagged {
                    add(id, Some(k));
                }
            }
            Ok(r) if r.digest.is_none() => {
                let id = node.image_id(name).ok_or_else(|| ApiError::no_such_image(name))?;
                add(id, Some(r.with_default_tag().familiar()));
            }
            _ => {
                let id = node.image_id(name).ok_or_else(|| ApiError::no_such_image(name))?;
                add(id, None);
            }
        }
    }
    Ok(chosen)
}

fn save_images(node: &Arc<Node>, names: &[String]) -> ApiResult<Response> {
    let chosen = select(node, names)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    let store = node.engine.images.clone();
    let for_events = chosen.clone();
    let events_node = node.clone();
    tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(1 << 20, BodyWriter(tx));
        match slipway_runtime::image::archive::save_images(&store, &chosen, out) {
            Ok(()) => {
                for (id, _) in for_events {
                    events_node.emit("image", "save", &id, Vec::new());
                }
            }
            // The client sees a cut archive: the body ends early and `docker save` fails.
            Err(e) => tracing::info!(error = %e, "docker save stopped"),
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx).map(Ok::<_, std::io::Error>));
    Ok(([(header::CONTENT_TYPE, "application/x-tar")], body).into_response())
}

/// Writes a request body to a file on the node's own storage (inside the playground's
/// quota, so a huge upload hits the learner's limit, not the host's disk).
async fn spool_body(node: &Node, what: &str, body: Body) -> ApiResult<std::path::PathBuf> {
    let spool_dir = node.paths.root.join("tmp");
    tokio::fs::create_dir_all(&spool_dir)
        .await
        .map_err(ApiError::internal)?;
    let spool = spool_dir.join(format!("{what}-{}", &super::super::state::new_id()[..16]));
    let written = async {
        let mut file = tokio::fs::File::create(&spool).await?;
        let mut stream = body.into_data_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(std::io::Error::other)?;
            tokio::io::AsyncWriteExt::write_all(&mut file, &chunk).await?;
        }
        tokio::io::AsyncWriteExt::flush(&mut file).await
    }
    .await;
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&spool).await;
        return Err(
            if e.raw_os_error() == Some(libc::EDQUOT) || e.raw_os_error() == Some(libc::ENOSPC) {
                ApiError::Limit(format!("the playground's storage quota is full: {e}"))
            } else {
                ApiError::bad(format!("reading the upload: {e}"))
            },
        );
    }
    Ok(spool)
}

#[derive(serde::Deserialize)]
struct LoadQuery {
    quiet: Option<String>,
}

/// `docker load`: the archive is spooled to the node's own storage (inside its quota),
/// loaded into the shared store as content, and its names recorded in the node's table.
async fn load(Extension(node): Extension<Arc<Node>>, Query(q): Query<LoadQuery>, req: Request) -> ApiResult<Response> {
    let _quiet = flag(q.quiet.as_deref());
    let spool = spool_body(&node, "load", req.into_body()).await?;
    let store = node.engine.images.clone();
    let path = spool.clone();
    let loaded = tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&path)?;
        slipway_runtime::image::archive::load_untagged(&store, file).map_err(anyhow::Error::from)
    })
    .await
    .map_err(ApiError::internal)?;
    let _ = tokio::fs::remove_file(&spool).await;
    let loaded = loaded.map_err(|e| match e.downcast::<slipway_runtime::image::store::ImageError>() {
        Ok(e @ slipway_runtime::image::store::ImageError::Invalid(_)) => ApiError::bad(e.to_string()),
        Ok(e) => ApiError::internal(e),
        Err(e) => ApiError::internal(e),
    })?;
    let mut lines = Vec::new();
    {
        let mut st = node.state();
        for image in &loaded {
            if image.names.is_empty() && !st.images.values().any(|v| v == &image.id) {
                st.images.insert(format!("{DANGLING}{}", image.id), image.id.clone());
            }
            for n in &image.names {
                set_name(&mut st, n.familiar(), &image.id);
            }
        }
        save(&node, &st)?;
    }
    for image in &loaded {
        for report in image.reports() {
            lines.push(json!({ "stream": format!("{report}\n") }));
        }
        let name = image
            .names
            .first()
            .map(|n| n.familiar())
            .unwrap_or_else(|| image.id.clone());
        node.emit("image", "load", &image.id, [("name".to_string(), name)]);
    }
    let mut body = Vec::new();
    for l in lines {
        body.extend(serde_json::to_vec(&l).unwrap_or_default());
        body.push(b'\n');
    }
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

// ---------------------------------------------------------------------------- pull

/// What pulling a name from the catalog brings: the image, and what the node had.
pub struct Pull {
    pub reference: Reference,
    /// How the node names it ("nginx:latest", "nginx@sha256:...").
    pub name: String,
    pub image: Image,
    /// The node already had this name on this very image.
    pub up_to_date: bool,
    /// Layers the node had already (through another image).
    pub present: BTreeSet<String>,
}

/// The catalog's tags of a repository, for the message when a tag is missing.
fn catalog_tags(node: &Node, repo: &str) -> Vec<String> {
    let mut tags: Vec<String> = node
        .engine
        .images
        .list(false)
        .unwrap_or_default()
        .into_iter()
        .flat_map(|s| s.tags)
        .filter(|t| t.rsplit_once(':').is_some_and(|(r, _)| r == repo))
        .collect();
    tags.sort();
    tags
}

/// Finds `reference` in the catalog; a missing one is the 404 the CLI shows.
pub fn plan_pull(node: &Node, reference: &Reference) -> ApiResult<Pull> {
    let name = reference.familiar();
    let store = &node.engine.images;
    let image = match store.resolve(&name) {
        Ok(i) => i,
        Err(slipway_runtime::image::store::ImageError::NotFound(_)) => {
            let repo = reference.familiar_name();
            let tags = catalog_tags(node, &repo);
            let has = if tags.is_empty() {
                let mut repos: Vec<String> = store
                    .list(false)
                    .unwrap_or_default()
                    .into_iter()
                    .flat_map(|s| s.tags)
                    .filter_map(|t| t.rsplit_once(':').map(|(r, _)| r.to_string()))
                    .collect();
                repos.sort();
                repos.dedup();
                format!("no {repo} image; it has {}", repos.join(", "))
            } else {
                tags.join(", ")
            };
            return Err(ApiError::NotFound(format!(
                "pull access denied for {name}: Slipway is offline and its catalog has {has}"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    let st = node.state();
    let up_to_date = st.images.get(&name).is_some_and(|id| id == image.id());
    let present: BTreeSet<String> = ids(&st.images)
        .iter()
        .filter_map(|id| store.record(id).ok())
        .flat_map(|r| r.layers.into_iter().map(|l| l.diff_id))
        .collect();
    Ok(Pull {
        reference: reference.clone(),
        name,
        image,
        up_to_date,
        present,
    })
}

/// dockerd's progress messages for a pull, as the CLI prints them.
pub fn pull_messages(pull: &Pull) -> Vec<Value> {
    let r = &pull.reference;
    let what = r.tag.clone().or(r.digest.clone()).unwrap_or_default();
    let mut out = vec![stream::status(Some(&what), &format!("Pulling from {}", r.repository))];
    if !pull.up_to_date {
        for l in &pull.image.record.layers {
            let id = short_id(&l.blob);
            if pull.present.contains(&l.diff_id) {
                out.push(json!({ "status": "Already exists", "progressDetail": {}, "id": id }));
            } else {
                out.push(json!({ "status": "Pulling fs layer", "progressDetail": {}, "id": id }));
                out.push(json!({ "status": "Download complete", "progressDetail": {}, "id": id }));
                out.push(json!({ "status": "Pull complete", "progressDetail": {}, "id": id }));
            }
        }
    }
    out.push(stream::status(None, &format!("Digest: {}", pull.image.record.manifest)));
    out.push(stream::status(
        None,
        &if pull.up_to_date {
            format!("Status: Image is up to date for {}", pull.name)
        } else {
            format!("Status: Downloaded newer image for {}", pull.name)
        },
    ));
    out
}

/// Records the pulled name in the node's table.
pub fn finish_pull(node: &Node, pull: &Pull) -> ApiResult<()> {
    {
        let mut st = node.state();
        set_name(&mut st, pull.name.clone(), pull.image.id());
        save(node, &st)?;
    }
    node.emit(
        "image",
        "pull",
        &pull.name,
        [("name".to_string(), pull.reference.familiar_name())],
    );
    Ok(())
}

#[derive(serde::Deserialize)]
struct CreateQuery {
    #[serde(rename = "fromImage")]
    from_image: Option<String>,
    #[serde(rename = "fromSrc")]
    from_src: Option<String>,
    tag: Option<String>,
    platform: Option<String>,
    repo: Option<String>,
    message: Option<String>,
}

/// `docker import`: a filesystem tar (the body, `fromSrc=-`) as a one-layer image.
async fn import(
    node: &Arc<Node>,
    src: &str,
    repo: Option<&str>,
    tag: Option<&str>,
    message: Option<&str>,
    raw: Option<&str>,
    body: Body,
) -> ApiResult<Response> {
    if src != "-" {
        return Err(ApiError::bad(format!(
            "cannot import from {src}: Slipway is offline; import a file instead (`docker import file.tar` or `cat file.tar | docker import -`)"
        )));
    }
    let name = match repo.filter(|r| !r.is_empty()) {
        Some(r) => {
            let full = match tag.filter(|t| !t.is_empty()) {
                Some(t) => format!("{r}:{t}"),
                None => r.to_string(),
            };
            Some(parse_reference(&full)?.familiar())
        }
        None => None,
    };
    let changes: Vec<String> = query_pairs(raw)
        .into_iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v)
        .collect();
    let mut config = slipway_runtime::image::config::ImageConfig::scratch();
    apply_changes(&mut config.config, &changes)?;
    let spool = spool_body(node, "import", body).await?;
    let store = node.engine.images.clone();
    let path = spool.clone();
    let comment = message
        .filter(|m| !m.is_empty())
        .unwrap_or("Imported from -")
        .to_string();
    let result = tokio::task::spawn_blocking(move || -> Result<String, slipway_runtime::image::store::ImageError> {
        let file = std::fs::File::open(&path).map_err(|e| slipway_runtime::image::store::ImageError::Io {
            what: "reading the import".into(),
            source: e,
        })?;
        let layer = store.import_layer(std::io::BufReader::with_capacity(1 << 20, file))?;
        config.created = slipway_runtime::image::config::now_rfc3339();
        config.comment = comment.clone();
        config.rootfs.diff_ids.push(layer.diff_id.clone());
        config.history.push(slipway_runtime::image::config::History {
            created: config.created.clone(),
            created_by: String::new(),
            comment,
            empty_layer: false,
        });
        store.put_image(&config, &[layer], None)
    })
    .await
    .map_err(ApiError::internal)?;
    let _ = tokio::fs::remove_file(&spool).await;
    let id = result.map_err(|e| match e {
        slipway_runtime::image::store::ImageError::Layer(_) | slipway_runtime::image::store::ImageError::Invalid(_) => {
            ApiError::bad(format!("not a filesystem archive: {e}"))
        }
        e => ApiError::internal(e),
    })?;
    {
        let mut st = node.state();
        match &name {
            Some(n) => set_name(&mut st, n.clone(), &id),
            None => {
                st.images.insert(format!("{DANGLING}{id}"), id.clone());
            }
        }
        save(node, &st)?;
    }
    node.emit(
        "image",
        "import",
        &id,
        [("name".to_string(), name.unwrap_or_else(|| id.clone()))],
    );
    let body = format!("{}\n", json!({ "status": id }));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// `docker pull` (and `docker run` of an image the node lacks): from the offline catalog.
async fn create(
    Extension(node): Extension<Arc<Node>>,
    Query(q): Query<CreateQuery>,
    RawQuery(raw): RawQuery,
    req: Request,
) -> ApiResult<Response> {
    if let Some(src) = q.from_src.as_deref() {
        return import(
            &node,
            src,
            q.repo.as_deref(),
            q.tag.as_deref(),
            q.message.as_deref(),
            raw.as_deref(),
            req.into_body(),
        )
        .await;
    }
    let from = q
        .from_image
        .filter(|f| !f.is_empty())
        .ok_or_else(|| ApiError::bad("fromImage or fromSrc is required"))?;
    if let Some(p) = q.platform.as_deref().filter(|p| !p.is_empty()) {
        let host = format!("linux/{}", slipway_runtime::image::config::host_architecture());
        if p != host && !host.starts_with(&format!("{p}/")) {
            return Err(ApiError::NotFound(format!(
                "no matching manifest for {p} in the manifest list entries: this engine runs {host} images"
            )));
        }
    }
    let base = Reference::parse(&from).map_err(|e| ApiError::bad(e.to_string()))?;
    let tag = q.tag.filter(|t| !t.is_empty());
    let references: Vec<Reference> = match tag {
        Some(t) if t.starts_with("sha256:") => vec![Reference {
            digest: Some(t),
            tag: None,
            ..base.clone()
        }],
        Some(t) => vec![Reference {
            tag: Some(t),
            ..base.clone()
        }],
        None if base.tag.is_some() || base.digest.is_some() => vec![base.clone()],
        // `docker pull -a`: every tag the catalog has of the repository.
        None => {
            let tags = catalog_tags(&node, &base.familiar_name());
            if tags.is_empty() {
                // The error names what the catalog has.
                plan_pull(&node, &base.clone().with_default_tag())?;
            }
            tags.iter().filter_map(|t| Reference::parse(t).ok()).collect()
        }
    };
    let pulls = references
        .iter()
        .map(|r| plan_pull(&node, r))
        .collect::<ApiResult<Vec<_>>>()?;
    let mut messages = Vec::new();
    for p in &pulls {
        finish_pull(&node, p)?;
        messages.extend(pull_messages(p));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(messages.len().max(1));
    for m in messages {
        let _ = tx.try_send(m);
    }
    drop(tx);
    Ok(stream::ndjson(rx))
}

// ---------------------------------------------------------------------------- commit

#[derive(serde::Deserialize)]
struct CommitQuery {
    container: Option<String>,
    repo: Option<String>,
    tag: Option<String>,
    comment: Option<String>,
    author: Option<String>,
    pause: Option<String>,
}

/// Applies `docker commit --change` instructions (Dockerfile syntax) to a config.
pub fn apply_changes(config: &mut RunConfig, changes: &[String]) -> ApiResult<()> {
    use slipway_runtime::build::dockerfile::{self, Kind, ShellOrExec};
    let changes: Vec<&str> = changes.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect();
    if changes.is_empty() {
        return Ok(());
    }
    let text = format!("FROM scratch\n{}\n", changes.join("\n"));
    let parsed = dockerfile::parse(&text).map_err(|e| ApiError::bad(e.to_string()))?;
    let shell = |s: &str, config: &RunConfig| -> Vec<String> {
        let mut v = config
            .shell
            .clone()
            .unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
        v.push(s.to_string());
        v
    };
    for i in parsed.instructions.into_iter().skip(1) {
        match i.kind {
            Kind::Cmd(c) => {
                config.cmd = Some(match c {
                    ShellOrExec::Exec(v) => v,
                    ShellOrExec::Shell(s) => shell(&s, config),
                })
            }
            Kind::Entrypoint(c) => {
                config.entrypoint = Some(match c {
                    ShellOrExec::Exec(v) => v,
                    ShellOrExec::Shell(s) => shell(&s, config),
                })
            }
            Kind::Env(pairs) => {
                for (k, v) in pairs {
                    config.set_env(&k, &v);
                }
            }
            Kind::Label(pairs) => config.labels.extend(pairs),
            Kind::Expose(ports) => {
                for p in ports {
                    let p = if p.contains('/') { p } else { format!("{p}/tcp") };
                    config.exposed_ports.insert(p, Empty {});
                }
            }
            Kind::Volume(v) => {
                for v in v {
                    config.volumes.insert(v, Empty {});
                }
            }
            Kind::Workdir(w) => config.working_dir = w,
            Kind::User(u) => config.user = u,
            Kind::StopSignal(s) => config.stop_signal = s,
            Kind::Shell(s) => config.shell = Some(s),
            _ => {
                let word = i.original.split_whitespace().next().unwrap_or("").to_uppercase();
                return Err(ApiError::bad(format!("{word} is not a valid change command")));
            }
        }
    }
    Ok(())
}

/// `docker commit`: the container's writable layer on top of its image, with its config.
async fn commit(
    Extension(node): Extension<Arc<Node>>,
    Query(q): Query<CommitQuery>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> ApiResult<Response> {
    let key = q
        .container
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::bad("the container to commit is required"))?;
    let container = node.container(key)?;
    let changes: Vec<String> = query_pairs(raw.as_deref())
        .into_iter()
        .filter(|(k, _)| k == "changes")
        .map(|(_, v)| v)
        .collect();
    let name = match q.repo.as_deref().filter(|r| !r.is_empty()) {
        Some(repo) => {
            let full = match q.tag.as_deref().filter(|t| !t.is_empty()) {
                Some(t) => format!("{repo}:{t}"),
                None => repo.to_string(),
            };
            Some(parse_reference(&full)?.familiar())
        }
        None => None,
    };
    // The config: what the container runs with, what the body overrides, then changes.
    let mut config: RunConfig = serde_json::to_value(&container.config)
        .ok()
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default();
    if !body.is_empty() {
        let given: Value = serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid config: {e}")))?;
        if let Value::Object(given) = given {
            let mut merged = serde_json::to_value(&config).map_err(ApiError::internal)?;
            for (k, v) in given {
                let empty = v.is_null()
                    || v.as_str() == Some("")
                    || v.as_array().is_some_and(|a| a.is_empty())
                    || v.as_object().is_some_and(|o| o.is_empty());
                if !empty {
                    merged[k] = v;
                }
            }
            config = serde_json::from_value(merged).map_err(|e| ApiError::bad(format!("invalid config: {e}")))?;
        }
    }
    apply_changes(&mut config, &changes)?;
    let store = node.engine.images.clone();
    let base = store.image(&container.image_id)?;
    let (upper, _) = node.container_layer(&container.id);
    let pause = q.pause.as_deref().is_none_or(|p| flag(Some(p)));
    let paused =
        pause && container.state.status == "running" && node.engine.containers.pause(&container.runtime_id).is_ok();
    let request = slipway_runtime::image::commit::CommitRequest {
        config,
        created_by: std::iter::once(container.path.clone())
            .chain(container.args.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        comment: q.comment.clone().unwrap_or_default(),
        author: q.author.clone().unwrap_or_default(),
    };
    let result =
        tokio::task::spawn_blocking(move || slipway_runtime::image::commit::commit(&store, &base, &upper, request))
            .await
            .map_err(ApiError::internal);
    if paused {
        let _ = node.engine.containers.resume(&container.runtime_id);
    }
    let id = result??;
    {
        let mut st = node.state();
        match &name {
            Some(n) => set_name(&mut st, n.clone(), &id),
            None => {
                st.images.insert(format!("{DANGLING}{id}"), id.clone());
            }
        }
        save(&node, &st)?;
    }
    let mut attrs = vec![
        ("comment".to_string(), q.comment.unwrap_or_default()),
        ("imageID".to_string(), id.clone()),
        ("imageRef".to_string(), id.clone()),
        ("name".to_string(), container.name.clone()),
        ("image".to_string(), container.image.clone()),
    ];
    attrs.extend(container.labels());
    node.emit("container", "commit", &container.id, attrs);
    Ok((StatusCode::CREATED, Json(json!({ "Id": id }))).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moved_name_leaves_its_old_image_dangling() {
        let mut st = State::default();
        set_name(&mut st, "app:latest".into(), "sha256:a");
        set_name(&mut st, "app:v1".into(), "sha256:a");
        set_name(&mut st, "app:latest".into(), "sha256:b");
        // Still named app:v1: not dangling.
        assert!(!st.images.contains_key("<none>@sha256:a"));
        set_name(&mut st, "app:v1".into(), "sha256:b");
        assert_eq!(st.images.get("<none>@sha256:a").map(String::as_str), Some("sha256:a"));
        assert_eq!(names_of(&st.images, "sha256:b"), ["app:latest", "app:v1"]);
        assert!(names_of(&st.images, "sha256:a").is_empty());
        // Naming it again ends its <none> entry.
        set_name(&mut st, "old:1".into(), "sha256:a");
        assert!(!st.images.contains_key("<none>@sha256:a"));
    }

    #[test]
    fn reference_filter_globs() {
        assert!(reference_matches("nginx", "nginx:latest"));
        assert!(reference_matches("ngi*", "nginx:1.26"));
        assert!(reference_matches("*:1.26", "nginx:1.26"));
        assert!(!reference_matches("nginx:1.26", "nginx:latest"));
        assert!(!reference_matches("*", "me/app:v1"));
        assert!(reference_matches("me/*", "me/app:v1"));
    }

    #[test]
    fn commit_changes() {
        let mut c = RunConfig::default();
        apply_changes(
            &mut c,
            &[
                r#"CMD ["nginx", "-g", "daemon off;"]"#.into(),
                "ENV a=b".into(),
                "EXPOSE 80".into(),
                "WORKDIR /srv".into(),
                "LABEL x=y".into(),
            ],
        )
        .unwrap();
        assert_eq!(c.cmd.as_deref().unwrap(), ["nginx", "-g", "daemon off;"]);
        assert_eq!(c.env, ["a=b"]);
        assert!(c.exposed_ports.contains_key("80/tcp"));
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(c.labels.get("x").map(String::as_str), Some("y"));
        assert!(apply_changes(&mut c, &["RUN true".into()]).is_err());
    }

    #[test]
    fn query_pairs_keep_repeats() {
        let p = query_pairs(Some("t=a%3A1&t=b&q=1&buildargs=%7B%22x%22%3A%22y+z%22%7D"));
        assert_eq!(p[0], ("t".into(), "a:1".into()));
        assert_eq!(p[1], ("t".into(), "b".into()));
        assert_eq!(p[3].1, r#"{"x":"y z"}"#);
    }
}
