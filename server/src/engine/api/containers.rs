//! `/containers/...`: thin handlers over `engine::containers`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Extension, Path, Query, Request};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use bollard_stubs::models::ContainerCreateBody;
use serde_json::json;
use slipway_runtime::monitor::client::Output;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::super::Node;
use super::super::containers::{self, run};
use super::super::error::{ApiError, ApiResult};
use super::super::filters::{Filters, name_matches};
use super::super::state::State;
use super::super::stream::{self, Conn};
use super::{ApiVersion, container_json, flag};

pub fn routes() -> Router {
    Router::new()
        .route("/containers/create", post(create))
        .route("/containers/json", get(list))
        .route("/containers/prune", post(prune))
        .route("/containers/{id}/json", get(inspect))
        .route("/containers/{id}/start", post(start))
        .route("/containers/{id}/stop", post(stop))
        .route("/containers/{id}/restart", post(restart))
        .route("/containers/{id}/kill", post(kill))
        .route("/containers/{id}/pause", post(pause))
        .route("/containers/{id}/unpause", post(unpause))
        .route("/containers/{id}/wait", post(wait))
        .route("/containers/{id}/attach", post(attach))
        .route("/containers/{id}/resize", post(resize))
        .route("/containers/{id}/logs", get(logs))
        .route("/containers/{id}/rename", post(rename))
        .route("/containers/{id}/update", post(update))
        .route("/containers/{id}/top", get(top))
        .route("/containers/{id}/stats", get(stats))
        .route("/containers/{id}", delete(remove))
}

type Q = Query<HashMap<String, String>>;

fn q<'a>(q: &'a HashMap<String, String>, k: &str) -> Option<&'a str> {
    q.get(k).map(String::as_str)
}

async fn create(
    Extension(node): Extension<Arc<Node>>,
    Query(query): Q,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let body: ContainerCreateBody = if body.is_empty() {
        return Err(ApiError::bad("config cannot be empty in order to create a container"));
    } else {
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?
    };
    let node2 = node.clone();
    let name = q(&query, "name").map(str::to_string);
    let rec = tokio::task::spawn_blocking(move || containers::create(&node2, name.as_deref(), body))
        .await
        .map_err(ApiError::internal)??;
    Ok((
        StatusCode::CREATED,
        Json(json!({ "Id": rec.id, "Warnings": [] })).into_response(),
    )
        .into_response())
}

