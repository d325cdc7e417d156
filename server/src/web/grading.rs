//! The grader's HTTP face: the lesson page's live results over a WebSocket, hints and
//! solutions on request (each recorded in the learner's attempt), and an author's API to
//! set up and evaluate one exercise in a playground (what `slipway lessons verify` uses).
//!
//! Socket protocol (server to page, JSON text frames):
//! `{"type":"setup","exercise":ID,"error":null|TEXT}`,
//! `{"type":"results","exercise":ID,"checks":[{"passed":B,"detail":T,"hint_html":H|null}],"complete":B,
//!   "offered_hint":N|null,"event_time":NS|null,"solution_html":HTML|null}`,
//! `{"type":"ended","message":T}` and `{"type":"error","message":T}`.

use std::sync::Arc;

use axum::Json;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::AppState;
use super::playground::{Caller, message};
use crate::course::{Exercise, LessonBody};
use crate::grader::live::{self, Results};
use crate::grader::{Target, evaluate, setup};
use crate::store::LearnerId;

/// The lesson's body and key, or a 404 response.
#[allow(clippy::result_large_err)]
fn lesson(app: &AppState, module: &str, lesson: &str) -> Result<(String, Arc<LessonBody>), Response> {
    let course = app.course.load_full();
    let found = course
        .find(module, lesson)
        .ok_or_else(|| message(StatusCode::NOT_FOUND, "no such lesson"))?;
    let body = found.lesson.body.clone().ok_or_else(|| {
        message(
            StatusCode::NOT_FOUND,
            "the lesson cannot be read; see the course's lint report",
        )
    })?;
    Ok((found.lesson.key(), body))
}

/// One exercise of a lesson, as found from a request's path.
struct Found {
    key: String,
    body: Arc<LessonBody>,
    index: usize,
}

impl Found {
    fn exercise(&self) -> &Exercise {
        &self.body.exercises[self.index]
    }
}

#[allow(clippy::result_large_err)]
fn exercise(app: &AppState, module: &str, lesson_slug: &str, id: &str) -> Result<Found, Response> {
    let (key, body) = lesson(app, module, lesson_slug)?;
    let index = body
        .exercises
        .iter()
        .position(|e| e.id == id)
        .ok_or_else(|| message(StatusCode::NOT_FOUND, "no such exercise"))?;
    Ok(Found { key, body, index })
}

fn learner(caller: &Caller) -> Option<LearnerId> {
    match caller {
        Caller::Learner(id) => LearnerId::parse(id),
        Caller::Admin => None,
    }
}

#[derive(Deserialize)]
pub struct SocketQuery {
    playground: String,
}

/// `GET /learn/{module}/{lesson}/grading?playground=ID` (WebSocket).
pub async fn socket(
    State(app): State<AppState>,
    caller: Caller,
    Path((module, lesson_slug)): Path<(String, String)>,
    Query(q): Query<SocketQuery>,
    ws: WebSocketUpgrade,
) -> Response {
    let (key, body) = match lesson(&app, &module, &lesson_slug) {
        Ok(l) => l,
        Err(r) => return r,
    };
    let pgs = match super::proxy::owned(&app, &caller, &q.playground) {
        Ok((pgs, _)) => pgs,
        Err(e) => return e.into_response(),
    };
    let who = learner(&caller);
    ws.on_upgrade(move |socket| relay(socket, app, pgs, q.playground, key, body, who))
}

