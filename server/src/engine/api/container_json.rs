//! Containers as the API shows them: `inspect` and the `ps` summaries, in Docker's shape
//! (lists and maps present and empty, never null, where clients read them).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::super::Node;
use super::super::state::{ContainerRecord, NetworkRecord};

fn parse_time(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// Docker's human durations (go-units' HumanDuration).
pub fn human_duration(d: time::Duration) -> String {
    let secs = d.whole_seconds();
    if secs < 1 {
        return "Less than a second".into();
    }
    if secs == 1 {
        return "1 second".into();
    }
    if secs < 60 {
        return format!("{secs} seconds");
    }
    let mins = d.whole_minutes();
    if mins == 1 {
        return "About a minute".into();
    }
    if mins < 60 {
        return format!("{mins} minutes");
    }
    let hours = d.whole_hours();
    if hours == 1 {
        return "About an hour".into();
    }
    if hours < 48 {
        return format!("{hours} hours");
    }
    let days = hours / 24;
    if days < 14 {
        return format!("{days} days");
    }
    if days < 60 {
        return format!("{} weeks", days / 7);
    }
    if days < 365 * 2 {
        return format!("{} months", days / 30);
    }
    format!("{} years", days / 365)
}

/// The `Status` column of `docker ps`.
pub fn status_text(c: &ContainerRecord) -> String {
    let now = OffsetDateTime::now_utc();
    let since = |s: &str| parse_time(s).map(|t| human_duration(now - t)).unwrap_or_default();
    match c.state.status.as_str() {
        "running" | "paused" => {
            let mut s = format!("Up {}", since(&c.state.started_at));
            if let Some(h) = c.state.health.as_ref().and_then(|h| h.status) {
                let h = h.to_string();
                if h == "starting" {
                    s.push_str(" (health: starting)");
                } else if h != "none" && !h.is_empty() {
                    s.push_str(&format!(" ({h})"));
                }
            }
            if c.state.status == "paused" {
                s.push_str(" (Paused)");
            }
            s
        }
        "restarting" => format!("Restarting ({}) {} ago", c.state.exit_code, since(&c.state.finished_at)),
        "exited" if !c.state.finished_at.starts_with("0001") => {
            format!("Exited ({}) {} ago", c.state.exit_code, since(&c.state.finished_at))
        }
        "removing" => "Removal In Progress".into(),
        "dead" => "Dead".into(),
        _ => "Created".into(),
    }
}

fn endpoint_json(name: &str, c: &ContainerRecord, nets: &BTreeMap<String, NetworkRecord>) -> Value {
    let Some(ep) = c.networks.get(name) else {
        return json!({});
    };
    let ip = ep.ip.map(|i| i.to_string()).unwrap_or_default();
    let mut dns_names: Vec<String> = Vec::new();
    if nets.get(name).is_some_and(|n| n.has_dns()) {
        dns_names.push(c.name.clone());
        dns_names.extend(ep.aliases.iter().cloned());
    }
    json!({
        "IPAMConfig": ep.requested_ip.map(|ip| json!({ "IPv4Address": ip.to_string() })),
        "Links": if ep.links.is_empty() { Value::Null } else { json!(ep.links) },
        "Aliases": if ep.aliases.is_empty() { Value::Null } else { json!(ep.aliases) },
        "MacAddress": if ep.ip.is_some() { ep.mac.clone() } else { String::new() },
        "DriverOpts": null,
        "NetworkID": ep.network_id,
        "EndpointID": if ep.ip.is_some() { ep.endpoint_id.clone() } else { String::new() },
        "Gateway": ep.gateway.map(|g| g.to_string()).unwrap_or_default(),
        "IPAddress": ip,
        "IPPrefixLen": if ep.ip.is_some() { ep.prefix } else { 0 },
        "IPv6Gateway": "",
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "DNSNames": if dns_names.is_empty() { Value::Null } else { json!(dns_names) },
    })
}

fn networks_by_name(node: &Node) -> BTreeMap<String, NetworkRecord> {
    node.state()
        .networks
        .values()
        .map(|n| (n.name.clone(), n.clone()))
        .collect()
}

/// `Ports` of inspect: every exposed port, with its bindings or null.
fn ports_map(c: &ContainerRecord) -> Value {
    let mut m = serde_json::Map::new();
    if !c.state.running() {
        return json!({});
    }
    for p in c.config.exposed_ports.iter().flatten() {
        m.insert(p.clone(), Value::Null);
    }
    for (p, bindings) in &c.ports {
        let list: Vec<Value> = bindings
            .iter()
            .map(|b| json!({ "HostIp": b.host_ip.clone().unwrap_or_default(), "HostPort": b.host_port.clone().unwrap_or_default() }))
            .collect();
        m.insert(p.clone(), json!(list));
    }
    Value::Object(m)
}

pub fn inspect(node: &Node, c: &ContainerRecord, size: bool) -> Value {
    let nets = networks_by_name(node);
    let networks: serde_json::Map<String, Value> = c
        .networks
        .keys()
        .map(|n| (n.clone(), endpoint_json(n, c, &nets)))
        .collect();
    let default = c.networks.get("bridge");
    let mut config = serde_json::to_value(&c.config).unwrap_or_else(|_| json!({}));
    if let Some(o) = config.as_object_mut() {
        o.remove("HostConfig");
        o.remove("NetworkingConfig");
        for (k, v) in [
            ("Hostname", json!(c.config.hostname.clone().unwrap_or_default())),
            ("Domainname", json!("")),
            ("User", json!(c.config.user.clone().unwrap_or_default())),
            ("AttachStdin", json!(c.config.attach_stdin.unwrap_or(false))),
            ("AttachStdout", json!(c.config.attach_stdout.unwrap_or(false))),
            ("AttachStderr", json!(c.config.attach_stderr.unwrap_or(false))),
            ("Tty", json!(c.config.tty.unwrap_or(false))),
            ("OpenStdin", json!(c.config.open_stdin.unwrap_or(false))),
            ("StdinOnce", json!(c.config.stdin_once.unwrap_or(false))),
            ("Env", json!(c.config.env.clone().unwrap_or_default())),
            ("Image", json!(c.image)),
            ("WorkingDir", json!(c.config.working_dir.clone().unwrap_or_default())),
            ("Labels", json!(c.labels())),
        ] {
            o.entry(k).or_insert(v);
            if o.get(k) == Some(&Value::Null) {
                o.insert(k.to_string(), json!(""));
            }
        }
        if o.get("Entrypoint").is_none() {
            o.insert("Entrypoint".into(), Value::Null);
        }
        if o.get("Cmd").is_none() {
            o.insert("Cmd".into(), Value::Null);
        }
        if c.config.exposed_ports.as_ref().is_none_or(|p| p.is_empty()) {
            o.remove("ExposedPorts");
        }
        if c.config.volumes.as_ref().is_none_or(|p| p.is_empty()) {
            o.insert("Volumes".into(), Value::Null);
        }
    }
    let mut host_config = serde_json::to_value(&c.host_config).unwrap_or_else(|_| json!({}));
    if let Some(o) = host_config.as_object_mut() {
        for (k, v) in [
            ("Binds", Value::Null),
            ("NetworkMode", json!("bridge")),
            ("PortBindings", json!({})),
            ("AutoRemove", json!(false)),
            ("Privileged", json!(false)),
            ("PublishAllPorts", json!(false)),
            ("ReadonlyRootfs", json!(false)),
            ("Memory", json!(0)),
            ("NanoCpus", json!(0)),
            ("CpuShares", json!(0)),
            ("Init", Value::Null),
        ] {
            o.entry(k).or_insert(v);
        }
    }
    let hc = &c.state.health;
    let mut state = json!({
        "Status": c.state.status,
        "Running": c.state.running(),
        "Paused": c.state.status == "paused",
        "Restarting": c.state.status == "restarting",
        "OOMKilled": c.state.oom_killed,
        "Dead": c.state.status == "dead",
        "Pid": c.state.pid,
        "ExitCode": c.state.exit_code,
        "Error": c.state.error,
        "StartedAt": c.state.started_at,
        "FinishedAt": c.state.finished_at,
    });
    if let Some(h) = hc {
        state["Health"] = json!({
            "Status": h.status.map(|s| s.to_string()).unwrap_or_else(|| "starting".into()),
            "FailingStreak": h.failing_streak.unwrap_or(0),
            "Log": h.log.clone().unwrap_or_default(),
        });
    }
    let ids = node.execs.of_container(&c.id);
    let exec_ids = if ids.is_empty() { Value::Null } else { json!(ids) };
    let mut v = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.path,
        "Args": c.args,
        "State": state,
        "Image": c.image_id,
        "ResolvConfPath": format!("/var/lib/docker/containers/{}/resolv.conf", c.id),
        "HostnamePath": format!("/var/lib/docker/containers/{}/hostname", c.id),
        "HostsPath": format!("/var/lib/docker/containers/{}/hosts", c.id),
        "LogPath": format!("/var/lib/docker/containers/{0}/{0}-json.log", c.id),
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Driver": "overlay2",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": exec_ids,
        "HostConfig": host_config,
        "GraphDriver": { "Name": "overlay2", "Data": { "LowerDir": "", "MergedDir": "", "UpperDir": "", "WorkDir": "" } },
        "Mounts": c.mounts,
        "Config": config,
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": if c.state.running() { c.id.clone() } else { String::new() },
            "SandboxKey": if c.state.running() { format!("/var/run/docker/netns/{}", &c.id[..12]) } else { String::new() },
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "Ports": ports_map(c),
            "SecondaryIPAddresses": null,
            "SecondaryIPv6Addresses": null,
            "EndpointID": default.filter(|e| e.ip.is_some()).map(|e| e.endpoint_id.clone()).unwrap_or_default(),
            "Gateway": default.and_then(|e| e.gateway).map(|g| g.to_string()).unwrap_or_default(),
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "IPAddress": default.and_then(|e| e.ip).map(|g| g.to_string()).unwrap_or_default(),
            "IPPrefixLen": default.filter(|e| e.ip.is_some()).map(|e| e.prefix).unwrap_or(0),
            "IPv6Gateway": "",
            "MacAddress": default.filter(|e| e.ip.is_some()).map(|e| e.mac.clone()).unwrap_or_default(),
            "Networks": networks,
        },
    });
    if size {
        v["SizeRw"] = json!(0);
        v["SizeRootFs"] = json!(0);
    }
    v
}

