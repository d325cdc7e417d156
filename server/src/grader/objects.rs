//! Checks on a node's engine objects: images, containers, volumes' existence, networks
//! and compose projects. Each reads one snapshot of the node's state and says what holds,
//! or the first thing that does not, in words a learner can act on.

use std::collections::{BTreeMap, HashMap};

use slipway_runtime::image::reference::Reference;

use super::Outcome;
use crate::course::exercise::{ComposeCheck, ContainerCheck, ImageCheck, MountCheck, NetworkCheck, VolumeCheck};
use crate::engine::Node;
use crate::engine::state::{ContainerRecord, State};

const PROJECT: &str = "com.docker.compose.project";
const SERVICE: &str = "com.docker.compose.service";

/// A bollard enum as Docker spells it ("bind", "on-failure", "healthy").
fn spelled<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// `nginx` and `nginx:latest` are one name.
fn familiar(name: &str) -> String {
    Reference::parse(name)
        .map(|r| r.with_default_tag().familiar())
        .unwrap_or_else(|_| name.to_string())
}

fn env_map(env: &[String]) -> HashMap<&str, &str> {
    env.iter().filter_map(|e| e.split_once('=')).collect()
}

fn labels_hold(have: &HashMap<String, String>, want: &BTreeMap<String, String>) -> Result<(), String> {
    for (k, v) in want {
        match have.get(k) {
            Some(h) if h == v => {}
            Some(h) => return Err(format!("its label {k} is “{h}”, not “{v}”")),
            None => return Err(format!("it has no label {k}")),
        }
    }
    Ok(())
}

pub fn image(node: &Node, c: &ImageCheck) -> Outcome {
    let name = familiar(&c.name);
    let Some(id) = node.state().images.get(&name).cloned() else {
        return Outcome::fail(format!("{} has no image named {name}", node.name));
    };
    let image = match node.engine.images.image(&id) {
        Ok(i) => i,
        Err(e) => return Outcome::fail(format!("the image {name} cannot be read: {e}")),
    };
    let cfg = &image.config.config;
    if let Some(want) = c.built {
        let built = crate::engine::builds::built(node, &id);
        if built != want {
            return Outcome::fail(if want {
                format!("{name} was not built in {} with docker build", node.name)
            } else {
                format!("{name} was built in {}, not pulled", node.name)
            });
        }
    }
    if let Some(base) = &c.base {
        let Some(base_id) = node.image_id(&familiar(base)) else {
            return Outcome::fail(format!(
                "{} has no image {base}, the base {name} should have",
                node.name
            ));
        };
        let base_layers = match node.engine.images.image(&base_id) {
            Ok(b) => b.config.rootfs.diff_ids,
            Err(e) => return Outcome::fail(format!("the image {base} cannot be read: {e}")),
        };
        if !image.config.rootfs.diff_ids.starts_with(&base_layers) {
            return Outcome::fail(format!("{name} is not built on {base}"));
        }
    }
    let labels: HashMap<String, String> = cfg.labels.clone().into_iter().collect();
    if let Err(e) = labels_hold(&labels, &c.labels) {
        return Outcome::fail(format!("{name}: {e}"));
    }
    if let Some(r) = c.layers {
        let n = image.config.rootfs.diff_ids.len();
        if !r.holds(n as f64) {
            return Outcome::fail(format!("{name} has {n} layers, not {}", r.describe()));
        }
    }
    if let Some(r) = c.size_mb {
        let mb = image.size() as f64 / 1_000_000.0;
        if !r.holds(mb) {
            return Outcome::fail(format!("{name} is {mb:.1} MB, not {} MB", r.describe()));
        }
    }
    if let Some(u) = &c.user
        && &cfg.user != u
    {
        return Outcome::fail(format!("{name} runs as “{}”, not “{u}”", cfg.user));
    }
    for p in &c.exposes {
        let key = p.port_key();
        if !cfg.exposed_ports.contains_key(&key) {
            return Outcome::fail(format!("{name} does not expose {key}"));
        }
    }
    if let Some(cmd) = &c.cmd
        && cfg.cmd.as_ref() != Some(cmd)
    {
        return Outcome::fail(format!(
            "{name}'s CMD is {:?}, not {cmd:?}",
            cfg.cmd.clone().unwrap_or_default()
        ));
    }
    if let Some(ep) = &c.entrypoint
        && cfg.entrypoint.as_ref() != Some(ep)
    {
        return Outcome::fail(format!(
            "{name}'s ENTRYPOINT is {:?}, not {ep:?}",
            cfg.entrypoint.clone().unwrap_or_default()
        ));
    }
    let env = env_map(&cfg.env);
    for (k, v) in &c.env {
        match env.get(k.as_str()) {
            Some(h) if h == v => {}
            Some(h) => return Outcome::fail(format!("{name} sets {k}={h}, not {k}={v}")),
            None => return Outcome::fail(format!("{name} does not set {k}")),
        }
    }
    if let Some(w) = &c.workdir
        && &cfg.working_dir != w
    {
        return Outcome::fail(format!(
            "{name}'s working directory is “{}”, not “{w}”",
            cfg.working_dir
        ));
    }
    Outcome::pass(format!("{name} is as asked"))
}

