//! The progress page: every graded exercise of the course with the learner's attempt
//! (started, finished and how long it took, hints revealed, solution viewed).

use axum::Extension;
use axum::extract::State;

use super::identity::Identity;
use super::templates::{ProgressExercise, ProgressLesson, ProgressPage};
use super::{AppError, AppState};

fn when(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day] [hour]:[minute] UTC"
            ))
            .ok()
        })
        .unwrap_or_default()
}

fn took(seconds: i64) -> String {
    match seconds {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", s / 60),
        s => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

pub async fn show(State(app): State<AppState>, Extension(me): Extension<Identity>) -> Result<ProgressPage, AppError> {
    let learner = app.learner(&me).await?;
    let attempts = if me.fresh {
        Vec::new()
    } else {
        app.store.attempts(&me.id, None).await?
    };
    let course = app.course.load_full();
    let mut lessons = Vec::new();
    let (mut done, mut total) = (0, 0);
    for lesson in course.lessons() {
        let Some(body) = &lesson.body else { continue };
        let key = lesson.key();
        let exercises: Vec<ProgressExercise> = body
            .exercises
            .iter()
            .filter(|e| !e.checks.is_empty())
            .map(|e| {
                let a = attempts
                    .iter()
                    .find(|a| a.lesson == key && a.exercise == e.id)
                    .map(|a| &a.attempt);
                let status = match a {
                    Some(a) if a.completed_at.is_some() => "done",
                    Some(_) => "started",
                    None => "new",
                };
                ProgressExercise {
                    url: format!("{}#exercise-{}", lesson.url(), e.id),
                    title: e.title.clone(),
                    status,
                    started: a.map(|a| when(a.started_at)).unwrap_or_default(),
                    took: a
                        .and_then(|a| a.completed_at.map(|c| took((c - a.started_at).max(0))))
                        .unwrap_or_default(),
                    hints: format!("{} of {}", a.map(|a| a.hints_used).unwrap_or(0), e.hints.len()),
                    solution_viewed: a.is_some_and(|a| a.solution_viewed_at.is_some()),
                }
            })
            .collect();
        if exercises.is_empty() {
            continue;
        }
        total += exercises.len();
        done += exercises.iter().filter(|e| e.status == "done").count();
        lessons.push(ProgressLesson {
            title: lesson.title.clone(),
            url: lesson.url(),
            completed: learner.completed(&key),
            exercises,
        });
    }
    Ok(ProgressPage {
        frame: app.frame(&learner),
        lessons,
        done,
        total,
    })
}