/// The command column: entrypoint and arguments, as one line.
fn command_line(c: &ContainerRecord) -> String {
    std::iter::once(c.path.as_str())
        .chain(c.args.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn summary(node: &Node, c: &ContainerRecord, nets: &BTreeMap<String, NetworkRecord>) -> Value {
    let mut ports: Vec<Value> = Vec::new();
    if c.state.running() {
        for (p, bindings) in &c.ports {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let private: u16 = port.parse().unwrap_or(0);
            for b in bindings {
                let mut e = json!({ "PrivatePort": private, "Type": proto });
                if let Some(hp) = b.host_port.as_deref().and_then(|h| h.parse::<u16>().ok()) {
                    e["PublicPort"] = json!(hp);
                    e["IP"] = json!(
                        b.host_ip
                            .clone()
                            .filter(|i| !i.is_empty())
                            .unwrap_or_else(|| "0.0.0.0".into())
                    );
                }
                ports.push(e);
            }
        }
    }
    for p in c.config.exposed_ports.iter().flatten() {
        if !c.ports.contains_key(p) || !c.state.running() {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            ports.push(json!({ "PrivatePort": port.parse::<u16>().unwrap_or(0), "Type": proto }));
        }
    }
    let networks: serde_json::Map<String, Value> = c
        .networks
        .keys()
        .map(|n| (n.clone(), endpoint_json(n, c, nets)))
        .collect();
    let _ = node;
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": c.image,
        "ImageID": c.image_id,
        "Command": command_line(c),
        "Created": parse_time(&c.created).map(|t| t.unix_timestamp()).unwrap_or(0),
        "Ports": ports,
        "Labels": c.labels(),
        "State": c.state.status,
        "Status": status_text(c),
        "HostConfig": { "NetworkMode": c.host_config.network_mode.clone().unwrap_or_else(|| "bridge".into()) },
        "NetworkSettings": { "Networks": networks },
        "Mounts": c.mounts,
    })
}
