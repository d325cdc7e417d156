//! `GET /system/df`: what images, containers, volumes and the build cache take up.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use axum::Router;
use axum::extract::Extension;
use axum::response::Response;
use axum::routing::get;
use serde_json::{Value, json};

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::container_json::summary;
use super::containers::du;
use super::images::{names_of, unix_time};
use super::volumes::volume_json;

pub fn routes() -> Router {
    Router::new().route("/system/df", get(df))
}

async fn df(Extension(node): Extension<Arc<Node>>) -> ApiResult<Response> {
    let node2 = node.clone();
    let body = tokio::task::spawn_blocking(move || usage(&node2))
        .await
        .map_err(ApiError::internal)??;
    Ok(super::json(&body))
}

/// Sizes are measured on disk now (directory walks), as dockerd does for this call.
fn usage(node: &Node) -> ApiResult<Value> {
    let (table, containers, volumes, nets) = {
        let st = node.state();
        (
            st.images.clone(),
            st.containers.values().cloned().collect::<Vec<_>>(),
            st.volumes.values().cloned().collect::<Vec<_>>(),
            st.networks.clone(),
        )
    };
    let mut per_image: HashMap<String, i64> = HashMap::new();
    for c in &containers {
        *per_image.entry(c.image_id.clone()).or_insert(0) += 1;
    }
    let ids: BTreeSet<String> = table.values().cloned().collect();
    let mut images = Vec::new();
    let mut image_size: HashMap<String, i64> = HashMap::new();
    let mut layers = BTreeSet::new();
    let mut layers_size: i64 = 0;
    for id in &ids {
        let Ok(image) = node.engine.images.image(id) else {
            continue;
        };
        let size = image.size() as i64;
        image_size.insert(id.clone(), size);
        // Layers shared between images count once.
        for dir in node.engine.images.lower_dirs(&image) {
            if layers.insert(dir.clone()) {
                layers_size += du(&dir) as i64;
            }
        }
        let names = names_of(&table, id);
        let tags: Vec<&String> = names.iter().filter(|n| !n.contains('@')).collect();
        images.push(json!({
            "Id": id,
            "ParentId": image.record.parent.clone().unwrap_or_default(),
            "RepoTags": tags,
            "RepoDigests": [],
            "Created": unix_time(&image.config.created),
            "Size": size,
            "SharedSize": -1,
            "VirtualSize": size,
            "Labels": image.config.config.labels,
            "Containers": per_image.get(id).copied().unwrap_or(0),
        }));
    }
    let mut cs = Vec::new();
    for c in &containers {
        let mut s = summary(node, c, &nets);
        let rw = du(&node.container_layer(&c.id).0) as i64;
        s["SizeRw"] = json!(rw);
        s["SizeRootFs"] = json!(rw + image_size.get(&c.image_id).copied().unwrap_or(0));
        cs.push(s);
    }
    let mut vs = Vec::new();
    for v in &volumes {
        let refs = containers
            .iter()
            .filter(|c| c.mounts.iter().any(|m| m.name.as_deref() == Some(v.name.as_str())))
            .count();
        let mut j = volume_json(v);
        j["UsageData"] = json!({ "Size": du(&node.paths.volume_data(&v.name)), "RefCount": refs });
        vs.push(j);
    }
    Ok(json!({
        "LayersSize": layers_size,
        "Images": images,
        "Containers": cs,
        "Volumes": vs,
        "BuildCache": [],
    }))
}
