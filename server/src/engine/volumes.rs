//! Volumes of the local driver: a directory each on the playground's storage.

use std::collections::HashMap;

use super::Node;
use super::error::{ApiError, ApiResult};
use super::state::{State, VolumeRecord, new_id, now};

/// A new anonymous volume (`-v /data`, an image's VOLUME).
pub fn create_anonymous(node: &Node) -> ApiResult<VolumeRecord> {
    let name = new_id();
    let v = VolumeRecord {
        name: name.clone(),
        driver: "local".into(),
        labels: HashMap::from([("com.docker.volume.anonymous".to_string(), String::new())]),
        options: HashMap::new(),
        created_at: now(),
        anonymous: true,
    };
    State::save_volume(&node.paths, &v)?;
    node.state().volumes.insert(name.clone(), v.clone());
    node.emit("volume", "create", &name, [("driver".to_string(), "local".to_string())]);
    Ok(v)
}

/// The named volume, made if missing; whether it was made.
pub fn ensure(node: &Node, name: &str) -> ApiResult<(VolumeRecord, bool)> {
    if let Some(v) = node.state().volumes.get(name) {
        return Ok((v.clone(), false));
    }
    if name.len() < 2 || !name.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad(format!(
            "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    let v = VolumeRecord {
        name: name.to_string(),
        driver: "local".into(),
        labels: HashMap::new(),
        options: HashMap::new(),
        created_at: now(),
        anonymous: false,
    };
    State::save_volume(&node.paths, &v)?;
    node.state().volumes.insert(name.to_string(), v.clone());
    node.emit("volume", "create", name, [("driver".to_string(), "local".to_string())]);
    Ok((v, true))
}

/// `docker rm -v`: the container's anonymous volumes go with it (if no other container
/// mounts them).
pub fn remove_anonymous_of(node: &Node, rec: &super::state::ContainerRecord) {
    for m in &rec.mounts {
        let Some(name) = m.name.as_deref() else { continue };
        let anonymous = node.state().volumes.get(name).is_some_and(|v| v.anonymous);
        let used = node
            .state()
            .containers
            .values()
            .any(|c| c.id != rec.id && c.mounts.iter().any(|o| o.name.as_deref() == Some(name)));
        if anonymous && !used {
            node.state().volumes.remove(name);
            let _ = std::fs::remove_dir_all(node.paths.volume(name));
            node.emit("volume", "destroy", name, [("driver".to_string(), "local".to_string())]);
        }
    }
}
