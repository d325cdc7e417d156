//! A throw-away lab: `slipway serve` over given lessons with the catalog's images, a
//! config and a cgroup root of its own, driven through the admin API. What the grading
//! benchmark and lesson CI stand on. On drop, its playgrounds are removed through the API,
//! the server stops, and its cgroup root and work directory go, on errors too.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use super::ServerProcess;

pub struct Lab {
    server: Option<ServerProcess>,
    pub http: reqwest::blocking::Client,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    pub token: String,
    playgrounds: Mutex<Vec<String>>,
    cgroup_root: String,
    work: PathBuf,
}

/// Removes cgroup directories, given relative to every hierarchy's root, in order
/// (children first); waits up to 5 s for the last processes in them to go.
pub fn remove_cgroup_dirs(dirs: &[String]) {
    for _ in 0..50 {
        let mut left = false;
        for h in std::fs::read_dir("/sys/fs/cgroup").into_iter().flatten().flatten() {
            for d in dirs {
                let dir = h.path().join(d);
                if dir.exists() && std::fs::remove_dir(&dir).is_err() {
                    left = true;
                }
            }
        }
        if !left {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The catalog's image store, or why it cannot be used.
pub fn catalog_images(catalog_dir: &Path) -> Result<PathBuf> {
    let images = catalog_dir.join("images");
    if !images.join("index.json").is_file() {
        bail!(
            "no image store at {}: build the catalog first (slipway images --data-dir {} ensure), or name it with --catalog-dir or SLIPWAY_CATALOG_DIR",
            images.display(),
            catalog_dir.display()
        );
    }
    Ok(images)
}

impl Lab {
    /// `name` makes the cgroup root and work directory recognisable (`slipway-NAME-PID`);
    /// `limits` are lines of the `[playgrounds]` table.
    pub fn start(name: &str, lessons: &Path, catalog_dir: &Path, limits: &str) -> Result<Lab> {
        if !nix::unistd::Uid::effective().is_root() {
            bail!("this needs root (playgrounds are containers)");
        }
        let images = catalog_images(catalog_dir)?;
        let tag = format!("slipway-{name}-{}", std::process::id());
        let work = std::env::temp_dir().join(&tag);
        std::fs::create_dir_all(&work)?;
        let config = work.join("slipway.toml");
        std::fs::write(&config, format!("[playgrounds]\n{limits}\n"))?;
        let mut lab = Lab {
            server: None,
            http: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(600))
                .build()?,
            base: String::new(),
            token: String::new(),
            playgrounds: Mutex::new(Vec::new()),
            cgroup_root: tag,
            work,
        };
        let server = ServerProcess::start_with_env(
            lessons,
            &[
                ("SLIPWAY_IMAGES", &images.display().to_string()),
                ("SLIPWAY_CONFIG", &config.display().to_string()),
                ("SLIPWAY_CGROUP_ROOT", &lab.cgroup_root),
            ],
        )?;
        lab.base = format!("http://{}", server.addr);
        lab.token = server.info()?["admin_token"]
            .as_str()
            .context("no admin token in server.json")?
            .to_string();
        lab.server = Some(server);
        Ok(lab)
    }

    /// A scratch directory of the lab's, removed with it.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// An admin API call: its status and its JSON (or its text, as a JSON string).
    pub fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<(u16, Value)> {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().with_context(|| format!("calling {path}"))?;
        let status = resp.status().as_u16();
        let text = resp.text()?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::String(text))))
    }

    /// A new playground's record.
    pub fn create_playground(&self, nodes: usize) -> Result<Value> {
        let (status, v) = self.call(
            reqwest::Method::POST,
            "/api/playgrounds",
            Some(json!({ "nodes": nodes })),
        )?;
        let id = v["id"].as_str().filter(|_| status == 201);
        let Some(id) = id else {
            bail!("no playground: HTTP {status}: {v}");
        };
        self.playgrounds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(id.to_string());
        Ok(v)
    }

    pub fn remove_playground(&self, id: &str) -> Result<()> {
        self.playgrounds
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|p| p != id);
        match self.call(reqwest::Method::DELETE, &format!("/api/playgrounds/{id}"), None)? {
            (204, _) => Ok(()),
            (status, v) => bail!("removing playground {id}: HTTP {status}: {v}"),
        }
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let left = std::mem::take(&mut *self.playgrounds.lock().unwrap_or_else(|p| p.into_inner()));
        for id in left {
            if let Err(e) = self.remove_playground(&id) {
                eprintln!("warning: {e:#}");
            }
        }
        self.server = None;
        remove_cgroup_dirs(std::slice::from_ref(&self.cgroup_root));
        let _ = std::fs::remove_dir_all(&self.work);
    }
}
