//! The course pages: the index, lessons, lesson files and the progress a learner records.

use std::sync::Arc;

use axum::Extension;
use axum::extract::{Form, Path, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use super::identity::Identity;
use super::templates::{
    ExerciseView, IndexPage, LessonErrorPage, LessonLink, LessonPage, ModuleCard, NotFoundPage, ProblemView,
};
use super::{AppError, AppState};
use crate::course::{Lesson, Module, Severity};
use crate::store::Learner;

impl AppState {
    /// The learner behind a request: nothing to look up for a brand-new visitor.
    pub(super) async fn learner(&self, me: &Identity) -> Result<Arc<Learner>, AppError> {
        if me.fresh {
            return Ok(Arc::new(Learner::default()));
        }
        Ok(self.store.learner(&me.id).await?)
    }
}

fn status(lesson: &Lesson, learner: &Learner) -> &'static str {
    let key = lesson.key();
    if lesson.body.is_none() {
        "broken"
    } else if learner.completed(&key) {
        "done"
    } else if learner.opened(&key) {
        "opened"
    } else {
        "new"
    }
}

fn link(lesson: &Lesson, learner: &Learner, current: bool) -> LessonLink {
    LessonLink {
        url: lesson.url(),
        title: lesson.title.clone(),
        summary: lesson.summary.clone(),
        status: status(lesson, learner),
        current,
    }
}

fn card(module: &Module, learner: &Learner) -> ModuleCard {
    let lessons: Vec<LessonLink> = module.lessons.iter().map(|l| link(l, learner, false)).collect();
    let done = lessons.iter().filter(|l| l.status == "done").count();
    let total = lessons.len();
    ModuleCard {
        title: module.title.clone(),
        summary: module.summary.clone(),
        percent: (done * 100).checked_div(total).unwrap_or(0),
        lessons,
        done,
        total,
    }
}

pub async fn index(State(app): State<AppState>, Extension(me): Extension<Identity>) -> Result<IndexPage, AppError> {
    let learner = app.learner(&me).await?;
    let course = app.course.load_full();
    let modules: Vec<ModuleCard> = course.modules.iter().map(|m| card(m, &learner)).collect();
    let done = modules.iter().map(|m| m.done).sum();
    let total = modules.iter().map(|m| m.total).sum();
    // Where to pick up: the first lesson not done, in course order.
    let resume = course
        .lessons()
        .find(|l| l.body.is_some() && !learner.completed(&l.key()))
        .map(|l| link(l, &learner, false));
    Ok(IndexPage {
        frame: app.frame(&learner),
        modules,
        done,
        total,
        resume,
    })
}

