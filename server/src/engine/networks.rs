//! Networks as Docker has them, inside the node: the default `bridge` (docker0,
//! 172.17.0.0/16, no name resolution), `host` (the node's own network), `none`, and
//! user-defined bridges with an embedded DNS. Records and addresses here; the kernel's
//! part (bridges, veths, port proxies, the DNS server) is `slipway_runtime::network`.

use std::collections::{BTreeMap, HashMap};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard_stubs::models::{NetworkingConfig, PortBinding};

use super::Node;
use super::containers::spec::Joins;
use super::error::{ApiError, ApiResult};
use super::state::{ContainerRecord, Endpoint, NetworkRecord, State, new_id, now};

pub const DEFAULT_BRIDGE: &str = "bridge";

/// What a run holds on the network: published ports, the embedded DNS server; all of it
/// stops when dropped.
#[derive(Default)]
pub struct Attached {
    pub ports: BTreeMap<String, Vec<PortBinding>>,
    pub endpoints: Vec<(String, Endpoint)>,
    /// Port proxies and the DNS server: they stop when dropped.
    pub(crate) _handles: Vec<Box<dyn std::any::Any + Send + Sync>>,
}

fn predefined(name: &str, driver: &str, subnet: Option<(&str, Ipv4Addr)>, bridge: Option<&str>) -> NetworkRecord {
    NetworkRecord {
        id: new_id(),
        name: name.into(),
        driver: driver.into(),
        subnet: subnet.map(|s| s.0.to_string()),
        gateway: subnet.map(|s| s.1),
        ip_range: None,
        internal: false,
        attachable: false,
        labels: HashMap::new(),
        options: if name == DEFAULT_BRIDGE {
            HashMap::from([
                (
                    "com.docker.network.bridge.default_bridge".to_string(),
                    "true".to_string(),
                ),
                ("com.docker.network.bridge.name".to_string(), "docker0".to_string()),
            ])
        } else {
            HashMap::new()
        },
        created: now(),
        bridge: bridge.map(str::to_string),
        predefined: true,
    }
}

/// The three networks every engine has, made the first time a node's engine opens.
pub fn ensure_predefined(node: &Node) -> anyhow::Result<()> {
    let mut st = node.state();
    for (name, driver, subnet, bridge) in [
        (
            DEFAULT_BRIDGE,
            "bridge",
            Some(("172.17.0.0/16", Ipv4Addr::new(172, 17, 0, 1))),
            Some("docker0"),
        ),
        ("host", "host", None, None),
        ("none", "null", None, None),
    ] {
        if st.networks.values().any(|n| n.name == name) {
            continue;
        }
        let rec = predefined(name, driver, subnet, bridge);
        State::save_network(&node.paths, &rec)?;
        st.networks.insert(rec.id.clone(), rec);
    }
    Ok(())
}

pub fn find(node: &Node, key: &str) -> ApiResult<NetworkRecord> {
    match node.state().network(key) {
        super::state::Lookup::Found(n) => Ok(n.clone()),
        super::state::Lookup::Missing => Err(ApiError::no_such_network(key)),
        super::state::Lookup::Ambiguous => Err(ApiError::bad(format!("network {key} is ambiguous"))),
    }
}