async fn relay(
    mut socket: WebSocket,
    app: AppState,
    pgs: Arc<crate::playground::Playgrounds>,
    id: String,
    key: String,
    body: Arc<LessonBody>,
    who: Option<LearnerId>,
) {
    let (tx, mut rx) = mpsc::channel(64);
    let watcher = tokio::spawn(live::watch(pgs, id, key.clone(), body.clone(), tx));
    let mut complete = vec![false; body.exercises.len()];
    loop {
        tokio::select! {
            got = rx.recv() => {
                let Some(m) = got else { break };
                let text = match m {
                    live::Message::Setup { exercise, error } => {
                        let ex = &body.exercises[exercise];
                        if error.is_none()
                            && let Some(me) = &who
                            && let Err(e) = app.store.start_attempt(me, &key, &ex.id).await
                        {
                            tracing::error!(error = format!("{e:#}"), "recording an attempt");
                        }
                        json!({ "type": "setup", "exercise": ex.id, "error": error })
                    }
                    live::Message::Results(r) => {
                        let ex = &body.exercises[r.exercise];
                        if r.complete && !complete[r.exercise] {
                            complete[r.exercise] = true;
                            if let Some(me) = &who {
                                record_completion(&app, me, &key, &body, ex, &complete).await;
                            }
                        }
                        results_json(ex, &r)
                    }
                    live::Message::Ended(m) => json!({ "type": "ended", "message": m }),
                };
                if socket.send(Message::Text(text.to_string().into())).await.is_err() {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => {}
            },
        }
    }
    watcher.abort();
}

fn results_json(ex: &Exercise, r: &Results) -> serde_json::Value {
    json!({
        "type": "results",
        "exercise": ex.id,
        // A failing check brings its hint, the way forward for the learner.
        "checks": r.outcomes.iter().zip(&ex.check_hints_html).map(|(o, h)| json!({
            "passed": o.passed,
            "detail": o.detail,
            "hint_html": if o.passed { None } else { h.clone() },
        })).collect::<Vec<_>>(),
        "complete": r.complete,
        "offered_hint": r.offered_hint,
        "event_time": r.event_time.map(|t| t.to_string()),
        // Once done, the reference solution is there to compare with.
        "solution_html": if r.complete { ex.solution_html.clone() } else { None },
    })
}

/// An exercise done: its attempt, and the lesson once every graded exercise is.
async fn record_completion(
    app: &AppState,
    me: &LearnerId,
    key: &str,
    body: &LessonBody,
    ex: &Exercise,
    complete: &[bool],
) {
    if let Err(e) = app.store.complete_attempt(me, key, &ex.id).await {
        tracing::error!(error = format!("{e:#}"), "recording a completed exercise");
        return;
    }
    let attempts = app.store.attempts(me, Some(key)).await.unwrap_or_default();
    let all_done = body.exercises.iter().enumerate().all(|(i, e)| {
        e.checks.is_empty()
            || complete[i]
            || attempts
                .iter()
                .any(|a| a.exercise == e.id && a.attempt.completed_at.is_some())
    });
    if all_done && let Err(e) = app.store.set_completed(me, key, true).await {
        tracing::error!(error = format!("{e:#}"), "recording a completed lesson");
    }
}

/// `POST /learn/{module}/{lesson}/exercises/{exercise}/hint`: the next hint.
pub async fn hint(
    State(app): State<AppState>,
    caller: Caller,
    Path((module, lesson_slug, ex_id)): Path<(String, String, String)>,
) -> Response {
    let found = match exercise(&app, &module, &lesson_slug, &ex_id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (key, ex) = (&found.key, found.exercise());
    let Some(me) = learner(&caller) else {
        return message(StatusCode::BAD_REQUEST, "hints are a learner's");
    };
    let used = match app.store.attempts(&me, Some(key)).await {
        Ok(all) => all
            .into_iter()
            .find(|a| a.exercise == ex.id)
            .map(|a| a.attempt.hints_used)
            .unwrap_or(0),
        Err(e) => return super::AppError::from(e).into_response(),
    };
    let next = used as usize + 1;
    let Some(h) = ex.hints.get(next - 1) else {
        return message(StatusCode::NOT_FOUND, "there are no more hints");
    };
    if let Err(e) = app.store.use_hints(&me, key, &ex.id, next as i64).await {
        return super::AppError::from(e).into_response();
    }
    Json(json!({ "index": next, "html": h.html, "remaining": ex.hints.len() - next })).into_response()
}

/// `POST /learn/{module}/{lesson}/exercises/{exercise}/solution`.
pub async fn solution(
    State(app): State<AppState>,
    caller: Caller,
    Path((module, lesson_slug, ex_id)): Path<(String, String, String)>,
) -> Response {
    let found = match exercise(&app, &module, &lesson_slug, &ex_id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (key, ex) = (&found.key, found.exercise());
    let Some(html) = &ex.solution_html else {
        return message(StatusCode::NOT_FOUND, "this exercise has no solution to show");
    };
    if let Some(me) = learner(&caller)
        && let Err(e) = app.store.view_solution(&me, key, &ex.id).await
    {
        return super::AppError::from(e).into_response();
    }
    Json(json!({ "html": html })).into_response()
}

/// `POST /api/playgrounds/{id}/exercises/{module}/{lesson}/{exercise}/setup`.
pub async fn setup_exercise(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, module, lesson_slug, ex_id)): Path<(String, String, String, String)>,
) -> Response {
    let found = match exercise(&app, &module, &lesson_slug, &ex_id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (key, ex) = (&found.key, found.exercise());
    let pgs = match super::proxy::owned(&app, &caller, &id) {
        Ok((pgs, _)) => pgs,
        Err(e) => return e.into_response(),
    };
    match setup::ensure(&pgs, &id, &format!("{key}/{}", ex.id), ex).await {
        Ok(since) => Json(json!({ "since": since.to_string() })).into_response(),
        Err(e) => message(StatusCode::UNPROCESSABLE_ENTITY, e),
    }
}

/// `GET /api/playgrounds/{id}/exercises/{module}/{lesson}/{exercise}`: its checks, now.
pub async fn evaluate_exercise(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, module, lesson_slug, ex_id)): Path<(String, String, String, String)>,
) -> Response {
    let found = match exercise(&app, &module, &lesson_slug, &ex_id) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let (key, ex) = (&found.key, found.exercise());
    let (pgs, _) = match super::proxy::owned(&app, &caller, &id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let since = match pgs.get(&id) {
        Some(pg) => pg.exercises.lock().await.get(&format!("{key}/{}", ex.id)).copied(),
        None => None,
    };
    let target = Target {
        playgrounds: pgs,
        id,
        since: since.unwrap_or_else(crate::grader::now_nanos),
    };
    let outcomes = evaluate::exercise(&target, ex).await;
    let checks: Vec<_> = ex
        .checks
        .iter()
        .zip(&outcomes)
        .map(|(c, o)| json!({ "description": c.description, "passed": o.passed, "detail": o.detail }))
        .collect();
    Json(json!({
        "exercise": ex.id,
        "set_up": since.is_some(),
        "complete": evaluate::complete(&outcomes),
        "checks": checks,
    }))
    .into_response()
}
