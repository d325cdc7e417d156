//! The grader: exercises' checks evaluated against a learner's playground, from what its
//! engines hold and report, never from what was typed.
//!
//! - [`evaluate`]: one check (or an exercise's checks) against a playground, now.
//! - [`objects`]: checks on engine objects; [`probes`]: files, commands and HTTP in a node;
//!   [`events`]: what the engine reported.
//! - [`setup`]: an exercise's files and script, placed in the nodes before it starts.
//! - [`live`]: a playground watched for engine events, each exercise re-evaluated and its
//!   changed results sent on, as the lesson page shows them.
//! - [`verify`]: lesson CI, every exercise's solution replayed in a fresh playground.

pub mod evaluate;
pub mod events;
pub mod live;
pub mod objects;
pub mod probes;
pub mod setup;
pub mod verify;

use std::sync::Arc;

use serde::Serialize;

use crate::engine::Node;
use crate::playground::{Playground, Playgrounds};

/// A check's result, with what a learner (or an author) needs to know about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Outcome {
    pub passed: bool,
    pub detail: String,
}

impl Outcome {
    pub fn pass(detail: impl Into<String>) -> Outcome {
        Outcome {
            passed: true,
            detail: detail.into(),
        }
    }
    pub fn fail(detail: impl Into<String>) -> Outcome {
        Outcome {
            passed: false,
            detail: detail.into(),
        }
    }
}

/// The playground an exercise is graded in.
#[derive(Clone)]
pub struct Target {
    pub playgrounds: Arc<Playgrounds>,
    pub id: String,
    /// Unix nanoseconds: the exercise's start; `event` checks look at what came after.
    pub since: i128,
}

impl Target {
    pub fn playground(&self) -> Option<Arc<Playground>> {
        self.playgrounds.get(&self.id)
    }

    /// A node's engine, or why there is none.
    pub fn node(&self, name: &str) -> Result<Arc<Node>, Outcome> {
        let pg = self
            .playground()
            .ok_or_else(|| Outcome::fail("the playground has ended"))?;
        pg.engine(name)
            .ok_or_else(|| Outcome::fail(format!("the playground has no {name}")))
    }
}

/// Unix nanoseconds now, in the clock engine events carry.
pub fn now_nanos() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}
