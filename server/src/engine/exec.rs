//! `docker exec`: processes started in a running container through its monitor. The
//! instances live in memory (Docker forgets them on restart too).

use std::collections::HashMap;
use std::sync::Mutex;

use super::Node;
use super::error::{ApiError, ApiResult};
use super::state::ContainerRecord;

#[derive(Debug, Clone)]
pub struct ExecInstance {
    pub id: String,
    pub container: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<String>,
    pub privileged: bool,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
    /// The runtime's ID of this exec once started (for resizes).
    pub started: bool,
    pub console_size: Option<(u16, u16)>,
}

#[derive(Default)]
pub struct Execs(Mutex<HashMap<String, ExecInstance>>);

impl Execs {
    pub fn insert(&self, e: ExecInstance) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).insert(e.id.clone(), e);
    }
    pub fn get(&self, id: &str) -> ApiResult<ExecInstance> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::no_such_exec(id))
    }
    pub fn update(&self, id: &str, f: impl FnOnce(&mut ExecInstance)) {
        if let Some(e) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            f(e);
        }
    }
    pub fn of_container(&self, container: &str) -> Vec<String> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.container == container)
            .map(|e| e.id.clone())
            .collect()
    }
}

/// The process of an exec: the container's own (its capabilities, seccomp, env), with the
/// command, user, directory, extra variables and terminal asked for.
pub fn process_for(
    node: &Node,
    rec: &ContainerRecord,
    cmd: Vec<String>,
    tty: bool,
    env: Option<&[String]>,
    user: Option<&str>,
    workdir: Option<&str>,
) -> ApiResult<oci_spec::runtime::Process> {
    let path = node.paths.container(&rec.id).join("process.json");
    let text = std::fs::read(&path).map_err(|e| ApiError::internal(format!("reading {}: {e}", path.display())))?;
    let mut p: serde_json::Value = serde_json::from_slice(&text).map_err(ApiError::internal)?;
    p["args"] = serde_json::json!(cmd);
    p["terminal"] = serde_json::json!(tty);
    if let Some(extra) = env
        && let Some(list) = p["env"].as_array_mut()
    {
        for e in extra {
            let key = e.split('=').next().unwrap_or("");
            list.retain(|x| x.as_str().and_then(|s| s.split('=').next()) != Some(key));
            list.push(serde_json::json!(e));
        }
    }
    if tty
        && let Some(list) = p["env"].as_array_mut()
        && !list.iter().any(|x| x.as_str().is_some_and(|s| s.starts_with("TERM=")))
    {
        list.push(serde_json::json!("TERM=xterm"));
    }
    if let Some(w) = workdir.filter(|w| !w.is_empty()) {
        p["cwd"] = serde_json::json!(w);
    }
    if let Some(u) = user.filter(|u| !u.is_empty()) {
        let image = node.engine.images.image(&rec.image_id)?;
        let (upper, _) = node.container_layer(&rec.id);
        let mut layers = vec![upper];
        layers.extend(node.engine.images.lower_dirs(&image));
        let view = slipway_runtime::image::view::MergedView::new(layers);
        let (uid, gid, groups) = super::containers::spec::resolve_user(&view, u)?;
        p["user"] = serde_json::json!({ "uid": uid, "gid": gid, "additionalGids": groups });
    }
    serde_json::from_value(p).map_err(ApiError::internal)
}
