//! The runtime spec of one run of a container: Docker's defaults (capabilities, seccomp,
//! masked paths) with what the container's record asks for.

use std::path::PathBuf;

use bollard_stubs::models::ContainerCreateBody;
use serde_json::json;
use slipway_runtime::image::view::MergedView;

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::super::state::ContainerRecord;
use super::mounts;

/// How a run joins namespaces that already exist.
#[derive(Debug, Default, Clone)]
pub struct Joins {
    /// `--network host` (the node's), `container:<x>`: a netns path to join.
    pub net: Option<PathBuf>,
    pub pid: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub uts: Option<PathBuf>,
}

/// `user`, `user:group`, `uid:gid`, resolved with the container's own /etc/passwd.
pub fn resolve_user(view: &MergedView, user: &str) -> ApiResult<(u32, u32, Vec<u32>)> {
    if user.is_empty() {
        return Ok((0, 0, Vec::new()));
    }
    slipway_runtime::build::builder::resolve_user(view, user).map_err(|e| {
        ApiError::bad(format!(
            "unable to find user {user}: no matching entries in passwd file ({e})"
        ))
    })
}

fn signal_number(name: &str) -> Option<i32> {
    super::run::parse_signal(name).map(|s| s as i32)
}

/// The spec for `record`'s next run, with its root at `rootfs`.
pub fn build(
    node: &Node,
    record: &ContainerRecord,
    view: &MergedView,
    rootfs: &std::path::Path,
    files: &std::path::Path,
    joins: &Joins,
) -> ApiResult<oci_spec::runtime::Spec> {
    let cfg: &ContainerCreateBody = &record.config;
    let hc = &record.host_config;
    let mut args = vec![record.path.clone()];
    args.extend(record.args.iter().cloned());
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let tty = cfg.tty.unwrap_or(false);
    let mut v = serde_json::to_value(slipway_runtime::spec::docker_default(&argv, tty)).map_err(ApiError::internal)?;

    v["root"]["path"] = json!(rootfs);
    v["root"]["readonly"] = json!(hc.readonly_rootfs.unwrap_or(false));
    v["hostname"] = json!(cfg.hostname.clone().unwrap_or_else(|| record.id[..12].to_string()));

    let mut env: Vec<String> = cfg.env.clone().unwrap_or_default();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, slipway_runtime::spec::DEFAULT_PATH.into());
    }
    env.retain(|e| !e.starts_with("HOSTNAME="));
    env.insert(
        1.min(env.len()),
        format!("HOSTNAME={}", v["hostname"].as_str().unwrap_or("")),
    );
    if tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        // The runtime fills HOME from /etc/passwd when it is missing.
    }
    v["process"]["env"] = json!(env);
    let cwd = cfg
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    if !cwd.starts_with('/') {
        return Err(ApiError::bad(format!(
            "the working directory '{cwd}' is invalid, it needs to be an absolute path"
        )));
    }
    v["process"]["cwd"] = json!(cwd);
    let (uid, gid, groups) = resolve_user(view, cfg.user.as_deref().unwrap_or(""))?;
    let mut extra: Vec<u32> = groups;
    for g in hc.group_add.iter().flatten() {
        match g.parse::<u32>().ok().or_else(|| view.lookup_group(g)) {
            Some(gid) => extra.push(gid),
            None => return Err(ApiError::bad(format!("Unable to find group {g}"))),
        }
    }
    v["process"]["user"] = json!({ "uid": uid, "gid": gid, "additionalGids": extra });

    // Capabilities: Docker's 14, with --cap-add (checked at create) and --cap-drop.
    let mut caps: Vec<String> = v["process"]["capabilities"]["bounding"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_string)).collect())
        .unwrap_or_default();
    for add in hc.cap_add.iter().flatten() {
        let c = format!("CAP_{}", add.trim_start_matches("CAP_").to_ascii_uppercase());
        if !caps.contains(&c) {
            caps.push(c);
        }
    }
    for drop in hc.cap_drop.iter().flatten() {
        let d = drop.trim_start_matches("CAP_").to_ascii_uppercase();
        if d == "ALL" {
            caps.clear();
        } else {
            caps.retain(|c| c != &format!("CAP_{d}"));
        }
    }
    for set in ["bounding", "effective", "permitted"] {
        v["process"]["capabilities"][set] = json!(caps);
    }
    if hc
        .security_opt
        .iter()
        .flatten()
        .any(|o| o.starts_with("no-new-privileges"))
    {
        v["process"]["noNewPrivileges"] = json!(true);
    }
    if let Some(sig) = cfg.stop_signal.as_deref().and_then(signal_number) {
        v["annotations"] = json!({ "org.opencontainers.image.stopSignal": sig.to_string() });
    }

    // Namespaces: new ones, or the node's / another container's.
    let namespaces = v["linux"]["namespaces"]
        .as_array_mut()
        .ok_or_else(|| ApiError::internal("no namespaces"))?;
    for ns in namespaces.iter_mut() {
        let path = match ns["type"].as_str() {
            Some("network") => joins.net.clone(),
            Some("pid") => joins.pid.clone(),
            Some("ipc") => joins.ipc.clone(),
            Some("uts") => joins.uts.clone(),
            _ => None,
        };
        if let Some(p) = path {
            ns["path"] = json!(p);
        }
    }
    if joins.uts.is_some() {
        // Sharing the node's UTS namespace means sharing its hostname.
        v.as_object_mut().map(|o| o.remove("hostname"));
    }

    // Resources, inside the playground's own limits (its cgroup is the parent).
    let mut resources = v["linux"]["resources"].clone();
    if let Some(mem) = hc.memory.filter(|m| *m > 0) {
        resources["memory"]["limit"] = json!(mem);
        if let Some(swap) = hc.memory_swap.filter(|s| *s > 0) {
            resources["memory"]["swap"] = json!(swap);
        }
    }
    if let Some(r) = hc.memory_reservation.filter(|m| *m > 0) {
        resources["memory"]["reservation"] = json!(r);
    }
    let period = hc.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
    if let Some(nano) = hc.nano_cpus.filter(|c| *c > 0) {
        resources["cpu"]["period"] = json!(period);
        resources["cpu"]["quota"] = json!(nano * period / 1_000_000_000);
    } else if let Some(q) = hc.cpu_quota.filter(|q| *q > 0) {
        resources["cpu"]["period"] = json!(period);
        resources["cpu"]["quota"] = json!(q);
    }
    if let Some(shares) = hc.cpu_shares.filter(|s| *s > 0) {
        resources["cpu"]["shares"] = json!(shares);
    }
    if let Some(set) = hc.cpuset_cpus.as_ref().filter(|s| !s.is_empty()) {
        resources["cpu"]["cpus"] = json!(set);
    }
    if let Some(p) = hc.pids_limit.filter(|p| *p > 0) {
        resources["pids"]["limit"] = json!(p);
    }
    v["linux"]["resources"] = resources;
    v["linux"]["cgroupsPath"] = json!(cgroup_path(node, record));

    // Mounts: Docker's, the container's files (hosts, hostname, resolv.conf), its own.
    let mounts_v = v["mounts"]
        .as_array_mut()
        .ok_or_else(|| ApiError::internal("no mounts"))?;
    if let Some(size) = hc.shm_size.filter(|s| *s > 0) {
        for m in mounts_v.iter_mut() {
            if m["destination"] == "/dev/shm"
                && let Some(opts) = m["options"].as_array_mut()
            {
                opts.retain(|o| !o.as_str().is_some_and(|s| s.starts_with("size=")));
                opts.push(json!(format!("size={size}")));
            }
        }
    }
    for (file, dest) in [
        ("hosts", "/etc/hosts"),
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        if joins.uts.is_some() && file == "hostname" {
            continue;
        }
        mounts_v.push(json!({ "destination": dest, "type": "bind", "source": files.join(file), "options": ["rbind", "rprivate"] }));
    }
    mounts_v.extend(mounts::oci_mounts(node, record));
    serde_json::from_value(v).map_err(ApiError::internal)
}

/// Each container's cgroup sits under the playground's, beside the nodes'.
pub fn cgroup_path(node: &Node, record: &ContainerRecord) -> String {
    format!(
        "{}/pg-{}/{}-c{}",
        node.engine.cgroup_root,
        node.playground,
        node.name,
        &record.id[..12]
    )
}
