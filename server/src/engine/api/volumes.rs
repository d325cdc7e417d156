//! `/volumes/...`: create, list, inspect, remove, prune (local driver only).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Extension, Path, Query};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::super::filters::Filters;
use super::super::state::VolumeRecord;
use super::super::volumes;
use super::{ApiVersion, flag};

pub fn routes() -> Router {
    Router::new()
        .route("/volumes", get(list))
        .route("/volumes/create", post(create))
        .route("/volumes/prune", post(prune))
        .route("/volumes/{name}", get(inspect).delete(remove))
}

type Q = Query<HashMap<String, String>>;

/// A volume as `docker volume inspect` shows it: where dockerd would keep it.
pub fn volume_json(v: &VolumeRecord) -> Value {
    json!({
        "Name": v.name,
        "Driver": v.driver,
        "Mountpoint": format!("/var/lib/docker/volumes/{}/_data", v.name),
        "CreatedAt": v.created_at,
        "Labels": v.labels,
        "Options": v.options,
        "Scope": "local",
    })
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    name: Option<String>,
    driver: Option<String>,
    driver_opts: Option<HashMap<String, String>>,
    labels: Option<HashMap<String, String>>,
}

async fn create(
    Extension(node): Extension<Arc<Node>>,
    body: axum::body::Bytes,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let body: CreateBody = if body.is_empty() {
        CreateBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?
    };
    let v = volumes::create(
        &node,
        body.name.as_deref(),
        body.driver.as_deref(),
        body.driver_opts.unwrap_or_default(),
        body.labels.unwrap_or_default(),
    )?;
    Ok((StatusCode::CREATED, Json(volume_json(&v))))
}

fn matches(node: &Node, f: &Filters, v: &VolumeRecord) -> ApiResult<bool> {
    if let Some(d) = f.boolean("dangling")?
        && d != volumes::users(node, &v.name).is_empty()
    {
        return Ok(false);
    }
    Ok(f.any("name", |n| v.name.contains(n))
        && f.any("driver", |d| d == v.driver)
        && f.labels_match("label", &v.labels)
        && f.labels_excluded("label!", &v.labels))
}

async fn list(Extension(node): Extension<Arc<Node>>, Query(q): Q) -> ApiResult<Json<Value>> {
    let f = Filters::parse(
        q.get("filters").map(String::as_str),
        &["dangling", "name", "label", "label!", "driver"],
    )?;
    let all: Vec<VolumeRecord> = node.state().volumes.values().cloned().collect();
    let mut out = Vec::new();
    for v in &all {
        if matches(&node, &f, v)? {
            out.push(volume_json(v));
        }
    }
    Ok(Json(json!({ "Volumes": out, "Warnings": [] })))
}

async fn inspect(Extension(node): Extension<Arc<Node>>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let v = node
        .state()
        .volumes
        .get(&name)
        .cloned()
        .ok_or_else(|| ApiError::no_such_volume(&name))?;
    Ok(Json(volume_json(&v)))
}

async fn remove(Extension(node): Extension<Arc<Node>>, Path(name): Path<String>, Query(q): Q) -> ApiResult<StatusCode> {
    volumes::remove(&node, &name, flag(q.get("force").map(String::as_str)))?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(
    Extension(node): Extension<Arc<Node>>,
    Extension(version): Extension<ApiVersion>,
    Query(q): Q,
) -> ApiResult<Json<Value>> {
    let f = Filters::parse(q.get("filters").map(String::as_str), &["label", "label!", "all"])?;
    // Before API 1.42 prune took every unused volume; since, named ones only with all=true.
    let all = !version.at_least(1, 42) || f.get("all").iter().any(|a| flag(Some(a)));
    let (gone, space) = volumes::prune(&node, all, |v| {
        f.labels_match("label", &v.labels) && f.labels_excluded("label!", &v.labels)
    });
    let deleted = if gone.is_empty() { Value::Null } else { json!(gone) };
    Ok(Json(json!({ "VolumesDeleted": deleted, "SpaceReclaimed": space })))
}
