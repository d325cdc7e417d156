//! `event` checks: whether the engine reported something since the exercise started
//! (a container removed, a prune, a build that reused its cache).

use regex::Regex;

use super::Outcome;
use crate::course::exercise::EventCheck;
use crate::engine::Node;
use crate::engine::events::Event;

fn matches(e: &Event, c: &EventCheck, attrs: &[(String, Regex)]) -> bool {
    if c.kind.as_deref().is_some_and(|t| t != e.typ) {
        return false;
    }
    let base = e.action.split(':').next().unwrap_or("").trim();
    if e.action != c.action && base != c.action {
        return false;
    }
    if let Some(n) = &c.name {
        let named = e
            .actor
            .attributes
            .get("name")
            .is_some_and(|v| v == n || v.split(',').any(|x| x == n));
        let by_id = &e.actor.id == n || (n.len() >= 4 && e.actor.id.starts_with(n.as_str()));
        if !named && !by_id {
            return false;
        }
    }
    attrs
        .iter()
        .all(|(k, r)| e.actor.attributes.get(k).is_some_and(|v| r.is_match(v)))
}

pub fn happened(node: &Node, since: i128, c: &EventCheck, attrs: &[(String, Regex)]) -> Outcome {
    let (past, _) = node.events.subscribe(Some(since));
    let what = format!(
        "{}{}{}",
        c.kind.as_deref().map(|t| format!("{t} ")).unwrap_or_default(),
        c.action,
        c.name.as_deref().map(|n| format!(" of {n}")).unwrap_or_default()
    );
    match past.iter().rev().find(|e| matches(e, c, attrs)) {
        Some(_) => Outcome::pass(format!("the engine reported a {what}")),
        None => Outcome::fail(format!(
            "the engine has not reported a {what} since the exercise started"
        )),
    }
}