async fn list(Extension(node): Extension<Arc<Node>>, Query(query): Q) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let filters = Filters::parse(
        q(&query, "filters"),
        &[
            "id",
            "name",
            "label",
            "status",
            "ancestor",
            "before",
            "since",
            "volume",
            "network",
            "exited",
            "health",
            "publish",
            "expose",
            "is-task",
            "isolation",
        ],
    )?;
    let limit: Option<usize> = q(&query, "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0)
        .map(|l| l as usize);
    // `ps -l` and `-n` count stopped containers too, as dockerd does.
    let all = flag(q(&query, "all")) || limit.is_some();
    let (mut recs, nets) = {
        let st = node.state();
        let recs: Vec<_> = st.containers.values().cloned().collect();
        let nets: std::collections::BTreeMap<_, _> =
            st.networks.values().map(|n| (n.name.clone(), n.clone())).collect();
        (recs, nets)
    };
    recs.sort_by(|a, b| b.created.cmp(&a.created));
    let before = filters
        .get("before")
        .first()
        .and_then(|k| node.container(k).ok())
        .map(|c| c.created);
    let since = filters
        .get("since")
        .first()
        .and_then(|k| node.container(k).ok())
        .map(|c| c.created);
    let ancestors: Vec<String> = filters
        .get("ancestor")
        .iter()
        .filter_map(|a| node.image_id(a))
        .collect();
    let out: Vec<serde_json::Value> = recs
        .iter()
        .filter(|c| all || c.state.running() || filters.has("status") || filters.has("exited"))
        .filter(|c| filters.any("id", |v| c.id.starts_with(v)))
        .filter(|c| filters.any("name", |v| name_matches(v, &c.name)))
        .filter(|c| filters.labels_match("label", &c.labels()))
        .filter(|c| filters.any("status", |v| v == c.state.status))
        .filter(|c| {
            filters.any("exited", |v| {
                c.state.status == "exited" && v.parse::<i64>().ok() == Some(c.state.exit_code)
            })
        })
        .filter(|c| {
            !filters.has("ancestor") || ancestors.contains(&c.image_id) || filters.get("ancestor").contains(&c.image)
        })
        .filter(|c| {
            filters.any("volume", |v| {
                c.mounts
                    .iter()
                    .any(|m| m.name.as_deref() == Some(v) || m.destination.as_deref() == Some(v))
            })
        })
        .filter(|c| {
            filters.any("network", |v| {
                c.networks.contains_key(v) || c.networks.values().any(|e| e.network_id.starts_with(v))
            })
        })
        .filter(|c| {
            filters.any("health", |v| {
                let h = c
                    .state
                    .health
                    .as_ref()
                    .and_then(|h| h.status)
                    .map(|s| s.to_string())
                    .unwrap_or_else(|| "none".into());
                h == v
            })
        })
        .filter(|c| {
            filters.any("publish", |v| {
                c.ports.iter().any(|(p, b)| {
                    p == v
                        || p.starts_with(&format!("{v}/"))
                        || b.iter()
                            .any(|b| b.host_port.as_deref() == Some(v.split('/').next().unwrap_or(v)))
                })
            })
        })
        .filter(|c| {
            filters.any("expose", |v| {
                c.config
                    .exposed_ports
                    .iter()
                    .flatten()
                    .any(|p| p == v || p.starts_with(&format!("{v}/")))
            })
        })
        .filter(|c| before.as_ref().is_none_or(|b| &c.created < b))
        .filter(|c| since.as_ref().is_none_or(|s| &c.created > s))
        .take(limit.unwrap_or(usize::MAX))
        .map(|c| container_json::summary(&node, c, &nets))
        .collect();
    Ok(Json(out))
}

