//! Containers as Docker has them: made from what `create` sends merged with the image's
//! defaults, run by the runtime (see `run`), named, renamed and removed. No HTTP here.

pub mod binds;
pub mod health;
pub mod mounts;
pub mod names;
pub mod run;
pub mod spec;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bollard_stubs::models::{ContainerCreateBody, HostConfig, RestartPolicyNameEnum};

use super::Node;
use super::error::{ApiError, ApiResult};
use super::state::{ContainerRecord, RunState, State, UNIX_EPOCH_TIME, new_id, now};

/// Docker's rule for container names.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub fn name_conflict(name: &str, id: &str) -> ApiError {
    ApiError::Conflict(format!(
        "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    ))
}

/// Capabilities a learner may add: they act only inside the container's own namespaces.
const ADDABLE_CAPS: &[&str] = &[
    "NET_ADMIN",
    "NET_RAW",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "AUDIT_WRITE",
    "SETFCAP",
    "MKNOD",
    "IPC_LOCK",
    "KILL",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "SETGID",
    "SETUID",
    "SETPCAP",
];

/// Refuses what would let a container out of the node: privileged mode, devices, extra
/// powers over the kernel, the host's namespaces beyond the node's.
fn check_confinement(hc: &HostConfig) -> ApiResult<()> {
    let refuse = |what: &str| {
        Err(ApiError::Forbidden(format!(
            "{what} is not available in a Slipway playground: containers here share a machine with other learners"
        )))
    };
    if hc.privileged == Some(true) {
        return refuse("--privileged");
    }
    if hc.devices.as_ref().is_some_and(|d| !d.is_empty()) {
        return refuse("--device");
    }
    for cap in hc.cap_add.iter().flatten() {
        let c = cap.trim_start_matches("CAP_").to_ascii_uppercase();
        if c == "ALL" || !ADDABLE_CAPS.contains(&c.as_str()) {
            return refuse(&format!("--cap-add {cap}"));
        }
    }
    for opt in hc.security_opt.iter().flatten() {
        if opt.contains("unconfined") {
            return refuse(&format!("--security-opt {opt}"));
        }
    }
    if matches!(
        hc.cgroupns_mode,
        Some(bollard_stubs::models::HostConfigCgroupnsModeEnum::HOST)
    ) {
        return refuse("--cgroupns host");
    }
    Ok(())
}

/// Makes a container record (nothing runs yet), as `POST /containers/create`.
pub fn create(node: &Arc<Node>, name: Option<&str>, mut body: ContainerCreateBody) -> ApiResult<ContainerRecord> {
    let image_name = body
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or_else(|| ApiError::bad("config.Image: no image given"))?;
    let image = node.resolve_image(&image_name).map_err(|e| match e {
        // The CLI pulls on exactly this message and then creates again.
        ApiError::NotFound(_) => ApiError::no_such_image(&qualified(&image_name)),
        other => other,
    })?;
    let mut host_config = body.host_config.take().unwrap_or_default();
    check_confinement(&host_config)?;
    if let Some(mem) = host_config.memory.filter(|m| *m > 0) {
        if mem < 6 * 1024 * 1024 {
            return Err(ApiError::bad("Minimum memory limit allowed is 6MB"));
        }
        if mem as u64 > node.engine.memory_limit {
            return Err(ApiError::Limit(format!(
                "memory limit {} MiB is more than this playground's memory limit of {} MiB",
                mem / (1024 * 1024),
                node.engine.memory_limit / (1024 * 1024)
            )));
        }
    }
    if let Some(cpus) = host_config.nano_cpus.filter(|c| *c > 0) {
        let have = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as i64;
        if cpus > have * 1_000_000_000 {
            return Err(ApiError::bad(format!(
                "range of CPUs is from 0.01 to {have}.00, as there are only {have} CPUs available"
            )));
        }
    }
    if let Some(policy) = &host_config.restart_policy
        && matches!(
            policy.name,
            Some(RestartPolicyNameEnum::ALWAYS) | Some(RestartPolicyNameEnum::UNLESS_STOPPED)
        )
        && host_config.auto_remove == Some(true)
    {
        return Err(ApiError::bad(
            "conflicting options: cannot specify both --restart and --rm",
        ));
    }
    let networking = body.networking_config.take();
    let cfg = &image.config.config;

    // The image's defaults under what the client sent, as Docker merges them.
    if body.env.is_none() || !cfg.env.is_empty() {
        let mut env: Vec<String> = cfg.env.clone();
        for e in body.env.take().unwrap_or_default() {
            let key = e.split('=').next().unwrap_or("").to_string();
            env.retain(|x| x.split('=').next() != Some(key.as_str()));
            env.push(e);
        }
        body.env = Some(env);
    }
    let entrypoint_given = body.entrypoint.is_some();
    if body.entrypoint.is_none() {
        body.entrypoint = cfg.entrypoint.clone();
    }
    // An explicit entrypoint resets the image's CMD, as Docker does.
    if body.cmd.is_none() && !entrypoint_given {
        body.cmd = cfg.cmd.clone();
    }
    if body
        .entrypoint
        .as_ref()
        .is_some_and(|e| e.len() == 1 && e[0].is_empty())
    {
        body.entrypoint = None;
    }
    if body.working_dir.as_deref().unwrap_or("").is_empty() && !cfg.working_dir.is_empty() {
        body.working_dir = Some(cfg.working_dir.clone());
    }
    if body.user.as_deref().unwrap_or("").is_empty() && !cfg.user.is_empty() {
        body.user = Some(cfg.user.clone());
    }
    let mut exposed: Vec<String> = cfg.exposed_ports.keys().cloned().collect();
    for p in body.exposed_ports.take().unwrap_or_default() {
        let p = if p.contains('/') { p } else { format!("{p}/tcp") };
        if !exposed.contains(&p) {
            exposed.push(p);
        }
    }
    exposed.sort();
    body.exposed_ports = Some(exposed);
    let mut volumes: Vec<String> = cfg.volumes.keys().cloned().collect();
    for v in body.volumes.take().unwrap_or_default() {
        if !volumes.contains(&v) {
            volumes.push(v);
        }
    }
    body.volumes = Some(volumes);
    let mut labels: HashMap<String, String> = cfg.labels.clone().into_iter().collect();
    labels.extend(body.labels.take().unwrap_or_default());
    body.labels = Some(labels);
    if body.stop_signal.as_deref().unwrap_or("").is_empty() && !cfg.stop_signal.is_empty() {
        body.stop_signal = Some(cfg.stop_signal.clone());
    }
    if body.healthcheck.is_none()
        && let Some(h) = &cfg.healthcheck
    {
        body.healthcheck = Some(bollard_stubs::models::HealthConfig {
            test: Some(h.test.clone()),
            interval: Some(h.interval),
            timeout: Some(h.timeout),
            retries: Some(h.retries as i64),
            start_period: Some(h.start_period),
            start_interval: Some(h.start_interval),
        });
    }
    let args: Vec<String> = body
        .entrypoint
        .clone()
        .unwrap_or_default()
        .into_iter()
        .chain(body.cmd.clone().unwrap_or_default())
        .collect();
    if args.is_empty() {
        return Err(ApiError::bad("no command specified"));
    }
    body.image = Some(image_name.clone());
    if host_config.network_mode.as_deref().unwrap_or("").is_empty() {
        host_config.network_mode = Some("bridge".into());
    }
    if host_config.restart_policy.is_none() {
        host_config.restart_policy = Some(bollard_stubs::models::RestartPolicy {
            name: Some(RestartPolicyNameEnum::NO),
            maximum_retry_count: Some(0),
        });
    }
    if host_config.log_config.is_none() {
        host_config.log_config = Some(bollard_stubs::models::HostConfigLogConfig {
            typ: Some("json-file".into()),
            config: Some(HashMap::new()),
        });
    }

    let id = new_id();
    let mut record = ContainerRecord {
        id: id.clone(),
        name: String::new(),
        created: now(),
        image: image_name,
        image_id: image.id().to_string(),
        path: args[0].clone(),
        args: args[1..].to_vec(),
        config: body,
        host_config,
        networks: BTreeMap::new(),
        ports: BTreeMap::new(),
        mounts: Vec::new(),
        state: RunState {
            status: "created".into(),
            started_at: UNIX_EPOCH_TIME.into(),
            finished_at: UNIX_EPOCH_TIME.into(),
            ..Default::default()
        },
        restart_count: 0,
        runtime_id: String::new(),
        stopped_by_user: false,
    };
    if record.config.hostname.as_deref().unwrap_or("").is_empty() {
        record.config.hostname = Some(id[..12].to_string());
    }
    record.runtime_id = format!("pgc-{}-{}-{}", node.playground, node.name, &id[..12]);
    super::networks::plan(node, &mut record, networking)?;
    mounts::plan(node, &mut record, &image)?;

    let mut st = node.state();
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) => {
            let n = n.trim_start_matches('/');
            if !valid_name(n) {
                return Err(ApiError::bad(format!(
                    "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                )));
            }
            if let Some(other) = st.name_taken(n) {
                return Err(name_conflict(n, &other.id));
            }
            n.to_string()
        }
        None => names::generate(|n| st.name_taken(n).is_some()),
    };
    record.name = name;
    State::save_container(&node.paths, &record)?;
    st.containers.insert(id.clone(), record.clone());
    drop(st);
    node.emit("container", "create", &id, container_attributes(&record));
    Ok(record)
}

/// `nginx` → `nginx:latest`, as the CLI names an image it is about to pull.
pub fn qualified(name: &str) -> String {
    match slipway_runtime::image::reference::Reference::parse(name) {
        Ok(r) if !name.contains('@') => r.with_default_tag().familiar(),
        _ => name.to_string(),
    }
}

/// The attributes Docker puts on a container's events: its name, image and labels.
pub fn container_attributes(c: &ContainerRecord) -> Vec<(String, String)> {
    let mut attrs: Vec<(String, String)> = c.labels().into_iter().collect();
    attrs.push(("name".into(), c.name.clone()));
    attrs.push(("image".into(), c.image.clone()));
    attrs
}

/// `docker rename`.
pub fn rename(node: &Node, key: &str, new_name: &str) -> ApiResult<()> {
    let new_name = new_name.trim_start_matches('/');
    if !valid_name(new_name) {
        return Err(ApiError::bad(format!(
            "Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        )));
    }
    let c = node.container(key)?;
    let mut st = node.state();
    if c.name == new_name {
        return Err(ApiError::bad(
            "Renaming a container with the same name as its current name",
        ));
    }
    if let Some(other) = st.name_taken(new_name) {
        return Err(name_conflict(new_name, &other.id));
    }
    let rec = st
        .containers
        .get_mut(&c.id)
        .ok_or_else(|| ApiError::no_such_container(key))?;
    let old = std::mem::replace(&mut rec.name, new_name.to_string());
    State::save_container(&node.paths, rec)?;
    let mut attrs = container_attributes(rec);
    attrs.push(("oldName".into(), format!("/{old}")));
    drop(st);
    node.emit("container", "rename", &c.id, attrs);
    Ok(())
}