/// Records the networks a new container joins: its network mode, plus the endpoints
/// `NetworkingConfig` names (with their aliases and addresses).
pub fn plan(node: &Arc<Node>, record: &mut ContainerRecord, networking: Option<NetworkingConfig>) -> ApiResult<()> {
    let mode = record
        .host_config
        .network_mode
        .clone()
        .unwrap_or_else(|| DEFAULT_BRIDGE.into());
    let mode = if mode == "default" {
        DEFAULT_BRIDGE.to_string()
    } else {
        mode
    };
    // The CLI names the default network "default" in both places.
    let endpoints: HashMap<String, bollard_stubs::models::EndpointSettings> = networking
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (if k == "default" { DEFAULT_BRIDGE.to_string() } else { k }, v))
        .collect();
    if let Some(other) = mode.strip_prefix("container:") {
        node.container(other)?;
        if !endpoints.is_empty() {
            return Err(ApiError::bad(
                "conflicting options: container type network can't be used with other networks",
            ));
        }
        return Ok(());
    }
    let mut wanted: Vec<String> = vec![mode.clone()];
    for name in endpoints.keys() {
        if !wanted.contains(name) {
            wanted.push(name.clone());
        }
    }
    for name in wanted {
        let net = find(node, &name)?;
        if (net.driver == "host" || net.driver == "null") && !record.networks.is_empty() {
            return Err(ApiError::bad(
                "container cannot be disconnected from host network or connected to host network",
            ));
        }
        let cfg = endpoints
            .get(&name)
            .or_else(|| endpoints.get(&net.id))
            .cloned()
            .unwrap_or_default();
        let requested_ip = cfg
            .ipam_config
            .as_ref()
            .and_then(|i| i.ipv4_address.as_deref())
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<Ipv4Addr>()
                    .map_err(|_| ApiError::bad(format!("invalid IPv4 address: {s}")))
            })
            .transpose()?;
        if requested_ip.is_some() && net.predefined {
            return Err(ApiError::bad(
                "user specified IP address is supported on user defined networks only",
            ));
        }
        let mut aliases = cfg.aliases.clone().unwrap_or_default();
        if net.has_dns() && !aliases.contains(&record.id[..12].to_string()) {
            aliases.push(record.id[..12].to_string());
        }
        record.networks.insert(
            net.name.clone(),
            Endpoint {
                network_id: net.id.clone(),
                endpoint_id: String::new(),
                ip: None,
                prefix: 0,
                gateway: None,
                mac: String::new(),
                aliases,
                requested_ip,
                links: cfg.links.clone().unwrap_or_default(),
                ifname: String::new(),
            },
        );
    }
    Ok(())
}

/// The namespaces a run joins instead of making: the node's for `host` modes, another
/// container's for `container:<x>`.
pub fn joins(node: &Node, record: &ContainerRecord, node_pid: i32) -> ApiResult<Joins> {
    let hc = &record.host_config;
    let node_ns = |ns: &str| Some(PathBuf::from(format!("/proc/{node_pid}/ns/{ns}")));
    let other = |spec: &str, what: &str| -> ApiResult<Option<PathBuf>> {
        let c = node.container(spec)?;
        if !c.state.running() || c.state.pid <= 0 {
            return Err(ApiError::Conflict(format!(
                "cannot join {what} of a non running container: {}",
                c.id
            )));
        }
        Ok(Some(PathBuf::from(format!("/proc/{}/ns/{what}", c.state.pid))))
    };
    let mode = hc.network_mode.clone().unwrap_or_default();
    let mut joins = Joins::default();
    if mode == "host" {
        joins.net = node_ns("net");
    } else if let Some(c) = mode.strip_prefix("container:") {
        joins.net = other(c, "net")?;
    }
    match hc.pid_mode.as_deref() {
        Some("host") => joins.pid = node_ns("pid"),
        Some(m) if m.starts_with("container:") => joins.pid = other(&m[10..], "pid")?,
        _ => {}
    }
    match hc.ipc_mode.as_deref() {
        Some("host") => joins.ipc = node_ns("ipc"),
        Some(m) if m.starts_with("container:") => joins.ipc = other(&m[10..], "ipc")?,
        _ => {}
    }
    if hc.uts_mode.as_deref() == Some("host") || mode == "host" {
        joins.uts = node_ns("uts");
    }
    Ok(joins)
}

fn parse_subnet(s: &str) -> Option<(Ipv4Addr, u8)> {
    let (ip, len) = s.split_once('/')?;
    Some((ip.parse().ok()?, len.parse().ok()?))
}

