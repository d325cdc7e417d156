//! The playgrounds' HTTP face: the REST API (for the page and the CLI) and the terminal
//! WebSockets. Learners reach their own playgrounds; the admin token reaches all.
//!
//! Terminal socket protocol: binary frames carry terminal bytes both ways (the server
//! first replays the terminal's recent output); text frames carry JSON control
//! messages: `{"type":"resize","rows":R,"cols":C}` from the browser, and
//! `{"type":"exit","code":N}` or `{"type":"expired","message":...}` from the server.

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::AppState;
use super::admin::Admin;
use super::identity::Identity;
use crate::playground::terminal::Event;
use crate::playground::{PlaygroundError, Playgrounds, Record};

/// Who is asking: the operator, or a learner (by their identity).
pub enum Caller {
    Admin,
    Learner(String),
}

impl Caller {
    pub(super) fn owner(&self) -> String {
        match self {
            Caller::Admin => "admin".into(),
            Caller::Learner(id) => id.clone(),
        }
    }
    pub(super) fn may_use(&self, record: &Record) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Learner(id) => &record.owner == id,
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        if parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
            return Admin::from_request_parts(parts, app).await.map(|_| Caller::Admin);
        }
        match parts.extensions.get::<Identity>() {
            Some(me) => Ok(Caller::Learner(me.id.as_str().to_string())),
            None => Err((StatusCode::UNAUTHORIZED, "who are you?").into_response()),
        }
    }
}

pub(super) fn message(status: StatusCode, text: impl std::fmt::Display) -> Response {
    (status, Json(serde_json::json!({ "message": text.to_string() }))).into_response()
}

impl IntoResponse for PlaygroundError {
    fn into_response(self) -> Response {
        let status = match &self {
            PlaygroundError::BadNodeCount { .. } => StatusCode::BAD_REQUEST,
            PlaygroundError::LearnerLimit(_) => StatusCode::TOO_MANY_REQUESTS,
            PlaygroundError::AtCapacity { .. } | PlaygroundError::NodeImageMissing => StatusCode::SERVICE_UNAVAILABLE,
            PlaygroundError::NotFound | PlaygroundError::NoSuchNode => StatusCode::NOT_FOUND,
            PlaygroundError::Internal(e) => {
                tracing::error!(error = format!("{e:#}"), "playground request failed");
                return message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request failed on our side; it has been logged",
                );
            }
        };
        let mut response = message(status, &self);
        if status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from_static("120"),
            );
        }
        response
    }
}

// The error side is the response itself, returned as it is by the handlers.
#[allow(clippy::result_large_err)]
fn playgrounds(app: &AppState) -> Result<&Arc<Playgrounds>, Response> {
    app.playgrounds.as_ref().ok_or_else(|| {
        message(
            StatusCode::SERVICE_UNAVAILABLE,
            "playgrounds are not available on this server (see its log)",
        )
    })
}

/// The playground if the caller may use it, else 404 (not 403: no probing for IDs); 503
/// when this server has no playgrounds at all.
#[allow(clippy::result_large_err)]
fn owned(app: &AppState, caller: &Caller, id: &str) -> Result<(Arc<Playgrounds>, Record), Response> {
    playgrounds(app)?;
    super::proxy::owned(app, caller, id).map_err(IntoResponse::into_response)
}

#[derive(Deserialize)]
pub struct NewPlayground {
    #[serde(default = "one")]
    nodes: usize,
}

fn one() -> usize {
    1
}

pub async fn create(State(app): State<AppState>, caller: Caller, body: Option<Json<NewPlayground>>) -> Response {
    let pgs = match playgrounds(&app) {
        Ok(p) => p.clone(),
        Err(r) => return r,
    };
    let nodes = body.map(|b| b.nodes).unwrap_or(1);
    let capped = matches!(caller, Caller::Learner(_));
    match pgs.create(&caller.owner(), nodes, capped).await {
        Ok(record) => (StatusCode::CREATED, Json(record)).into_response(),
        Err(e) => e.into_response(),
    }
}

pub async fn list(State(app): State<AppState>, caller: Caller) -> Response {
    match playgrounds(&app) {
        Ok(pgs) => Json(match &caller {
            Caller::Admin => pgs.list(),
            Caller::Learner(id) => pgs.of_owner(id),
        })
        .into_response(),
        Err(r) => r,
    }
}

