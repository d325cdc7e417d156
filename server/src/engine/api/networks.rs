//! `/networks/...`: list, inspect, create, remove, connect, disconnect, prune.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::super::filters::{Filters, name_matches};
use super::super::networks;
use super::super::state::{NetworkRecord, State};
use super::flag;

pub fn routes() -> Router {
    Router::new()
        .route("/networks", get(list))
        .route("/networks/create", post(create))
        .route("/networks/prune", post(prune))
        .route("/networks/{id}", get(inspect).delete(remove))
        .route("/networks/{id}/connect", post(connect))
        .route("/networks/{id}/disconnect", post(disconnect))
}

type Q = Query<HashMap<String, String>>;

pub fn network_json(node: &Node, n: &NetworkRecord) -> Value {
    let st = node.state();
    let mut containers = serde_json::Map::new();
    for c in st.containers.values() {
        if let Some(ep) = c.networks.get(&n.name)
            && c.state.running()
        {
            containers.insert(
                c.id.clone(),
                json!({
                    "Name": c.name,
                    "EndpointID": ep.endpoint_id,
                    "MacAddress": ep.mac,
                    "IPv4Address": ep.ip.map(|ip| format!("{ip}/{}", ep.prefix)).unwrap_or_default(),
                    "IPv6Address": "",
                }),
            );
        }
    }
    let config: Vec<Value> = match (&n.subnet, n.gateway) {
        (Some(s), Some(g)) => {
            let mut c = json!({ "Subnet": s, "Gateway": g.to_string() });
            if let Some(r) = &n.ip_range {
                c["IPRange"] = json!(r);
            }
            vec![c]
        }
        _ => vec![],
    };
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv4": true,
        "EnableIPv6": false,
        "IPAM": { "Driver": "default", "Options": if n.predefined { Value::Null } else { json!({}) }, "Config": config },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    })
}

async fn list(Extension(node): Extension<Arc<Node>>, Query(query): Q) -> ApiResult<Json<Vec<Value>>> {
    let f = Filters::parse(
        query.get("filters").map(String::as_str),
        &["driver", "id", "label", "name", "scope", "type", "dangling"],
    )?;
    let mut nets: Vec<NetworkRecord> = node.state().networks.values().cloned().collect();
    nets.sort_by(|a, b| a.name.cmp(&b.name));
    let used = |n: &NetworkRecord| {
        node.state()
            .containers
            .values()
            .any(|c| c.networks.contains_key(&n.name))
    };
    let dangling = f.boolean("dangling")?;
    Ok(Json(
        nets.iter()
            .filter(|n| f.any("driver", |d| d == n.driver))
            .filter(|n| f.any("id", |i| n.id.starts_with(i)))
            .filter(|n| f.any("name", |m| name_matches(m, &n.name)))
            .filter(|n| f.labels_match("label", &n.labels))
            .filter(|_| f.any("scope", |s| s == "local"))
            .filter(|n| f.any("type", |t| (t == "custom") != n.predefined))
            .filter(|n| dangling.is_none_or(|d| d == (!n.predefined && !used(n))))
            .map(|n| network_json(&node, n))
            .collect(),
    ))
}