/// Gives each bridge endpoint of `record` an address: the one asked for, or the next
/// free one of the network's subnet.
pub fn allocate(node: &Node, record: &mut ContainerRecord) -> ApiResult<()> {
    let st = node.state();
    let names: Vec<String> = record.networks.keys().cloned().collect();
    for name in names {
        let Some(net) = st.networks.values().find(|n| n.name == name) else {
            return Err(ApiError::no_such_network(&name));
        };
        if net.driver != "bridge" {
            continue;
        }
        let (Some(subnet), Some(gateway)) = (net.subnet.as_deref().and_then(parse_subnet), net.gateway) else {
            continue;
        };
        let used: Vec<Ipv4Addr> = st
            .containers
            .values()
            .filter(|c| c.id != record.id)
            .filter_map(|c| c.networks.get(&name).and_then(|e| e.ip))
            .collect();
        let ep = record.networks.get_mut(&name).expect("listed above");
        let ip = match ep.requested_ip {
            Some(ip) => {
                if used.contains(&ip) {
                    return Err(ApiError::Conflict(format!("Address already in use: {ip}")));
                }
                ip
            }
            None => next_free(subnet, gateway, &used)
                .ok_or_else(|| ApiError::Limit(format!("no available IPv4 addresses on network {name}")))?,
        };
        ep.ip = Some(ip);
        ep.prefix = subnet.1;
        ep.gateway = (!net.internal).then_some(gateway);
        let o = ip.octets();
        ep.mac = format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]);
        ep.endpoint_id = new_id();
    }
    Ok(())
}

fn next_free(subnet: (Ipv4Addr, u8), gateway: Ipv4Addr, used: &[Ipv4Addr]) -> Option<Ipv4Addr> {
    let base = u32::from(subnet.0);
    let size = 1u32.checked_shl(32 - subnet.1 as u32).unwrap_or(0);
    (2..size.saturating_sub(1))
        .map(|i| Ipv4Addr::from(base + i))
        .find(|ip| *ip != gateway && !used.contains(ip))
}

/// The container's /etc/hosts, /etc/hostname and /etc/resolv.conf, as Docker writes them.
pub fn write_files(node: &Node, record: &ContainerRecord, dir: &Path, node_pid: i32) -> ApiResult<()> {
    let hostname = record
        .config
        .hostname
        .clone()
        .unwrap_or_else(|| record.id[..12].to_string());
    let mut hosts = String::from(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n",
    );
    let mode = record.host_config.network_mode.clone().unwrap_or_default();
    let host_net = mode == "host";
    if let Some(ip) = record.networks.values().find_map(|e| e.ip) {
        hosts.push_str(&format!("{ip}\t{hostname}\n"));
    }
    for extra in record.host_config.extra_hosts.iter().flatten() {
        if let Some((name, ip)) = extra.split_once(':') {
            let ip = if ip == "host-gateway" { "172.17.0.1" } else { ip };
            hosts.push_str(&format!("{ip}\t{name}\n"));
        }
    }
    // Legacy links on the default bridge: the linked container's address under its name.
    for link in record.host_config.links.iter().flatten() {
        let (target, alias) = link.split_once(':').unwrap_or((link, link));
        if let Ok(c) = node.container(target.trim_start_matches('/'))
            && let Some(ip) = c.networks.values().find_map(|e| e.ip)
        {
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            hosts.push_str(&format!("{ip}\t{alias} {} {}\n", c.short_id(), c.name));
        }
    }
    let node_file = |name: &str| -> String {
        use std::os::fd::AsFd;
        let Ok(root) = nix::fcntl::open(
            format!("/proc/{node_pid}/root").as_str(),
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY,
            nix::sys::stat::Mode::empty(),
        ) else {
            return String::new();
        };
        slipway_runtime::linux::fs::open_in_root(root.as_fd(), Path::new(name), nix::fcntl::OFlag::O_RDONLY)
            .ok()
            .and_then(|fd| std::io::read_to_string(std::fs::File::from(fd)).ok())
            .unwrap_or_default()
    };
    if host_net {
        hosts = node_file("/etc/hosts");
    }
    let user_net = {
        let st = node.state();
        record
            .networks
            .keys()
            .any(|n| st.networks.values().any(|r| &r.name == n && r.has_dns()))
    };
    let resolv = if user_net {
        "# Generated by Slipway's embedded DNS (as Docker's).\nnameserver 127.0.0.11\noptions ndots:0\n".to_string()
    } else {
        let mut r = node_file("/etc/resolv.conf");
        if let Some(dns) = record.host_config.dns.as_ref().filter(|d| !d.is_empty()) {
            r = dns.iter().map(|d| format!("nameserver {d}\n")).collect();
        }
        r
    };
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| ApiError::internal(format!("writing {name}: {e}")))
    };
    write("hosts", &hosts)?;
    write("hostname", &format!("{hostname}\n"))?;
    write("resolv.conf", &resolv)?;
    Ok(())
}

