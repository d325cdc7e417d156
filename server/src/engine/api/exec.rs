//! `docker exec`: create, start (hijacked), resize, inspect.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::super::Node;
use super::super::error::{ApiError, ApiResult};
use super::super::exec::{ExecInstance, process_for};
use super::super::stream;

pub fn routes() -> Router {
    Router::new()
        .route("/containers/{id}/exec", post(create))
        .route("/exec/{id}/start", post(start))
        .route("/exec/{id}/resize", post(resize))
        .route("/exec/{id}/json", get(inspect))
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct CreateBody {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    user: Option<String>,
    working_dir: Option<String>,
    privileged: bool,
    console_size: Option<Vec<u16>>,
}

async fn create(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Response> {
    let b: CreateBody = serde_json::from_slice(&body).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?;
    let rec = node.container(&id)?;
    match rec.state.status.as_str() {
        "running" => {}
        "paused" => {
            return Err(ApiError::Conflict(format!(
                "Container {} is paused, unpause the container before exec",
                rec.id
            )));
        }
        "restarting" => {
            return Err(ApiError::Conflict(format!(
                "Container {} is restarting, wait until the container is running",
                rec.id
            )));
        }
        _ => return Err(ApiError::Conflict(format!("Container {} is not running", rec.id))),
    }
    let cmd = b.cmd.clone().unwrap_or_default();
    if cmd.is_empty() {
        return Err(ApiError::bad("No exec command specified"));
    }
    if b.privileged {
        return Err(ApiError::Forbidden(
            "privileged exec is not available in a Slipway playground".into(),
        ));
    }
    let exec_id = super::super::state::new_id();
    node.execs.insert(ExecInstance {
        id: exec_id.clone(),
        container: rec.id.clone(),
        cmd,
        tty: b.tty,
        attach_stdin: b.attach_stdin,
        attach_stdout: b.attach_stdout,
        attach_stderr: b.attach_stderr,
        env: b.env.unwrap_or_default(),
        user: b.user,
        working_dir: b.working_dir,
        privileged: false,
        running: false,
        exit_code: None,
        pid: 0,
        started: false,
        console_size: b.console_size.filter(|c| c.len() == 2).map(|c| (c[0], c[1])),
    });
    let mut attrs = super::super::containers::container_attributes(&rec);
    attrs.push(("execID".into(), exec_id.clone()));
    node.emit(
        "container",
        &format!("exec_create: {}", node.execs.get(&exec_id)?.cmd.join(" ")),
        &rec.id,
        attrs,
    );
    Ok((StatusCode::CREATED, Json(json!({ "Id": exec_id }))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase", default)]
struct StartBody {
    detach: bool,
    tty: Option<bool>,
    console_size: Option<Vec<u16>>,
}

async fn start(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>, req: Request) -> ApiResult<Response> {
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let b: StartBody = if bytes.is_empty() {
        StartBody::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| ApiError::bad(format!("invalid JSON: {e}")))?
    };
    let exec = node.execs.get(&id)?;
    if exec.started {
        return Err(ApiError::Conflict(format!("Error: Exec command {id} has already run")));
    }
    let rec = node.container(&exec.container)?;
    if !rec.state.running() {
        return Err(ApiError::Conflict(format!("Container {} is not running", rec.id)));
    }
    let tty = b.tty.unwrap_or(exec.tty);
    let process = process_for(
        &node,
        &rec,
        exec.cmd.clone(),
        tty,
        Some(&exec.env),
        exec.user.as_deref(),
        exec.working_dir.as_deref(),
    )?;
    node.execs.update(&id, |e| e.started = true);
    let console = b
        .console_size
        .filter(|c| c.len() == 2)
        .map(|c| (c[0], c[1]))
        .or(exec.console_size);
    if b.detach {
        let (session, on_exit) = launch(&node, &rec, &exec, process, tty, console)
            .await
            .map_err(|(message, _)| ApiError::internal(message))?;
        tokio::spawn(async move {
            let mut session = session;
            while let Ok(Some(out)) = session.output.next().await {
                if let slipway_runtime::monitor::client::Output::Exit(e) = out {
                    on_exit(e.code as i64);
                    return;
                }
            }
        });
        return Ok(StatusCode::OK.into_response());
    }
    let content_type = if tty {
        stream::RAW_STREAM
    } else {
        stream::MULTIPLEXED_STREAM
    };
    let req = Request::from_parts(parts, axum::body::Body::empty());
    let stdin = exec.attach_stdin;
    // The process starts once the connection is the client's: output written right after
    // the 101 could otherwise land in the client's HTTP buffer and be lost (docker-py).
    Ok(stream::hijack(req, content_type, move |mut conn| async move {
        match launch(&node, &rec, &exec, process, tty, console).await {
            Ok((session, on_exit)) => {
                super::containers::pump(session, conn, tty, stdin, true, Some(on_exit), None).await;
            }
            Err((message, _)) => {
                use tokio::io::AsyncWriteExt;
                let text = format!("{message}\r\n");
                let bytes = if tty {
                    text.into_bytes()
                } else {
                    stream::frame(stream::STDERR, text.as_bytes())
                };
                let _ = conn.output.write_all(&bytes).await;
                let _ = conn.output.shutdown().await;
            }
        }
    }))
}

type OnExit = Box<dyn FnOnce(i64) + Send>;

/// Starts an exec's process: its session, and what to do when it ends. A process that
/// cannot start is an exit of its own, as in dockerd (126, or 127 for a missing program).
async fn launch(
    node: &Arc<Node>,
    rec: &super::super::state::ContainerRecord,
    exec: &ExecInstance,
    process: oci_spec::runtime::Process,
    tty: bool,
    console: Option<(u16, u16)>,
) -> Result<(slipway_runtime::monitor::client::Session, OnExit), (String, i64)> {
    let id = exec.id.clone();
    let session = match node.engine.containers.exec(&rec.runtime_id, &id, process).await {
        Ok(s) => s,
        Err(e) => {
            let message = format!("OCI runtime exec failed: exec failed: unable to start container process: {e}");
            let code = if message.contains("not found") || message.contains("No such file") {
                127
            } else {
                126
            };
            node.execs.update(&id, |x| {
                x.running = false;
                x.exit_code = Some(code);
            });
            return Err((message, code));
        }
    };
    node.execs.update(&id, |e| {
        e.running = true;
        e.pid = session.pid.unwrap_or(0) as i64;
    });
    if let Some((h, w)) = console
        && tty
    {
        let _ = node.engine.containers.exec_resize(&rec.runtime_id, &id, h, w).await;
    }
    let mut attrs = super::super::containers::container_attributes(rec);
    attrs.push(("execID".into(), id.clone()));
    node.emit(
        "container",
        &format!("exec_start: {}", exec.cmd.join(" ")),
        &rec.id,
        attrs.clone(),
    );
    let node2 = node.clone();
    let container = rec.id.clone();
    let on_exit: OnExit = Box::new(move |code| {
        node2.execs.update(&id, |e| {
            e.running = false;
            e.exit_code = Some(code);
        });
        attrs.push(("exitCode".into(), code.to_string()));
        node2.emit("container", "exec_die", &container, attrs);
    });
    Ok((session, on_exit))
}

async fn resize(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let exec = node.execs.get(&id)?;
    let h: u16 = q.get("h").and_then(|v| v.parse().ok()).unwrap_or(24);
    let w: u16 = q.get("w").and_then(|v| v.parse().ok()).unwrap_or(80);
    let rec = node.container(&exec.container)?;
    if exec.running {
        node.engine.containers.exec_resize(&rec.runtime_id, &id, h, w).await?;
    } else {
        node.execs.update(&id, |e| e.console_size = Some((h, w)));
    }
    Ok(StatusCode::OK)
}

async fn inspect(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<Json<serde_json::Value>> {
    let e = node.execs.get(&id)?;
    Ok(Json(json!({
        "ID": e.id,
        "Running": e.running,
        "ExitCode": e.exit_code,
        "ProcessConfig": {
            "tty": e.tty,
            "entrypoint": e.cmd.first().cloned().unwrap_or_default(),
            "arguments": e.cmd.iter().skip(1).cloned().collect::<Vec<_>>(),
            "privileged": e.privileged,
            "user": e.user.clone().unwrap_or_default(),
        },
        "OpenStdin": e.attach_stdin,
        "OpenStderr": e.attach_stderr,
        "OpenStdout": e.attach_stdout,
        "CanRemove": false,
        "ContainerID": e.container,
        "DetachKeys": "",
        "Pid": e.pid,
    })))
}