pub async fn lesson(
    State(app): State<AppState>,
    Extension(me): Extension<Identity>,
    Path((module, lesson)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let course = app.course.load_full();
    let Some(found) = course.find(&module, &lesson) else {
        return Ok(not_found_page(&app, "lesson").await);
    };
    let key = found.lesson.key();
    if !me.fresh {
        app.store.record_opened(&me.id, &key).await?;
    }
    let learner = app.learner(&me).await?;
    let Some(body) = found.lesson.body.clone() else {
        let problems = found
            .lesson
            .problems
            .iter()
            .map(|p| ProblemView {
                location: format!(
                    "{}:{}",
                    p.path.strip_prefix(&course.root).unwrap_or(&p.path).display(),
                    p.line
                ),
                severity: if p.severity == Severity::Error {
                    "error"
                } else {
                    "warning"
                },
                message: p.message.clone(),
            })
            .collect();
        let page = LessonErrorPage {
            frame: app.frame(&learner),
            title: found.lesson.title.clone(),
            problems,
        };
        return Ok((StatusCode::INTERNAL_SERVER_ERROR, page).into_response());
    };
    let mut frame = app.frame(&learner);
    if body.has_mermaid {
        frame.mermaid_js = app.urls.mermaid_js.clone();
    }
    let playground_nodes = found.lesson.playground_nodes;
    let attempts = if me.fresh {
        Vec::new()
    } else {
        app.store.attempts(&me.id, Some(&key)).await?
    };
    if playground_nodes > 0 && app.playgrounds.is_some() {
        frame.playground = app.urls.playground.clone();
    }
    let page = LessonPage {
        frame,
        module_title: found.module.title.clone(),
        module_lessons: found
            .module
            .lessons
            .iter()
            .map(|l| link(l, &learner, l.slug == found.lesson.slug))
            .collect(),
        title: found.lesson.title.clone(),
        summary: found.lesson.summary.clone(),
        url: found.lesson.url(),
        completed: learner.completed(&key),
        playground_nodes,
        key,
        body_html: body.html.clone(),
        toc: body.toc.clone(),
        exercises: body
            .exercises
            .iter()
            .map(|e| {
                let attempt = attempts.iter().find(|a| a.exercise == e.id).map(|a| &a.attempt);
                let completed = attempt.is_some_and(|a| a.completed_at.is_some());
                let used = attempt.map(|a| a.hints_used.max(0) as usize).unwrap_or(0);
                let viewed = attempt.is_some_and(|a| a.solution_viewed_at.is_some());
                ExerciseView {
                    id: e.id.clone(),
                    title: e.title.clone(),
                    task_html: e.task_html.clone(),
                    checks_html: e.checks_html.clone(),
                    hints_total: e.hints.len(),
                    hints_shown: e.hints.iter().take(used).map(|h| h.html.clone()).collect(),
                    has_solution: e.solution_html.is_some(),
                    solution_html: if completed || viewed {
                        e.solution_html.clone()
                    } else {
                        None
                    },
                    completed,
                }
            })
            .collect(),
        beacon: me.fresh,
        previous: found.previous().map(|l| link(l, &learner, false)),
        next: found.next().map(|l| link(l, &learner, false)),
    };
    Ok(page.into_response())
}

/// Sent by a lesson page that was served before the learner had an identity.
pub async fn opened(
    State(app): State<AppState>,
    Extension(me): Extension<Identity>,
    Path((module, lesson)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    let course = app.course.load_full();
    let Some(found) = course.find(&module, &lesson) else {
        return Ok(StatusCode::NOT_FOUND);
    };
    app.store.record_opened(&me.id, &found.lesson.key()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct CompleteForm {
    done: u8,
}

pub async fn complete(
    State(app): State<AppState>,
    Extension(me): Extension<Identity>,
    Path((module, lesson)): Path<(String, String)>,
    Form(form): Form<CompleteForm>,
) -> Result<Response, AppError> {
    let course = app.course.load_full();
    let Some(found) = course.find(&module, &lesson) else {
        return Ok(not_found_page(&app, "lesson").await);
    };
    app.store
        .set_completed(&me.id, &found.lesson.key(), form.done != 0)
        .await?;
    // Finishing a lesson moves on to the next one.
    let to = match (form.done != 0, found.next()) {
        (true, Some(next)) => next.url(),
        _ => found.lesson.url(),
    };
    Ok(Redirect::to(&to).into_response())
}

/// Images and other files that lessons link to. Lesson sources and hidden files are not served.
pub async fn course_file(State(app): State<AppState>, Path(path): Path<String>, request: Request) -> Response {
    let course = app.course.load_full();
    let rel = std::path::Path::new(&path);
    let safe = rel.components().all(|c| match c {
        std::path::Component::Normal(s) => !s.to_string_lossy().starts_with('.'),
        _ => false,
    });
    let source = rel.extension().is_some_and(|e| e == "md" || e == "yaml" || e == "yml");
    if !safe || source || rel.components().count() < 2 {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    }
    match ServeFile::new(course.root.join(rel)).oneshot(request).await {
        Ok(r) => r.into_response(),
        Err(e) => match e {},
    }
}

async fn not_found_page(app: &AppState, what: &str) -> Response {
    let frame = app.frame(&Learner::default());
    (
        StatusCode::NOT_FOUND,
        NotFoundPage {
            frame,
            what: what.to_string(),
        },
    )
        .into_response()
}

pub async fn not_found(State(app): State<AppState>) -> Response {
    not_found_page(&app, "page").await
}