/// Connects a created container (its init waits for start) to its networks: veths on the
/// node's bridges, published ports, the embedded DNS.
pub async fn connect(node: &Arc<Node>, record: &ContainerRecord, pid: i32, node_pid: i32) -> ApiResult<Attached> {
    let mut attached = Attached::default();
    let mode = record.host_config.network_mode.clone().unwrap_or_default();
    let nets: BTreeMap<String, NetworkRecord> = node
        .state()
        .networks
        .values()
        .map(|n| (n.name.clone(), n.clone()))
        .collect();
    // The network mode's network first: it gives eth0 and the default route.
    let mut order: Vec<&String> = record.networks.keys().collect();
    order.sort_by_key(|n| **n != mode && !(mode == "default" && n.as_str() == DEFAULT_BRIDGE));
    let mut first_ip = None;
    let mut route_given = false;
    let mut dns = false;
    for (i, name) in order.into_iter().enumerate() {
        let (Some(net), Some(ep)) = (nets.get(name), record.networks.get(name)) else {
            continue;
        };
        let mut ep = ep.clone();
        ep.ifname = format!("eth{i}");
        attached.endpoints.push((name.clone(), ep.clone()));
        let (Some(ip), Some(bridge)) = (ep.ip, net.bridge.clone()) else {
            continue;
        };
        let subnet = net.subnet.as_deref().and_then(parse_subnet);
        let (Some((_, prefix)), Some(gw)) = (subnet, net.gateway) else {
            continue;
        };
        let gateway = (!net.internal && !route_given).then_some(gw);
        route_given |= gateway.is_some();
        let mac = ep.mac.clone();
        let ifname = format!("eth{i}");
        tokio::task::spawn_blocking(move || {
            super::net::link::ensure_bridge(node_pid, &bridge, gw, prefix)?;
            super::net::link::attach(
                node_pid,
                pid,
                &super::net::link::Endpoint {
                    bridge: &bridge,
                    ifname: &ifname,
                    ip,
                    prefix,
                    mac: &mac,
                    gateway,
                },
            )
        })
        .await
        .map_err(ApiError::internal)?
        .map_err(|e| ApiError::internal(format!("connecting to network {name}: {e:#}")))?;
        first_ip.get_or_insert(ip);
        dns |= net.has_dns();
    }
    // Published ports: `-p` bindings, and `-P` for every exposed port.
    let mut bindings = record.host_config.port_bindings.clone().unwrap_or_default();
    if record.host_config.publish_all_ports == Some(true) {
        for p in record.config.exposed_ports.iter().flatten() {
            bindings.entry(p.clone()).or_insert_with(|| {
                Some(vec![PortBinding {
                    host_ip: None,
                    host_port: None,
                }])
            });
        }
    }
    if let Some(target_ip) = first_ip {
        let mut keys: Vec<String> = bindings.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let (port, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
            if proto != "tcp" {
                continue;
            }
            let Ok(container_port) = port.parse::<u16>() else {
                return Err(ApiError::bad(format!("invalid port {key}")));
            };
            for b in bindings.get(&key).cloned().flatten().unwrap_or_default() {
                let host_ip: Ipv4Addr = match b.host_ip.as_deref().filter(|h| !h.is_empty()) {
                    Some(h) => h
                        .parse()
                        .map_err(|_| ApiError::bad(format!("invalid IP address: {h}")))?,
                    None => Ipv4Addr::UNSPECIFIED,
                };
                let host_port: u16 = match b.host_port.as_deref().filter(|h| !h.is_empty()) {
                    Some(h) => h.parse().map_err(|_| ApiError::bad(format!("invalid port: {h}")))?,
                    None => 0,
                };
                let target = std::net::SocketAddrV4::new(target_ip, container_port);
                let published = super::net::ports::publish_tcp(node_pid, host_ip, host_port, target).map_err(|e| {
                    ApiError::internal(format!(
                        "driver failed programming external connectivity on endpoint {}: {e}",
                        record.name
                    ))
                })?;
                attached.ports.entry(key.clone()).or_default().push(PortBinding {
                    host_ip: Some(host_ip.to_string()),
                    host_port: Some(published.port.to_string()),
                });
                attached._handles.push(Box::new(published));
            }
        }
    }
    if dns {
        let weak = Arc::downgrade(node);
        let me = record.id.clone();
        let resolve: super::net::dns::Resolve = Arc::new(move |name: &str| {
            let node = weak.upgrade()?;
            resolve_name(&node, &me, name)
        });
        let server = super::net::dns::serve(pid, resolve)
            .map_err(|e| ApiError::internal(format!("starting the embedded DNS: {e}")))?;
        attached._handles.push(Box::new(server));
    }
    Ok(attached)
}

