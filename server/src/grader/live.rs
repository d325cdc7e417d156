//! Live grading: a playground's engines watched for events, and each exercise of a lesson
//! re-evaluated when an event could change one of its checks. Events come in bursts (a
//! `docker run` makes five), so evaluation waits for a short quiet spell; checks that look
//! outside the engine (files, commands, HTTP) are also polled. Only changed results are
//! sent on, to whoever shows them (the lesson page's socket).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::select_all;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::BroadcastStream;

use super::{Outcome, Target, evaluate, setup};
use crate::course::{Exercise, LessonBody};
use crate::playground::Playgrounds;

/// Quiet time after an event before the checks run: long enough to take in the rest of a
/// burst, short enough that the page follows the terminal at once.
const DEBOUNCE: Duration = Duration::from_millis(8);
/// The longest a burst may delay evaluation.
const MAX_DELAY: Duration = Duration::from_millis(60);
/// How often checks outside the engine's view are looked at again.
const POLL: Duration = Duration::from_secs(2);

#[derive(Debug, Clone)]
pub enum Message {
    /// An exercise's setup is done (or failed, with the reason).
    Setup { exercise: usize, error: Option<String> },
    /// An exercise's results changed.
    Results(Results),
    /// Grading stopped: the playground ended.
    Ended(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Results {
    pub exercise: usize,
    pub outcomes: Vec<Outcome>,
    pub complete: bool,
    /// A hint (1-based) whose condition holds, offered to the learner.
    pub offered_hint: Option<usize>,
    /// When the engine event that led to this evaluation happened (Unix ns), if one did.
    pub event_time: Option<i128>,
}

struct Watched<'a> {
    index: usize,
    exercise: &'a Exercise,
    target: Target,
    types: Vec<&'static str>,
    polled: bool,
    last: Option<Results>,
}

impl Watched<'_> {
    async fn evaluate(&mut self, event_time: Option<i128>, tx: &mpsc::Sender<Message>) -> bool {
        let outcomes = evaluate::exercise(&self.target, self.exercise).await;
        let complete = evaluate::complete(&outcomes);
        let offered_hint = if complete {
            None
        } else {
            evaluate::offered_hint(&self.target, self.exercise).await
        };
        let results = Results {
            exercise: self.index,
            outcomes,
            complete,
            offered_hint,
            event_time,
        };
        let changed = self.last.as_ref().is_none_or(|l| {
            l.outcomes != results.outcomes || l.complete != results.complete || l.offered_hint != results.offered_hint
        });
        if !changed {
            return true;
        }
        self.last = Some(results.clone());
        tx.send(Message::Results(results)).await.is_ok()
    }
}

/// Sets up and grades `lesson`'s exercises in playground `id` until `tx` is dropped or the
/// playground ends. `key` is the lesson's ("module/lesson").
pub async fn watch(
    playgrounds: Arc<Playgrounds>,
    id: String,
    key: String,
    lesson: Arc<LessonBody>,
    tx: mpsc::Sender<Message>,
) {
    let Some(pg) = playgrounds.get(&id) else {
        let _ = tx.send(Message::Ended("the playground has ended".into())).await;
        return;
    };
    // Subscribed before anything is evaluated, so no event falls in between.
    let streams = pg
        .record()
        .nodes
        .iter()
        .filter_map(|n| pg.engine(&n.name))
        .map(|node| BroadcastStream::new(node.events.receiver()))
        .collect::<Vec<_>>();
    drop(pg);
    let mut events = select_all(streams);

    let mut watched = Vec::new();
    for (index, exercise) in lesson.exercises.iter().enumerate() {
        if exercise.checks.is_empty() {
            continue;
        }
        let since = match setup::ensure(&playgrounds, &id, &format!("{key}/{}", exercise.id), exercise).await {
            Ok(since) => {
                if tx
                    .send(Message::Setup {
                        exercise: index,
                        error: None,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                since
            }
            Err(e) => {
                tracing::warn!(playground = %id, exercise = %exercise.id, error = %e, "exercise setup failed");
                if tx
                    .send(Message::Setup {
                        exercise: index,
                        error: Some(e),
                    })
                    .await
                    .is_err()
                {
                    return;
                }
                super::now_nanos()
            }
        };
        let mut types = Vec::new();
        let mut polled = false;
        for c in exercise
            .checks
            .iter()
            .chain(exercise.hints.iter().filter_map(|h| h.when.as_ref()))
        {
            polled |= c.event_types(&mut types);
        }
        watched.push(Watched {
            index,
            exercise,
            target: Target {
                playgrounds: playgrounds.clone(),
                id: id.clone(),
                since,
            },
            types,
            polled,
            last: None,
        });
    }
    for w in &mut watched {
        if !w.evaluate(None, &tx).await {
            return;
        }
    }

    let mut pending: Vec<&'static str> = Vec::new();
    let mut first_event: Option<(Instant, i128)> = None;
    let mut quiet_until: Option<Instant> = None;
    let mut poll = tokio::time::interval_at(Instant::now() + POLL, POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let due = quiet_until.map(|q| first_event.map(|(at, _)| q.min(at + MAX_DELAY)).unwrap_or(q));
        tokio::select! {
            got = events.next() => match got {
                Some(Ok(e)) => {
                    if !pending.contains(&e.typ) {
                        pending.push(e.typ);
                    }
                    first_event.get_or_insert((Instant::now(), e.time_nano));
                    quiet_until = Some(Instant::now() + DEBOUNCE);
                }
                // Missed events: everything may have changed.
                Some(Err(_)) => {
                    pending = vec!["container", "image", "volume", "network", "build"];
                    first_event.get_or_insert((Instant::now(), super::now_nanos()));
                    quiet_until = Some(Instant::now());
                }
                None => {
                    let _ = tx.send(Message::Ended("the playground has ended".into())).await;
                    return;
                }
            },
            _ = async { tokio::time::sleep_until(due.unwrap_or_else(Instant::now)).await }, if due.is_some() => {
                let event_time = first_event.take().map(|(_, t)| t);
                quiet_until = None;
                let types = std::mem::take(&mut pending);
                for w in &mut watched {
                    if w.types.iter().any(|t| types.contains(t)) && !w.evaluate(event_time, &tx).await {
                        return;
                    }
                }
            }
            _ = poll.tick() => {
                if playgrounds.get(&id).is_none() {
                    let _ = tx.send(Message::Ended("the playground has ended".into())).await;
                    return;
                }
                for w in &mut watched {
                    if w.polled && !w.evaluate(None, &tx).await {
                        return;
                    }
                }
            }
            _ = tx.closed() => return,
        }
    }
}