async fn inspect(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<Json<Value>> {
    let n = networks::find(&node, &id)?;
    Ok(Json(network_json(&node, &n)))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct IpamConfig {
    subnet: Option<String>,
    gateway: Option<String>,
    #[serde(rename = "IPRange")]
    ip_range: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct Ipam {
    driver: Option<String>,
    config: Option<Vec<IpamConfig>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    name: String,
    driver: Option<String>,
    internal: bool,
    attachable: bool,
    #[serde(rename = "IPAM")]
    ipam: Option<Ipam>,
    options: Option<HashMap<String, String>>,
    labels: Option<HashMap<String, String>>,
    #[serde(rename = "EnableIPv6")]
    enable_ipv6: Option<bool>,
}

fn parse_net(s: &str) -> ApiResult<(Ipv4Addr, u8)> {
    let bad = || ApiError::bad(format!("invalid subnet {s}: not an IPv4 CIDR"));
    let (ip, len) = s.split_once('/').ok_or_else(bad)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let len: u8 = len.parse().map_err(|_| bad())?;
    if len > 30 {
        return Err(ApiError::bad(format!("invalid subnet {s}: too small for containers")));
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    Ok((Ipv4Addr::from(u32::from(ip) & mask), len))
}

fn overlaps(a: (Ipv4Addr, u8), b: (Ipv4Addr, u8)) -> bool {
    let len = a.1.min(b.1);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    (u32::from(a.0) & mask) == (u32::from(b.0) & mask)
}

/// Docker's default pools: 172.17-31.0.0/16, then 192.168.x.0/20 (skipping the node's own
/// 192.168.0.0/24).
fn pick_subnet(used: &[(Ipv4Addr, u8)]) -> Option<(Ipv4Addr, u8)> {
    let candidates = (18..=31)
        .map(|b| (Ipv4Addr::new(172, b, 0, 0), 16))
        .chain((1..16).map(|i| (Ipv4Addr::new(192, 168, i * 16, 0), 20)));
    candidates.into_iter().find(|c| !used.iter().any(|u| overlaps(*c, *u)))
}

async fn create(Extension(node): Extension<Arc<Node>>, body: axum::body::Bytes) -> ApiResult<Response> {
    let b: CreateBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?;
    if b.name.is_empty() {
        return Err(ApiError::bad("network name cannot be empty"));
    }
    let driver = b
        .driver
        .clone()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| "bridge".into());
    if driver != "bridge" {
        return Err(ApiError::bad(format!(
            "plugin \"{driver}\" not found: only the bridge driver is available in a Slipway node"
        )));
    }
    if b.enable_ipv6 == Some(true) {
        return Err(ApiError::bad("IPv6 networks are not available in a Slipway node"));
    }
    let mut st = node.state();
    if let Some(existing) = st.networks.values().find(|n| n.name == b.name) {
        return Err(ApiError::Conflict(format!(
            "network with name {} already exists",
            existing.name
        )));
    }
    let used: Vec<(Ipv4Addr, u8)> = st
        .networks
        .values()
        .filter_map(|n| n.subnet.as_deref().and_then(|s| parse_net(s).ok()))
        .chain(std::iter::once((Ipv4Addr::new(192, 168, 0, 0), 24)))
        .collect();
    let cfg = b.ipam.as_ref().and_then(|i| i.config.as_ref()).and_then(|c| c.first());
    let (subnet, gateway) = match cfg.and_then(|c| c.subnet.clone()) {
        Some(s) => {
            let net = parse_net(&s)?;
            if used.iter().any(|u| overlaps(net, *u)) {
                return Err(ApiError::Forbidden(
                    "Pool overlaps with other one on this address space".into(),
                ));
            }
            let gw = match cfg.and_then(|c| c.gateway.clone()).filter(|g| !g.is_empty()) {
                Some(g) => {
                    let g: Ipv4Addr = g
                        .parse()
                        .map_err(|_| ApiError::bad(format!("invalid gateway address {g}")))?;
                    if !overlaps((g, net.1), net) {
                        return Err(ApiError::Forbidden(format!("no matching subnet for gateway {g}")));
                    }
                    g
                }
                None => Ipv4Addr::from(u32::from(net.0) + 1),
            };
            (net, gw)
        }
        None => {
            let net = pick_subnet(&used).ok_or_else(|| {
                ApiError::Limit("could not find an available, non-overlapping IPv4 address pool".into())
            })?;
            (net, Ipv4Addr::from(u32::from(net.0) + 1))
        }
    };
    let id = super::super::state::new_id();
    let rec = NetworkRecord {
        id: id.clone(),
        name: b.name.clone(),
        driver,
        subnet: Some(format!("{}/{}", subnet.0, subnet.1)),
        gateway: Some(gateway),
        ip_range: cfg.and_then(|c| c.ip_range.clone()),
        internal: b.internal,
        attachable: b.attachable,
        labels: b.labels.unwrap_or_default(),
        options: b.options.unwrap_or_default(),
        created: super::super::state::now(),
        bridge: Some(format!("br-{}", &id[..12])),
        predefined: false,
    };
    let _ = b.ipam.as_ref().and_then(|i| i.driver.clone());
    State::save_network(&node.paths, &rec)?;
    st.networks.insert(id.clone(), rec.clone());
    drop(st);
    node.emit(
        "network",
        "create",
        &id,
        [
            ("name".to_string(), rec.name.clone()),
            ("type".to_string(), "bridge".to_string()),
        ],
    );
    Ok((StatusCode::CREATED, Json(json!({ "Id": id, "Warning": "" }))).into_response())
}

async fn remove(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    let n = networks::find(&node, &id)?;
    remove_network(&node, &n)?;
    Ok(StatusCode::NO_CONTENT)
}

fn remove_network(node: &Arc<Node>, n: &NetworkRecord) -> ApiResult<()> {
    if n.predefined {
        return Err(ApiError::Forbidden(format!(
            "{} is a pre-defined network and cannot be removed",
            n.name
        )));
    }
    let attached: Vec<String> = node
        .state()
        .containers
        .values()
        .filter(|c| c.networks.contains_key(&n.name) && c.state.running())
        .map(|c| c.name.clone())
        .collect();
    if !attached.is_empty() {
        return Err(ApiError::Forbidden(format!(
            "error while removing network: network {} id {} has active endpoints",
            n.name, n.id
        )));
    }
    networks::remove_bridge(node, n);
    node.state().networks.remove(&n.id);
    let _ = std::fs::remove_file(node.paths.networks().join(format!("{}.json", n.id)));
    node.emit(
        "network",
        "destroy",
        &n.id,
        [
            ("name".to_string(), n.name.clone()),
            ("type".to_string(), n.driver.clone()),
        ],
    );
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct ConnectBody {
    container: String,
    endpoint_config: Option<bollard_stubs::models::EndpointSettings>,
    force: bool,
}

async fn connect(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let b: ConnectBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?;
    let n = networks::find(&node, &id)?;
    networks::connect_container(&node, &n, &b.container, b.endpoint_config).await?;
    Ok(StatusCode::OK)
}

async fn disconnect(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<StatusCode> {
    let b: ConnectBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?;
    let n = networks::find(&node, &id)?;
    networks::disconnect_container(&node, &n, &b.container, b.force).await?;
    Ok(StatusCode::OK)
}

async fn prune(Extension(node): Extension<Arc<Node>>, Query(query): Q) -> ApiResult<Json<Value>> {
    let f = Filters::parse(query.get("filters").map(String::as_str), &["label", "label!", "until"])?;
    let nets: Vec<NetworkRecord> = node.state().networks.values().cloned().collect();
    let mut deleted = Vec::new();
    for n in nets {
        if n.predefined || !f.labels_match("label", &n.labels) || !f.labels_excluded("label!", &n.labels) {
            continue;
        }
        let used = node
            .state()
            .containers
            .values()
            .any(|c| c.networks.contains_key(&n.name));
        if !used && remove_network(&node, &n).is_ok() {
            deleted.push(n.name.clone());
        }
    }
    let _ = flag(None);
    node.emit("network", "prune", "", []);
    Ok(Json(
        json!({ "NetworksDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) } }),
    ))
}