/// What `name` means to container `me`: the addresses, on the user networks it shares
/// with them, of running containers with that name, alias or short ID.
fn resolve_name(node: &Node, me: &str, name: &str) -> Option<Vec<Ipv4Addr>> {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let st = node.state();
    let mine = st.containers.get(me)?;
    let mut found = Vec::new();
    for (net, _) in mine.networks.iter() {
        if !st.networks.values().any(|n| &n.name == net && n.has_dns()) {
            continue;
        }
        for c in st.containers.values().filter(|c| c.state.running()) {
            let Some(ep) = c.networks.get(net) else { continue };
            let matches = c.name.to_ascii_lowercase() == name
                || ep.aliases.iter().any(|a| a.to_ascii_lowercase() == name)
                || c.id.starts_with(&name) && name.len() >= 12;
            if matches
                && let Some(ip) = ep.ip
                && !found.contains(&ip)
            {
                found.push(ip);
            }
        }
    }
    (!found.is_empty()).then_some(found)
}

/// Removes a user network's bridge from the node.
pub fn remove_bridge(node: &Arc<Node>, net: &NetworkRecord) {
    if let (Some(bridge), Ok(pid)) = (&net.bridge, node.node_pid())
        && let Err(e) = super::net::link::remove_bridge(pid, bridge)
    {
        tracing::warn!(network = %net.name, error = format!("{e:#}"), "removing a bridge");
    }
}

