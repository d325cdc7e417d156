//! The node's record of its finished builds: which images `docker build` (or compose)
//! made here, and how many steps came from the cache. Docker keeps no such record; the
//! grader needs it ("built here", "the rebuild reused its cache"), so each build also
//! emits a `build` event on the node's bus, which `docker events` never shows.

use serde::{Deserialize, Serialize};

use super::Node;
use super::state::{read_json, write_json};

/// Builds kept per node; older ones are forgotten.
const KEPT: usize = 200;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BuildRecord {
    pub image_id: String,
    pub tags: Vec<String>,
    /// Steps that could come from the cache, and those that did.
    pub steps: usize,
    pub cached: usize,
    pub time: String,
}

fn path(node: &Node) -> std::path::PathBuf {
    node.paths.root.join("builds.json")
}

pub fn list(node: &Node) -> Vec<BuildRecord> {
    read_json(&path(node)).unwrap_or_default()
}

/// Whether `image_id` was built in this node.
pub fn built(node: &Node, image_id: &str) -> bool {
    list(node).iter().any(|b| b.image_id == image_id)
}

/// Records a finished build and tells the grader.
pub fn record(node: &Node, image_id: &str, tags: &[String], steps: usize, cached: usize) {
    let mut all = list(node);
    if all.len() >= KEPT {
        all.remove(0);
    }
    let time = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    all.push(BuildRecord {
        image_id: image_id.to_string(),
        tags: tags.to_vec(),
        steps,
        cached,
        time,
    });
    if let Err(e) = write_json(&path(node), &all) {
        tracing::warn!(error = format!("{e:#}"), "saving the node's build record");
    }
    node.emit(
        "build",
        "build",
        image_id,
        [
            ("name".to_string(), tags.join(",")),
            ("steps".to_string(), steps.to_string()),
            ("cached".to_string(), cached.to_string()),
            ("cache_hit".to_string(), (cached > 0).to_string()),
        ],
    );
}
