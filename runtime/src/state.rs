//! What the runtime keeps on disk about each container, under its state root (by default
//! /run/slipway/runtime/<id>/state.json): enough for another process (a later `runtime
//! state`, a restarted server) to find the container and tell whether it still runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::error::RuntimeError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Saved {
    pub id: String,
    pub pid: i32,
    /// The init's start time in clock ticks: with the PID, it tells a live container from a
    /// PID the kernel has given to another process since.
    pub start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub cgroup: String,
    /// RFC 3339.
    pub created: String,
    /// Whether `start` has released the workload.
    pub started: bool,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
}

/// The OCI statuses, plus paused (the freezer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

impl Saved {
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.pid)
    }

    pub fn alive(&self) -> bool {
        crate::linux::is_alive(self.pid(), self.start_time)
    }
}

/// Ids become directory names, so they are restricted as runc restricts them.
pub fn validate_id(id: &str) -> Result<(), RuntimeError> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RuntimeError::InvalidId(id.to_string()))
    }
}

/// The state root: one directory per container.
#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: &Path) -> Result<StateDir, RuntimeError> {
        std::fs::create_dir_all(root)
            .map_err(RuntimeError::io(format!("creating the state root {}", root.display())))?;
        Ok(StateDir {
            root: root.to_path_buf(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates the container's directory; fails if the id is taken.
    pub fn claim(&self, id: &str) -> Result<PathBuf, RuntimeError> {
        validate_id(id)?;
        let dir = self.dir(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Err(RuntimeError::AlreadyExists(id.into())),
            Err(e) => Err(RuntimeError::io(format!("creating {}", dir.display()))(e)),
        }
    }

    pub fn save(&self, saved: &Saved) -> Result<(), RuntimeError> {
        let dir = self.dir(&saved.id);
        let tmp = dir.join("state.json.tmp");
        let json = serde_json::to_vec_pretty(saved).expect("state serialises");
        std::fs::write(&tmp, json).map_err(RuntimeError::io(format!("writing {}", tmp.display())))?;
        std::fs::rename(&tmp, dir.join("state.json")).map_err(RuntimeError::io("saving the state"))
    }

    pub fn load(&self, id: &str) -> Result<Saved, RuntimeError> {
        validate_id(id)?;
        let path = self.dir(id).join("state.json");
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(RuntimeError::NotFound(id.into()));
            }
            Err(e) => return Err(RuntimeError::io(format!("reading {}", path.display()))(e)),
        };
        serde_json::from_slice(&text).map_err(|e| RuntimeError::InvalidSpec(format!("{}: {e}", path.display())))
    }

    pub fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        match std::fs::remove_dir_all(self.dir(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io(format!("removing the state of {id}"))(e)),
        }
    }

    pub fn list(&self) -> Vec<String> {
        let mut ids: Vec<String> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().join("state.json").is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        ids
    }
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_directory_names() {
        for ok in ["web", "a.b_c-1", &"x".repeat(128)] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "../x", "sp ace", &"x".repeat(129)] {
            assert!(validate_id(bad).is_err(), "{bad}");
        }
    }
}