/// Why `rec` does not satisfy `c`, or nothing when it does.
fn container_mismatch(node: &Node, st: &State, rec: &ContainerRecord, c: &ContainerCheck) -> Option<String> {
    let who = &rec.name;
    if let Some(n) = &c.name
        && n.trim_start_matches('/') != rec.name
    {
        return Some(format!("it is named {who}"));
    }
    if let Some(img) = &c.image {
        let same_name = familiar(img) == familiar(&rec.image);
        let same_id = st.images.get(&familiar(img)).is_some_and(|id| id == &rec.image_id);
        if !same_name && !same_id {
            return Some(format!("{who} runs {}, not {img}", rec.image));
        }
    }
    if let Some(s) = &c.status
        && &rec.state.status != s
    {
        return Some(format!("{who} is {}, not {s}", rec.state.status));
    }
    if let Some(code) = c.exit_code {
        if rec.state.running() || rec.state.status == "created" {
            return Some(format!("{who} has not exited"));
        }
        if rec.state.exit_code != code {
            return Some(format!("{who} exited with code {}, not {code}", rec.state.exit_code));
        }
    }
    for p in &c.ports {
        let key = format!("{}/{}", p.container, p.protocol.as_deref().unwrap_or("tcp"));
        let bound = if rec.ports.is_empty() {
            rec.host_config
                .port_bindings
                .as_ref()
                .and_then(|b| b.get(&key).cloned().flatten())
                .unwrap_or_default()
        } else {
            rec.ports.get(&key).cloned().unwrap_or_default()
        };
        let ok = bound.iter().any(|b| match p.host {
            None => true,
            Some(h) => b.host_port.as_deref().and_then(|x| x.parse::<u16>().ok()) == Some(h),
        });
        if !ok {
            return Some(match p.host {
                Some(h) => format!("{who} does not publish {key} on port {h}"),
                None => format!("{who} does not publish {key}"),
            });
        }
    }
    let env_list = rec.config.env.clone().unwrap_or_default();
    let env = env_map(&env_list);
    for (k, v) in &c.env {
        match env.get(k.as_str()) {
            Some(h) if h == v => {}
            Some(h) => return Some(format!("{who} has {k}={h}, not {k}={v}")),
            None => return Some(format!("{who} has no {k} variable")),
        }
    }
    for m in &c.mounts {
        if let Some(why) = mount_mismatch(rec, m) {
            return Some(why);
        }
    }
    for n in &c.networks {
        if !rec.networks.contains_key(n) {
            let on: Vec<&str> = rec.networks.keys().map(String::as_str).collect();
            return Some(format!("{who} is not on {n} (it is on {})", list_or_none(&on)));
        }
    }
    if let Some(p) = &c.restart_policy {
        let have = rec
            .host_config
            .restart_policy
            .as_ref()
            .and_then(|r| r.name.as_ref())
            .map(spelled)
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "no".into());
        if &have != p {
            return Some(format!("{who}'s restart policy is {have}, not {p}"));
        }
    }
    if let Some(r) = c.restart_count
        && !r.holds(rec.restart_count as f64)
    {
        return Some(format!(
            "{who} restarted {} times, not {}",
            rec.restart_count,
            r.describe()
        ));
    }
    if let Some(h) = &c.health {
        let have = rec
            .state
            .health
            .as_ref()
            .and_then(|h| h.status.as_ref())
            .map(spelled)
            .unwrap_or_else(|| "none".into());
        if &have != h {
            return Some(if have == "none" {
                format!("{who} has no healthcheck")
            } else {
                format!("{who} is {have}, not {h}")
            });
        }
    }
    if let Err(e) = labels_hold(&rec.labels(), &c.labels) {
        return Some(format!("{who}: {e}"));
    }
    let _ = node;
    None
}

