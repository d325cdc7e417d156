//! Evaluating checks: the object checks read one snapshot of a node's state; probes and
//! combinations are awaited. An exercise's checks run concurrently.

use futures_util::future::{BoxFuture, FutureExt, join_all};

use super::{Outcome, Target, events, objects, probes};
use crate::course::Exercise;
use crate::course::exercise::{Check, CheckKind};

pub fn check<'a>(t: &'a Target, c: &'a Check) -> BoxFuture<'a, Outcome> {
    async move {
        let node = match t.node(&c.node) {
            Ok(n) => n,
            Err(o) => return o,
        };
        match &c.kind {
            CheckKind::Image(x) => objects::image(&node, x),
            CheckKind::Container(x) => objects::container(&node, x),
            CheckKind::Volume(x, text) => {
                let exists = objects::volume(&node, x);
                match (&x.file, text) {
                    (Some(f), Some(text)) if exists.passed => probes::volume_file(&node, &x.name, &f.path, text),
                    _ => exists,
                }
            }
            CheckKind::Network(x) => objects::network(&node, x),
            CheckKind::Compose(x) => objects::compose(&node, x),
            CheckKind::Http(x, text) => probes::http(t, &c.node, x, text).await,
            CheckKind::Exec(x, text) => probes::exec(t, &node, x, text).await,
            CheckKind::File(x, text) => probes::file(t, &c.node, x, text).await,
            CheckKind::Event(x, attrs) => events::happened(&node, t.since, x, attrs),
            CheckKind::AllOf(cs) => {
                for (o, _) in join_all(cs.iter().map(|c| check(t, c))).await.into_iter().zip(cs) {
                    if !o.passed {
                        return o;
                    }
                }
                Outcome::pass("all of them hold")
            }
            CheckKind::AnyOf(cs) => {
                let all = join_all(cs.iter().map(|c| check(t, c))).await;
                match all.iter().find(|o| o.passed) {
                    Some(o) => o.clone(),
                    None => Outcome::fail(all.into_iter().map(|o| o.detail).collect::<Vec<_>>().join("; and ")),
                }
            }
            CheckKind::Not(inner) => {
                let o = check(t, inner).await;
                if o.passed {
                    Outcome::fail(format!("but {}", o.detail))
                } else {
                    Outcome::pass(o.detail)
                }
            }
        }
    }
    .boxed()
}

/// Every check of an exercise, in order.
pub async fn exercise(t: &Target, ex: &Exercise) -> Vec<Outcome> {
    join_all(ex.checks.iter().map(|c| check(t, c))).await
}

/// Whether an exercise is done: it has checks, and every one passes.
pub fn complete(outcomes: &[Outcome]) -> bool {
    !outcomes.is_empty() && outcomes.iter().all(|o| o.passed)
}

/// The first hint (1-based) whose condition holds now, if any.
pub async fn offered_hint(t: &Target, ex: &Exercise) -> Option<usize> {
    for (i, h) in ex.hints.iter().enumerate() {
        if let Some(when) = &h.when
            && check(t, when).await.passed
        {
            return Some(i + 1);
        }
    }
    None
}
