//! RUN steps as containers, through the per-container monitors like every other container:
//! an overlay of the image's layers with the step's own upper directory, Docker's default
//! confinement, and the network the caller chose (the host's for the catalog's recipes,
//! so apt reaches its mirror; a node's for a learner's build).

use std::path::PathBuf;

use serde_json::json;

use super::builder::{BoxFuture, BuildError, Progress, RunRequest, StepRunner};
use crate::monitor::OverlayConfig;
use crate::monitor::client::{Containers, CreateOptions, Output};

#[derive(Debug, Clone)]
pub enum RunNetwork {
    /// The host's network namespace.
    Host,
    /// Join this network namespace (a node's).
    Namespace(PathBuf),
    /// A fresh namespace with only loopback.
    None,
}

pub struct ContainerRunner {
    pub containers: Containers,
    pub network: RunNetwork,
    /// Build containers go under this cgroup ("slipway/builds", a playground's...).
    pub cgroup_parent: String,
    /// Files bound into every step (resolv.conf, hosts), as Docker binds them.
    pub resolv_conf: Option<PathBuf>,
    pub hosts: Option<PathBuf>,
    /// Where step logs and bundles go while a step runs.
    pub scratch: PathBuf,
}

impl ContainerRunner {
    fn spec(&self, id: &str, request: &RunRequest) -> Result<oci_spec::runtime::Spec, BuildError> {
        let args: Vec<&str> = request.args.iter().map(String::as_str).collect();
        let spec = crate::spec::docker_default(&args, false);
        let mut v = serde_json::to_value(&spec).map_err(|e| BuildError::Message(e.to_string()))?;
        v["root"]["path"] = json!(request.mountpoint);
        v["hostname"] = json!(&id[..12.min(id.len())]);
        v["process"]["env"] = json!(request.env);
        v["process"]["cwd"] = json!(request.cwd);
        v["process"]["user"] = json!({ "uid": request.uid, "gid": request.gid, "additionalGids": request.groups });
        v["linux"]["cgroupsPath"] = json!(format!("{}/{id}", self.cgroup_parent));
        let namespaces = v["linux"]["namespaces"].as_array_mut().expect("namespaces");
        match &self.network {
            RunNetwork::Host => namespaces.retain(|n| n["type"] != "network"),
            RunNetwork::Namespace(path) => {
                for n in namespaces.iter_mut() {
                    if n["type"] == "network" {
                        n["path"] = json!(path);
                    }
                }
            }
            RunNetwork::None => {}
        }
        let mounts = v["mounts"].as_array_mut().expect("mounts");
        for (file, dest) in [(&self.resolv_conf, "/etc/resolv.conf"), (&self.hosts, "/etc/hosts")] {
            if let Some(f) = file {
                mounts.push(
                    json!({ "destination": dest, "type": "bind", "source": f, "options": ["rbind", "rprivate"] }),
                );
            }
        }
        serde_json::from_value(v).map_err(|e| BuildError::Message(e.to_string()))
    }
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    hex::encode(b)
}

impl StepRunner for ContainerRunner {
    fn run<'a>(&'a self, request: RunRequest, progress: Progress) -> BoxFuture<'a, Result<i32, BuildError>> {
        Box::pin(async move {
            let id = random_id();
            let spec = self.spec(&id, &request)?;
            std::fs::create_dir_all(&self.scratch)
                .map_err(|e| BuildError::Message(format!("{}: {e}", self.scratch.display())))?;
            let log = self.scratch.join(format!("{id}.log"));
            let options = CreateOptions {
                spec,
                bundle: self.scratch.clone(),
                overlay: Some(OverlayConfig {
                    lower: request.lower.clone(),
                    upper: request.upper.clone(),
                    work: request.work.clone(),
                }),
                open_stdin: false,
                init: false,
                log_path: log.clone(),
                log_max_size: Some(0),
                log_max_files: Some(1),
            };
            let rt = |e: crate::error::RuntimeError| BuildError::Runtime(e.to_string());
            self.containers.create(&id, options).await.map_err(rt)?;
            let outcome = async {
                let mut session = self.containers.attach(&id, false, true, true).await.map_err(rt)?;
                self.containers.start(&id).await.map_err(rt)?;
                // The build's reader gone (a client that disconnected) ends the step.
                let mut killed = false;
                loop {
                    let next = tokio::select! {
                        next = session.output.next() => next,
                        _ = progress.closed(), if !killed => {
                            killed = true;
                            tracing::debug!(id, "build output closed: killing the step");
                            let _ = self.containers.signal(&id, nix::sys::signal::Signal::SIGKILL);
                            continue;
                        }
                    };
                    match next.map_err(rt)? {
                        Some(Output::Stdout(d)) | Some(Output::Stderr(d)) => {
                            let _ = progress.send(String::from_utf8_lossy(&d).into_owned());
                        }
                        Some(Output::Exit(exit)) => return Ok(exit.code),
                        Some(Output::Error(e)) => return Err(BuildError::Runtime(e)),
                        None => return self.containers.wait(&id).await.map(|e| e.code).map_err(rt),
                    }
                }
            }
            .await;
            let _ = self.containers.delete(&id, true).await;
            let _ = std::fs::remove_file(&log);
            outcome
        })
    }
}