fn mount_mismatch(rec: &ContainerRecord, m: &MountCheck) -> Option<String> {
    let who = &rec.name;
    let dest = m.destination.trim_end_matches('/');
    let Some(have) = rec
        .mounts
        .iter()
        .find(|x| x.destination.as_deref().map(|d| d.trim_end_matches('/')) == Some(dest))
    else {
        // `--tmpfs` mounts are not among Docker's Mounts; they are HostConfig.Tmpfs.
        let tmpfs = rec.host_config.tmpfs.as_ref().and_then(|t| {
            t.iter()
                .find(|(d, _)| d.trim_end_matches('/') == dest)
                .map(|(_, opts)| opts.clone())
        });
        let Some(opts) = tmpfs else {
            return Some(format!("{who} has nothing mounted at {}", m.destination));
        };
        if let Some(t) = m.kind.as_deref().filter(|t| *t != "tmpfs") {
            return Some(format!("{who} has a tmpfs at {}, not a {t}", m.destination));
        }
        if m.volume.is_some() || m.source.is_some() {
            return Some(format!("{who} has a tmpfs at {}", m.destination));
        }
        let ro = opts.split(',').any(|o| o == "ro");
        if let Some(want) = m.read_only
            && want != ro
        {
            return Some(format!(
                "{who}'s tmpfs at {} is {}",
                m.destination,
                if ro { "read-only" } else { "writable" }
            ));
        }
        return None;
    };
    let typ = have.typ.as_ref().map(spelled).unwrap_or_default();
    if let Some(t) = &m.kind
        && &typ != t
    {
        return Some(format!("{who} has a {typ} at {}, not a {t}", m.destination));
    }
    if let Some(v) = &m.volume
        && (typ != "volume" || have.name.as_deref() != Some(v.as_str()))
    {
        return Some(format!("{who} does not mount the volume {v} at {}", m.destination));
    }
    if let Some(s) = &m.source
        && (typ != "bind" || have.source.as_deref().map(|x| x.trim_end_matches('/')) != Some(s.trim_end_matches('/')))
    {
        return Some(format!("{who} does not bind {s} at {}", m.destination));
    }
    if let Some(ro) = m.read_only {
        let rw = have.rw.unwrap_or(true);
        if ro == rw {
            return Some(format!(
                "{who}'s mount at {} is {}",
                m.destination,
                if rw { "writable" } else { "read-only" }
            ));
        }
    }
    None
}

fn list_or_none(v: &[&str]) -> String {
    if v.is_empty() { "none".into() } else { v.join(", ") }
}

pub fn container(node: &Node, c: &ContainerCheck) -> Outcome {
    let st = node.state();
    let mut matching = 0usize;
    let mut closest: Option<String> = None;
    for rec in st.containers.values() {
        match container_mismatch(node, &st, rec, c) {
            None => matching += 1,
            Some(why) => {
                // The most useful explanation is about the container the check names.
                let named = c.name.as_deref().is_some_and(|n| n.trim_start_matches('/') == rec.name);
                if named || closest.is_none() {
                    closest = Some(why);
                }
            }
        }
    }
    let count = c.count.unwrap_or(crate::course::exercise::Range {
        min: Some(1.0),
        max: None,
    });
    if count.holds(matching as f64) {
        return Outcome::pass(match matching {
            1 => "one container is as asked".to_string(),
            n => format!("{n} containers are as asked"),
        });
    }
    if matching == 0 {
        let why = match (&c.name, closest) {
            (Some(n), Some(why)) if st.containers.values().any(|r| &r.name == n) => why,
            (Some(n), _) => format!("there is no container named {n}"),
            (None, Some(why)) if st.containers.len() == 1 => why,
            _ => "no container is as asked".into(),
        };
        return Outcome::fail(why);
    }
    Outcome::fail(format!("{matching} containers are as asked, not {}", count.describe()))
}