/// The caller's latest playground, or `null` (not a 404: having none is not an error,
/// and browsers log every 404 as one).
pub async fn mine(State(app): State<AppState>, caller: Caller) -> Response {
    match playgrounds(&app) {
        Ok(pgs) => Json(pgs.of_owner(&caller.owner()).into_iter().next_back()).into_response(),
        Err(r) => r,
    }
}

pub async fn show(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    match owned(&app, &caller, &id) {
        Ok((_, record)) => Json(record).into_response(),
        Err(r) => r,
    }
}

pub async fn remove(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    match owned(&app, &caller, &id) {
        Ok((pgs, _)) => match pgs.remove(&id).await {
            Ok(()) => StatusCode::NO_CONTENT.into_response(),
            Err(e) => e.into_response(),
        },
        Err(r) => r,
    }
}

pub async fn extend(State(app): State<AppState>, caller: Caller, Path(id): Path<String>) -> Response {
    match owned(&app, &caller, &id) {
        Ok((pgs, _)) => match pgs.extend(&id) {
            Ok(r) => Json(r).into_response(),
            Err(e) => e.into_response(),
        },
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct ShareRequest {
    shared: bool,
}

/// `{"shared": true}` lets anyone with a port link open it; terminals stay the owner's.
pub async fn share(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(req): Json<ShareRequest>,
) -> Response {
    match owned(&app, &caller, &id) {
        Ok((pgs, _)) => match pgs.share(&id, req.shared) {
            Ok(r) => Json(r).into_response(),
            Err(e) => e.into_response(),
        },
        Err(r) => r,
    }
}

#[derive(Deserialize)]
pub struct ExecRequest {
    cmd: Vec<String>,
}

pub async fn exec(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, node)): Path<(String, String)>,
    Json(req): Json<ExecRequest>,
) -> Response {
    if req.cmd.is_empty() {
        return message(StatusCode::BAD_REQUEST, "no command");
    }
    let pgs = match owned(&app, &caller, &id) {
        Ok((pgs, _)) => pgs,
        Err(r) => return r,
    };
    match pgs.exec(&id, &node, req.cmd).await {
        Ok((code, out, err)) => Json(serde_json::json!({
            "exit_code": code,
            "stdout": String::from_utf8_lossy(&out),
            "stderr": String::from_utf8_lossy(&err),
        }))
        .into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct Control {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    rows: u16,
    #[serde(default)]
    cols: u16,
}

pub async fn terminal(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, node, n)): Path<(String, String, u32)>,
    ws: WebSocketUpgrade,
) -> Response {
    let pgs = match owned(&app, &caller, &id) {
        Ok((pgs, _)) => pgs,
        Err(r) => return r,
    };
    if !(1..=16).contains(&n) {
        return message(StatusCode::BAD_REQUEST, "terminals are numbered 1 to 16");
    }
    let terminal = match pgs.terminal(&id, &node, n).await {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    ws.on_upgrade(move |socket| relay(socket, pgs, id, terminal))
}

async fn relay(
    mut socket: WebSocket,
    pgs: Arc<Playgrounds>,
    id: String,
    terminal: Arc<crate::playground::terminal::Terminal>,
) {
    let view = terminal.view();
    if !view.replay.is_empty() && socket.send(Message::Binary(view.replay.into())).await.is_err() {
        return;
    }
    let mut events = view.events;
    let ended = |code: i32| -> Message {
        let text = if pgs.get(&id).is_none() {
            serde_json::json!({ "type": "expired", "message": "This playground has ended: its time ran out or it was closed." })
        } else {
            serde_json::json!({ "type": "exit", "code": code })
        };
        Message::Text(text.to_string().into())
    };
    if let Some(code) = view.exited {
        let _ = socket.send(ended(code)).await;
        return;
    }
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(Event::Output(bytes)) => {
                    if socket.send(Message::Binary(bytes.to_vec().into())).await.is_err() {
                        return;
                    }
                }
                Ok(Event::Exit(code)) => {
                    let _ = socket.send(ended(code)).await;
                    return;
                }
                // A viewer too slow for the output misses some; the screen catches up.
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => return,
            },
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Binary(data))) => {
                    if let Some(p) = pgs.get(&id) {
                        p.touch();
                    }
                    if terminal.write(&data).await.is_err() {
                        return;
                    }
                }
                Some(Ok(Message::Text(text))) => {
                    if let Ok(c) = serde_json::from_str::<Control>(&text)
                        && c.kind == "resize"
                        && c.rows > 0
                        && c.cols > 0
                    {
                        let _ = terminal.resize(c.rows.min(500), c.cols.min(1000)).await;
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return,
            },
        }
    }
}