async fn inspect(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> ApiResult<Json<serde_json::Value>> {
    let c = node.container(&id)?;
    Ok(Json(container_json::inspect(&node, &c, flag(q(&query, "size")))))
}

async fn start(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    run::start(&node, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

fn timeout(query: &HashMap<String, String>) -> ApiResult<Option<i64>> {
    q(query, "t")
        .or(q(query, "timeout"))
        .map(|t| {
            t.parse::<i64>()
                .map_err(|_| ApiError::bad(format!("invalid value for timeout: {t}")))
        })
        .transpose()
}

async fn stop(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>, Query(query): Q) -> ApiResult<StatusCode> {
    run::stop(&node, &id, q(&query, "signal"), timeout(&query)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn restart(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> ApiResult<StatusCode> {
    run::restart(&node, &id, q(&query, "signal"), timeout(&query)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn kill(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>, Query(query): Q) -> ApiResult<StatusCode> {
    run::kill(&node, &id, q(&query, "signal")).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn pause(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    run::pause(&node, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

async fn unpause(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<StatusCode> {
    run::unpause(&node, &id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Answers once the condition holds. The status line goes out at once (the CLI starts
/// the container only after this call is under way), the body when the wait ends.
async fn wait(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>, Query(query): Q) -> ApiResult<Response> {
    node.container(&id)?;
    let condition = q(&query, "condition").unwrap_or("").to_string();
    if !matches!(condition.as_str(), "" | "not-running" | "next-exit" | "removed") {
        return Err(ApiError::bad(format!("invalid condition: \"{condition}\"")));
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::convert::Infallible>>(1);
    tokio::spawn(async move {
        let body = match run::wait(&node, &id, &condition).await {
            Ok(code) => json!({ "StatusCode": code, "Error": null }),
            Err(e) => json!({ "StatusCode": -1, "Error": { "Message": e.to_string() } }),
        };
        let mut line = serde_json::to_vec(&body).unwrap_or_default();
        line.push(b'\n');
        let _ = tx.send(Ok(line)).await;
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

async fn attach(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(query): Q,
    req: Request,
) -> ApiResult<Response> {
    let rec = node.container(&id)?;
    let wants = run::AttachWants {
        stdin: flag(q(&query, "stdin")),
        stdout: flag(q(&query, "stdout")),
        stderr: flag(q(&query, "stderr")),
    };
    let logs = flag(q(&query, "logs"));
    let tty = rec.tty();
    let content_type = if tty {
        stream::RAW_STREAM
    } else {
        stream::MULTIPLEXED_STREAM
    };
    let stdin_once = rec.config.stdin_once.unwrap_or(false);
    let session = run::attach(&node, &rec.id, wants)?;
    node.emit("container", "attach", &rec.id, containers::container_attributes(&rec));
    let settle: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> = {
        let (node, id) = (node.clone(), rec.id.clone());
        Box::pin(async move { run::until_stopped(&node, &id).await })
    };
    Ok(stream::hijack(req, content_type, move |conn| async move {
        if logs {
            let path = node.paths.container(&rec.id).join(format!("{}-json.log", rec.id));
            let opts = slipway_runtime::logs::ReadOptions {
                stdout: wants.stdout,
                stderr: wants.stderr,
                ..Default::default()
            };
            if let Ok(entries) = tokio::task::spawn_blocking(move || slipway_runtime::logs::read(&path, &opts))
                .await
                .unwrap_or(Ok(Vec::new()))
            {
                let mut conn = conn;
                for e in entries {
                    let which = if e.stream == slipway_runtime::logs::Stream::Stderr {
                        stream::STDERR
                    } else {
                        stream::STDOUT
                    };
                    let bytes = if tty {
                        e.bytes.clone()
                    } else {
                        stream::frame(which, &e.bytes)
                    };
                    if conn.output.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                return pump_attach(settle, session, wants, tty, stdin_once, conn).await;
            }
        }
        pump_attach(settle, session, wants, tty, stdin_once, conn).await
    }))
}

async fn pump_attach(
    settle: std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    session: impl std::future::Future<Output = ApiResult<slipway_runtime::monitor::client::Session>>,
    wants: run::AttachWants,
    tty: bool,
    stdin_once: bool,
    conn: Conn,
) {
    let session = match session.await {
        Ok(s) => s,
        Err(e) => {
            let mut out = conn.output;
            let _ = out
                .write_all(&stream::frame(stream::SYSTEM_ERR, e.to_string().as_bytes()))
                .await;
            return;
        }
    };
    pump(session, conn, tty, wants.stdin, stdin_once, None, Some(settle)).await;
}

/// Copies a monitor session to a hijacked connection: output framed unless there is a
/// TTY, input (and its end) back. Returns the exit, if the session reported one.
pub async fn pump(
    session: slipway_runtime::monitor::client::Session,
    conn: Conn,
    tty: bool,
    stdin: bool,
    close_stdin_at_eof: bool,
    on_exit: Option<Box<dyn FnOnce(i64) + Send>>,
    settle: Option<std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>>,
) {
    let slipway_runtime::monitor::client::Session {
        mut output, mut input, ..
    } = session;
    let Conn {
        input: mut from_client,
        output: mut to_client,
        ..
    } = conn;
    // The monitor takes the end of our writing half as a detach: keep it open for as
    // long as output flows, even when there is no input to pass on.
    let reader = tokio::spawn(async move {
        if !stdin {
            std::future::pending::<()>().await;
        }
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_client.read(&mut buf).await {
                Ok(0) | Err(_) => {
                    if close_stdin_at_eof {
                        let _ = input.close_stdin().await;
                    }
                    std::future::pending::<()>().await;
                }
                Ok(n) => {
                    if input.write(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
    });
    let mut on_exit = on_exit;
    loop {
        match output.next().await {
            Ok(Some(Output::Stdout(d))) => {
                let bytes = if tty { d } else { stream::frame(stream::STDOUT, &d) };
                if to_client.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Ok(Some(Output::Stderr(d))) => {
                let bytes = if tty { d } else { stream::frame(stream::STDERR, &d) };
                if to_client.write_all(&bytes).await.is_err() {
                    break;
                }
            }
            Ok(Some(Output::Exit(e))) => {
                if let Some(f) = on_exit.take() {
                    f(e.code as i64);
                }
                break;
            }
            Ok(Some(Output::Error(m))) => {
                let _ = to_client
                    .write_all(&stream::frame(stream::SYSTEM_ERR, m.as_bytes()))
                    .await;
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    // Clients act as soon as the stream ends (remove the container, say); by then the
    // engine must see the end too.
    if let Some(settle) = settle {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), settle).await;
    }
    let _ = to_client.flush().await;
    let _ = to_client.shutdown().await;
    reader.abort();
}

async fn resize(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> ApiResult<StatusCode> {
    let rec = node.container(&id)?;
    let h: u16 = q(&query, "h").and_then(|v| v.parse().ok()).unwrap_or(24);
    let w: u16 = q(&query, "w").and_then(|v| v.parse().ok()).unwrap_or(80);
    if !rec.state.running() {
        return Err(ApiError::Conflict(format!("Container {} is not running", rec.id)));
    }
    node.engine.containers.resize(&rec.runtime_id, h, w).await?;
    Ok(StatusCode::OK)
}

async fn logs(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>, Query(query): Q) -> ApiResult<Response> {
    let rec = node.container(&id)?;
    let (stdout, stderr) = (flag(q(&query, "stdout")), flag(q(&query, "stderr")));
    if !stdout && !stderr {
        return Err(ApiError::bad("Bad parameters: you must choose at least one stream"));
    }
    let now = time::OffsetDateTime::now_utc();
    let time_arg = |k: &str| -> ApiResult<Option<time::OffsetDateTime>> {
        match q(&query, k).filter(|v| !v.is_empty() && *v != "0") {
            None => Ok(None),
            Some(v) => {
                if let Ok(secs) = v.parse::<f64>() {
                    return Ok(time::OffsetDateTime::from_unix_timestamp_nanos((secs * 1e9) as i128).ok());
                }
                slipway_runtime::logs::parse_time_arg(v, now)
                    .map(Some)
                    .map_err(|e| ApiError::bad(e.to_string()))
            }
        }
    };
    let tail = match q(&query, "tail") {
        None | Some("all") | Some("") => None,
        Some(n) => Some(
            n.parse::<i64>()
                .map_err(|_| ApiError::bad(format!("invalid tail {n}")))?
                .max(0) as usize,
        ),
    };
    let opts = slipway_runtime::logs::ReadOptions {
        stdout,
        stderr,
        since: time_arg("since")?,
        until: time_arg("until")?,
        tail,
    };
    let timestamps = flag(q(&query, "timestamps"));
    let follow = flag(q(&query, "follow")) && rec.state.running();
    let tty = rec.tty();
    let path = node.paths.container(&rec.id).join(format!("{}-json.log", rec.id));
    let (tx, rx) = tokio::sync::mpsc::channel::<slipway_runtime::logs::LogEntry>(256);
    let runs = node.runs.subscribe();
    let id2 = rec.id.clone();
    let node2 = node.clone();
    tokio::spawn(async move {
        if follow {
            // Following ends when the container stops, as Docker's does.
            let stop = async move {
                let mut runs = runs;
                loop {
                    let running = node2.state().containers.get(&id2).is_some_and(|c| c.state.running());
                    if !running {
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        return;
                    }
                    if runs.changed().await.is_err() {
                        return;
                    }
                }
            };
            let _ = slipway_runtime::logs::follow(path, opts, tx, stop).await;
        } else {
            let entries = tokio::task::spawn_blocking(move || slipway_runtime::logs::read(&path, &opts))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            for e in entries {
                if tx.send(e).await.is_err() {
                    return;
                }
            }
        }
    });
    let body = tokio_stream::wrappers::ReceiverStream::new(rx).map(move |e| {
        let mut bytes = Vec::new();
        if timestamps {
            let ts = e
                .time
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default();
            bytes.extend_from_slice(ts.as_bytes());
            bytes.push(b' ');
        }
        bytes.extend_from_slice(&e.bytes);
        let which = if e.stream == slipway_runtime::logs::Stream::Stderr {
            stream::STDERR
        } else {
            stream::STDOUT
        };
        Ok::<_, std::convert::Infallible>(if tty { bytes } else { stream::frame(which, &bytes) })
    });
    let content_type = if tty {
        stream::RAW_STREAM
    } else {
        stream::MULTIPLEXED_STREAM
    };
    Ok(([(header::CONTENT_TYPE, content_type)], Body::from_stream(body)).into_response())
}

use futures_util::StreamExt;

async fn rename(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> ApiResult<StatusCode> {
    let name = q(&query, "name").unwrap_or("").to_string();
    containers::rename(&node, &id, &name)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `docker update`: resources and the restart policy, applied to the running cgroup too.
async fn update(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let upd: bollard_stubs::models::HostConfig =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?;
    let rec = node.container(&id)?;
    if let Some(mem) = upd.memory.filter(|m| *m > 0)
        && mem as u64 > node.engine.memory_limit
    {
        return Err(ApiError::Limit(format!(
            "memory limit {} MiB is more than this playground's memory limit of {} MiB",
            mem >> 20,
            node.engine.memory_limit >> 20
        )));
    }
    let updated = {
        let mut st = node.state();
        let r = st
            .containers
            .get_mut(&rec.id)
            .ok_or_else(|| ApiError::no_such_container(&id))?;
        let hc = &mut r.host_config;
        macro_rules! take {
            ($($f:ident),*) => { $( if upd.$f.is_some() { hc.$f = upd.$f.clone(); } )* };
        }
        take!(
            memory,
            memory_swap,
            memory_reservation,
            nano_cpus,
            cpu_shares,
            cpu_quota,
            cpu_period,
            cpuset_cpus,
            pids_limit,
            restart_policy
        );
        State::save_container(&node.paths, r)?;
        r.clone()
    };
    if updated.state.running() {
        let mut res = serde_json::Map::new();
        if let Some(m) = updated.host_config.memory.filter(|m| *m > 0) {
            res.insert("memory".into(), json!({ "limit": m }));
        }
        let period = updated.host_config.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
        if let Some(n) = updated.host_config.nano_cpus.filter(|n| *n > 0) {
            res.insert(
                "cpu".into(),
                json!({ "period": period, "quota": n * period / 1_000_000_000 }),
            );
        }
        if let Some(p) = updated.host_config.pids_limit.filter(|p| *p > 0) {
            res.insert("pids".into(), json!({ "limit": p }));
        }
        if !res.is_empty() {
            let resources: oci_spec::runtime::LinuxResources =
                serde_json::from_value(serde_json::Value::Object(res)).map_err(ApiError::internal)?;
            let hierarchy = slipway_runtime::cgroups::Hierarchy::detect().map_err(ApiError::internal)?;
            let cg = slipway_runtime::cgroups::Cgroup::new(&hierarchy, &containers::spec::cgroup_path(&node, &updated))
                .map_err(ApiError::internal)?;
            cg.apply(&resources)
                .map_err(|e| ApiError::bad(format!("Cannot update container {}: {e}", rec.id)))?;
        }
    }
    node.emit(
        "container",
        "update",
        &rec.id,
        containers::container_attributes(&updated),
    );
    Ok(Json(json!({ "Warnings": [] })))
}

async fn top(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let rec = node.container(&id)?;
    if !rec.state.running() {
        return Err(ApiError::Conflict(format!("Container {} is not running", rec.id)));
    }
    let procs = node.engine.containers.top(&rec.runtime_id)?;
    let tick = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .unwrap_or(100) as u64;
    let boot = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("btime"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<i64>().ok())
        })
        .unwrap_or(0);
    let rows: Vec<Vec<String>> = procs
        .iter()
        .map(|p| {
            let started = time::OffsetDateTime::from_unix_timestamp(boot + (p.start_ticks / tick) as i64)
                .map(|t| format!("{:02}:{:02}", t.hour(), t.minute()))
                .unwrap_or_default();
            let cpu = p.cpu_ticks / tick;
            let user = if p.uid == 0 {
                "root".to_string()
            } else {
                p.uid.to_string()
            };
            vec![
                user,
                p.pid.to_string(),
                p.ppid.to_string(),
                "0".into(),
                started,
                if p.tty > 0 { "pts/0".into() } else { "?".into() },
                format!("{:02}:{:02}:{:02}", cpu / 3600, (cpu / 60) % 60, cpu % 60),
                p.command.clone(),
            ]
        })
        .collect();
    Ok(Json(
        json!({ "Titles": ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"], "Processes": rows }),
    ))
}

async fn stats(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>, Query(query): Q) -> ApiResult<Response> {
    let rec = node.container(&id)?;
    let stream_it = q(&query, "stream").is_none_or(|s| flag(Some(s))) && !flag(q(&query, "one-shot"));
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::spawn(async move {
        let mut previous: Option<serde_json::Value> = None;
        loop {
            let now_rec = node.container(&rec.id).ok();
            let running = now_rec.as_ref().is_some_and(|r| r.state.running());
            let s = if running {
                node.engine.containers.stats(&rec.runtime_id).ok()
            } else {
                None
            };
            let ncpu = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as u64;
            let system = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| {
                    let l = s.lines().next()?.to_string();
                    Some(
                        l.split_whitespace()
                            .skip(1)
                            .filter_map(|v| v.parse::<u64>().ok())
                            .sum::<u64>(),
                    )
                })
                .unwrap_or(0)
                * (1_000_000_000 / 100);
            let cpu_total = s.as_ref().and_then(|s| s.cpu.usage_ns).unwrap_or(0);
            let mem = s.as_ref().and_then(|s| s.memory.usage).unwrap_or(0);
            let limit = s
                .as_ref()
                .and_then(|s| s.memory.limit)
                .filter(|l| *l < (1 << 60))
                .unwrap_or(node.engine.memory_limit);
            let pids = s.as_ref().and_then(|s| s.pids.current).unwrap_or(0);
            let v = json!({
                "name": format!("/{}", rec.name),
                "id": rec.id,
                "read": super::super::state::now(),
                "preread": previous.as_ref().map(|p| p["read"].clone()).unwrap_or(json!("0001-01-01T00:00:00Z")),
                "pids_stats": { "current": pids },
                "num_procs": 0,
                "cpu_stats": { "cpu_usage": { "total_usage": cpu_total, "usage_in_kernelmode": 0, "usage_in_usermode": cpu_total }, "system_cpu_usage": system, "online_cpus": ncpu, "throttling_data": { "periods": 0, "throttled_periods": 0, "throttled_time": 0 } },
                "precpu_stats": previous.as_ref().map(|p| p["cpu_stats"].clone()).unwrap_or(json!({ "cpu_usage": { "total_usage": 0 }, "throttling_data": {} })),
                "memory_stats": { "usage": mem, "limit": limit, "stats": {} },
                "blkio_stats": { "io_service_bytes_recursive": [] },
                "networks": { "eth0": { "rx_bytes": 0, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0, "tx_bytes": 0, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0 } },
            });
            previous = Some(v.clone());
            if tx.send(v).await.is_err() || !stream_it || !running {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    Ok(stream::ndjson(rx))
}

async fn remove(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(query): Q,
) -> ApiResult<StatusCode> {
    if flag(q(&query, "link")) {
        return Err(ApiError::bad(
            "legacy links are not removable here: the container keeps its name",
        ));
    }
    run::remove(&node, &id, flag(q(&query, "force")), flag(q(&query, "v"))).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn prune(Extension(node): Extension<Arc<Node>>, Query(query): Q) -> ApiResult<Json<serde_json::Value>> {
    let filters = Filters::parse(q(&query, "filters"), &["label", "label!", "until"])?;
    let victims: Vec<_> = node
        .state()
        .containers
        .values()
        .filter(|c| !c.state.running() && c.state.status != "restarting")
        .filter(|c| filters.labels_match("label", &c.labels()) && filters.labels_excluded("label!", &c.labels()))
        .cloned()
        .collect();
    let mut deleted = Vec::new();
    let mut space = 0u64;
    for c in victims {
        let (upper, _) = node.container_layer(&c.id);
        space += du(&upper);
        if run::remove(&node, &c.id, false, false).await.is_ok() {
            deleted.push(c.id);
        }
    }
    node.emit("container", "prune", "", [("reclaimed".to_string(), space.to_string())]);
    Ok(Json(
        json!({ "ContainersDeleted": if deleted.is_empty() { serde_json::Value::Null } else { json!(deleted) }, "SpaceReclaimed": space }),
    ))
}

/// Bytes used under a directory.
pub fn du(path: &std::path::Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![path.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&p) else { continue };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    total
}

#[allow(dead_code)]
fn _version_used(_: ApiVersion) {}