pub fn volume(node: &Node, c: &VolumeCheck) -> Outcome {
    let st = node.state();
    let Some(v) = st.volumes.get(&c.name) else {
        return Outcome::fail(format!("there is no volume named {}", c.name));
    };
    if let Err(e) = labels_hold(&v.labels, &c.labels) {
        return Outcome::fail(format!("the volume {}: {e}", c.name));
    }
    Outcome::pass(format!("the volume {} exists", c.name))
}

pub fn network(node: &Node, c: &NetworkCheck) -> Outcome {
    let st = node.state();
    let Some(n) = st.networks.values().find(|n| n.name == c.name) else {
        return Outcome::fail(format!("there is no network named {}", c.name));
    };
    if let Some(d) = &c.driver
        && &n.driver != d
    {
        return Outcome::fail(format!("{} uses the {} driver, not {d}", c.name, n.driver));
    }
    if let Some(s) = &c.subnet
        && n.subnet.as_deref() != Some(s.as_str())
    {
        return Outcome::fail(format!(
            "{}'s subnet is {}, not {s}",
            c.name,
            n.subnet.as_deref().unwrap_or("none")
        ));
    }
    if let Some(i) = c.internal
        && n.internal != i
    {
        return Outcome::fail(format!(
            "{} is {}internal",
            c.name,
            if n.internal { "" } else { "not " }
        ));
    }
    let on = |name: &str| {
        st.containers
            .values()
            .find(|r| r.name == name)
            .and_then(|r| r.networks.get(&c.name))
    };
    for who in &c.containers {
        if on(who).is_none() {
            return Outcome::fail(format!("{who} is not attached to {}", c.name));
        }
    }
    for (who, aliases) in &c.aliases {
        let Some(ep) = on(who) else {
            return Outcome::fail(format!("{who} is not attached to {}", c.name));
        };
        for a in aliases {
            if !ep.aliases.contains(a) {
                return Outcome::fail(format!("{who} is not known as {a} on {}", c.name));
            }
        }
    }
    Outcome::pass(format!("the network {} is as asked", c.name))
}

pub fn compose(node: &Node, c: &ComposeCheck) -> Outcome {
    let st = node.state();
    let p = &c.project;
    let mine: Vec<&ContainerRecord> = st
        .containers
        .values()
        .filter(|r| r.labels().get(PROJECT) == Some(p))
        .collect();
    if mine.is_empty() && (!c.services.is_empty() || !c.replicas.is_empty() || c.healthy.is_some()) {
        return Outcome::fail(format!("the compose project {p} has no containers"));
    }
    let service = |r: &ContainerRecord| r.labels().get(SERVICE).cloned().unwrap_or_default();
    for s in &c.services {
        if !mine.iter().any(|r| &service(r) == s) {
            return Outcome::fail(format!("the project {p} has no service {s}"));
        }
    }
    for (s, n) in &c.replicas {
        let running = mine
            .iter()
            .filter(|r| &service(r) == s && r.state.status == "running")
            .count();
        if running != *n {
            return Outcome::fail(format!("{s} has {running} running replicas, not {n}"));
        }
    }
    if c.healthy == Some(true) {
        if !mine.iter().any(|r| r.state.health.is_some()) {
            return Outcome::fail(format!("no container of {p} has a healthcheck"));
        }
        for r in &mine {
            if let Some(h) = &r.state.health {
                let status = h.status.as_ref().map(spelled).unwrap_or_default();
                if status != "healthy" {
                    return Outcome::fail(format!("{} is {status}, not healthy", r.name));
                }
            }
        }
    }
    for n in &c.networks {
        let made = st.networks.values().any(|x| {
            x.labels.get(PROJECT) == Some(p)
                && (x.labels.get("com.docker.compose.network") == Some(n) || x.name == format!("{p}_{n}"))
        });
        if !made {
            return Outcome::fail(format!("the project {p} has no network {n}"));
        }
    }
    for v in &c.volumes {
        let made = st.volumes.values().any(|x| {
            x.labels.get(PROJECT) == Some(p)
                && (x.labels.get("com.docker.compose.volume") == Some(v) || x.name == format!("{p}_{v}"))
        });
        if !made {
            return Outcome::fail(format!("the project {p} has no volume {v}"));
        }
    }
    Outcome::pass(format!("the compose project {p} is as asked"))
}