/// `docker network connect`: records the endpoint, and joins a running container at once.
pub async fn connect_container(
    node: &Arc<Node>,
    net: &NetworkRecord,
    container: &str,
    config: Option<bollard_stubs::models::EndpointSettings>,
) -> ApiResult<()> {
    let rec = node.container(container)?;
    let mode = rec.host_config.network_mode.clone().unwrap_or_default();
    if mode == "host" || mode == "none" || mode.starts_with("container:") {
        return Err(ApiError::bad(
            "container sharing network namespace with another container or host cannot be connected to any other network",
        ));
    }
    if net.driver != "bridge" {
        return Err(ApiError::bad(
            "container cannot be disconnected from host network or connected to host network",
        ));
    }
    if rec.networks.contains_key(&net.name) {
        return Err(ApiError::Forbidden(format!(
            "endpoint with name {} already exists in network {}",
            rec.name, net.name
        )));
    }
    let cfg = config.unwrap_or_default();
    let mut aliases = cfg.aliases.clone().unwrap_or_default();
    if net.has_dns() {
        aliases.push(rec.id[..12].to_string());
    }
    let requested_ip = cfg
        .ipam_config
        .as_ref()
        .and_then(|i| i.ipv4_address.as_deref())
        .filter(|s| !s.is_empty())
        .and_then(|s| s.parse().ok());
    let mut updated = rec.clone();
    updated.networks.insert(
        net.name.clone(),
        Endpoint {
            network_id: net.id.clone(),
            endpoint_id: String::new(),
            ip: None,
            prefix: 0,
            gateway: None,
            mac: String::new(),
            aliases,
            requested_ip,
            links: cfg.links.clone().unwrap_or_default(),
            ifname: String::new(),
        },
    );
    if rec.state.running() {
        allocate(node, &mut updated)?;
        // Joined at once: a new interface in the running container.
        let used: Vec<String> = rec.networks.values().map(|e| e.ifname.clone()).collect();
        let ifname = (0..)
            .map(|i| format!("eth{i}"))
            .find(|n| !used.contains(n))
            .unwrap_or_default();
        let ep = updated
            .networks
            .get_mut(&net.name)
            .ok_or_else(|| ApiError::internal("endpoint"))?;
        ep.ifname = ifname.clone();
        let subnet = net.subnet.as_deref().and_then(parse_subnet);
        if let (Some(ip), Some(bridge), Some((_, prefix)), Some(gw)) = (ep.ip, net.bridge.clone(), subnet, net.gateway)
        {
            let (pid, node_pid, mac) = (rec.state.pid as i32, node.node_pid()?, ep.mac.clone());
            tokio::task::spawn_blocking(move || {
                super::net::link::ensure_bridge(node_pid, &bridge, gw, prefix)?;
                super::net::link::attach(
                    node_pid,
                    pid,
                    &super::net::link::Endpoint {
                        bridge: &bridge,
                        ifname: &ifname,
                        ip,
                        prefix,
                        mac: &mac,
                        gateway: None,
                    },
                )
            })
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::internal(format!("connecting to network {}: {e:#}", net.name)))?;
        }
    }
    {
        let mut st = node.state();
        let r = st
            .containers
            .get_mut(&rec.id)
            .ok_or_else(|| ApiError::no_such_container(container))?;
        r.networks = updated.networks.clone();
        State::save_container(&node.paths, r)?;
    }
    node.emit(
        "network",
        "connect",
        &net.id,
        [
            ("container".to_string(), rec.id.clone()),
            ("name".to_string(), net.name.clone()),
            ("type".to_string(), "bridge".to_string()),
        ],
    );
    Ok(())
}

/// `docker network disconnect`.
pub async fn disconnect_container(
    node: &Arc<Node>,
    net: &NetworkRecord,
    container: &str,
    force: bool,
) -> ApiResult<()> {
    let rec = match node.container(container) {
        Ok(r) => r,
        Err(e) if force => return Err(e),
        Err(e) => return Err(e),
    };
    if !rec.networks.contains_key(&net.name) {
        return Err(ApiError::Forbidden(format!(
            "container {} is not connected to network {}",
            rec.id, net.name
        )));
    }
    if rec.state.running()
        && let Some(ep) = rec.networks.get(&net.name).filter(|e| !e.ifname.is_empty())
    {
        let (pid, ifname) = (rec.state.pid as i32, ep.ifname.clone());
        tokio::task::spawn_blocking(move || super::net::link::detach(pid, &ifname))
            .await
            .map_err(ApiError::internal)?
            .map_err(|e| ApiError::internal(format!("disconnecting from network {}: {e:#}", net.name)))?;
    }
    {
        let mut st = node.state();
        let r = st
            .containers
            .get_mut(&rec.id)
            .ok_or_else(|| ApiError::no_such_container(container))?;
        r.networks.remove(&net.name);
        State::save_container(&node.paths, r)?;
    }
    node.emit(
        "network",
        "disconnect",
        &net.id,
        [
            ("container".to_string(), rec.id.clone()),
            ("name".to_string(), net.name.clone()),
            ("type".to_string(), "bridge".to_string()),
        ],
    );
    Ok(())
}
