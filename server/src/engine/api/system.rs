//! The daemon itself: ping, version, info, events, disk usage.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Query};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use bollard_stubs::models::{SystemInfo, SystemVersion, SystemVersionComponents, SystemVersionPlatform};

use super::super::error::ApiResult;
use super::super::filters::Filters;
use super::super::stream;
use super::super::{API_VERSION, ENGINE_VERSION, MIN_API_VERSION, Node};
use super::daemon_headers;

pub fn routes() -> Router {
    Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version))
        .route("/info", get(info))
        .route("/events", get(events))
}

async fn ping() -> impl IntoResponse {
    let mut h = daemon_headers();
    h.insert("builder-version", axum::http::HeaderValue::from_static("1"));
    h.insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(
        axum::http::header::PRAGMA,
        axum::http::HeaderValue::from_static("no-cache"),
    );
    (h, "OK")
}

fn kernel() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

async fn version() -> Json<SystemVersion> {
    let arch = slipway_runtime::image::config::host_architecture().to_string();
    let details: HashMap<String, String> = [
        ("ApiVersion", API_VERSION),
        ("MinAPIVersion", MIN_API_VERSION),
        ("Os", "linux"),
        ("Arch", arch.as_str()),
        ("KernelVersion", &kernel()),
        ("Experimental", "false"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    Json(SystemVersion {
        platform: Some(SystemVersionPlatform {
            name: "Slipway Engine".into(),
        }),
        components: Some(vec![SystemVersionComponents {
            name: "Engine".into(),
            version: ENGINE_VERSION.into(),
            details: Some(details),
        }]),
        version: Some(ENGINE_VERSION.into()),
        api_version: Some(API_VERSION.into()),
        min_api_version: Some(MIN_API_VERSION.into()),
        git_commit: Some("slipway".into()),
        go_version: Some("n/a".into()),
        os: Some("linux".into()),
        arch: Some(arch),
        kernel_version: Some(kernel()),
        build_time: Some(String::new()),
        experimental: Some(false),
    })
}

async fn info(Extension(node): Extension<Arc<Node>>) -> ApiResult<Json<SystemInfo>> {
    let (total, running, paused, stopped, images) = {
        let st = node.state();
        let count = |s: &str| st.containers.values().filter(|c| c.state.status == s).count() as i64;
        let images: std::collections::HashSet<&String> = st.images.values().collect();
        (
            st.containers.len() as i64,
            count("running"),
            count("paused"),
            st.containers.len() as i64 - count("running") - count("paused"),
            images.len() as i64,
        )
    };
    let cgroup_version = if node.engine.cgroup_v2 { "2" } else { "1" };
    let mem_total = node.engine.memory_limit as i64;
    let info: SystemInfo = serde_json::from_value(serde_json::json!({
        "ID": format!("{}-{}", node.playground, node.name),
        "Containers": total,
        "ContainersRunning": running,
        "ContainersPaused": paused,
        "ContainersStopped": stopped,
        "Images": images,
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"]],
        "Plugins": { "Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": [], "Log": ["json-file"] },
        "MemoryLimit": true,
        "SwapLimit": false,
        "CpuCfsPeriod": true,
        "CpuCfsQuota": true,
        "CPUShares": true,
        "PidsLimit": true,
        "IPv4Forwarding": false,
        "Debug": false,
        "NFd": 0,
        "NGoroutines": 0,
        "SystemTime": super::super::state::now(),
        "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": cgroup_version,
        "NEventsListener": 0,
        "KernelVersion": kernel(),
        "OperatingSystem": "Slipway playground node",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": { "IndexConfigs": {}, "InsecureRegistryCIDRs": [], "Mirrors": [] },
        "NCPU": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "MemTotal": mem_total,
        "DockerRootDir": "/var/lib/docker",
        "Name": node.name,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": ENGINE_VERSION,
        "Runtimes": { "runc": { "path": "slipway" } },
        "DefaultRuntime": "runc",
        "Swarm": { "LocalNodeState": "inactive", "NodeID": "", "NodeAddr": "", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "docker-init",
        "SecurityOptions": ["name=seccomp,profile=builtin"],
        "Warnings": [],
    }))
    .map_err(super::super::error::ApiError::internal)?;
    Ok(Json(info))
}

#[derive(serde::Deserialize)]
struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// `docker events` and compose: past events from `since`, then live ones until `until`
/// (or until the client goes away), each as a JSON line.
async fn events(Extension(node): Extension<Arc<Node>>, Query(q): Query<EventsQuery>) -> ApiResult<Response> {
    let filters = Filters::parse(
        q.filters.as_deref(),
        &[
            "container",
            "event",
            "image",
            "label",
            "network",
            "type",
            "volume",
            "scope",
            "daemon",
            "plugin",
            "node",
            "service",
            "secret",
            "config",
        ],
    )?;
    let now = time::OffsetDateTime::now_utc();
    let since = q.since.as_deref().map(|s| event_time(s, now)).transpose()?;
    let until = q.until.as_deref().map(|s| event_time(s, now)).transpose()?;
    let (past, mut rx) = node.events.subscribe(since);
    let (tx, out) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        let stop_at = until.map(|u| {
            let wait = (u - time::OffsetDateTime::now_utc().unix_timestamp_nanos()).max(0) as u64;
            tokio::time::Instant::now() + std::time::Duration::from_nanos(wait)
        });
        for e in past {
            if until.is_some_and(|u| e.time_nano > u) {
                return;
            }
            if e.matches(&filters) && tx.send(serde_json::to_value(&e).unwrap_or_default()).await.is_err() {
                return;
            }
        }
        loop {
            let next = async {
                match stop_at {
                    Some(at) => tokio::time::timeout_at(at, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            tokio::select! {
                got = next => match got {
                    None => return,
                    Some(Ok(e)) => {
                        if e.matches(&filters) && tx.send(serde_json::to_value(&e).unwrap_or_default()).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                    Some(Err(_)) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    Ok(stream::ndjson(out))
}

/// A `since`/`until` value: Unix seconds with an optional fraction, RFC 3339, or a
/// duration back from now (`10m`), as the CLI sends them; in Unix nanoseconds.
fn event_time(s: &str, now: time::OffsetDateTime) -> ApiResult<i128> {
    if let Some((secs, frac)) = s.split_once('.')
        && let (Ok(secs), Ok(_)) = (secs.parse::<i64>(), frac.parse::<u64>())
    {
        let nanos: i128 = format!("{frac:0<9}")[..9].parse().unwrap_or(0);
        return Ok(secs as i128 * 1_000_000_000 + nanos);
    }
    if let Ok(secs) = s.parse::<i64>() {
        return Ok(secs as i128 * 1_000_000_000);
    }
    slipway_runtime::logs::parse_time_arg(s, now)
        .map(|t| t.unix_timestamp_nanos())
        .map_err(|e| super::super::error::ApiError::bad(format!("invalid time {s:?}: {e}")))
}
