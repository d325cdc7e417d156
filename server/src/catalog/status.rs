//! The catalog's background build at server start: what it is doing, for the log and the
//! admin page.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::{Catalog, Report};

/// Lines kept for the admin page; the log has them all.
const KEPT_LINES: usize = 400;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing asked for (`--catalog none`).
    Idle,
    Building,
    Ready,
    Failed,
}

#[derive(Debug, Clone, Serialize)]
pub struct Line {
    pub image: String,
    pub text: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub phase: Phase,
    /// The images asked for, and those built in this run.
    pub wanted: Vec<String>,
    pub built: Vec<String>,
    /// The image being built now.
    pub current: Option<String>,
    pub error: Option<String>,
    pub seconds: u64,
    pub lines: Vec<Line>,
}

pub struct CatalogStatus {
    inner: Mutex<Inner>,
}

struct Inner {
    phase: Phase,
    wanted: Vec<String>,
    built: Vec<String>,
    current: Option<String>,
    error: Option<String>,
    started: std::time::Instant,
    finished: Option<std::time::Instant>,
    lines: VecDeque<Line>,
}

impl Default for CatalogStatus {
    fn default() -> Self {
        CatalogStatus {
            inner: Mutex::new(Inner {
                phase: Phase::Idle,
                wanted: Vec::new(),
                built: Vec::new(),
                current: None,
                error: None,
                started: std::time::Instant::now(),
                finished: None,
                lines: VecDeque::new(),
            }),
        }
    }
}

impl CatalogStatus {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn snapshot(&self) -> Snapshot {
        let i = self.lock();
        Snapshot {
            phase: i.phase.clone(),
            wanted: i.wanted.clone(),
            built: i.built.clone(),
            current: i.current.clone(),
            error: i.error.clone(),
            seconds: i
                .finished
                .unwrap_or_else(std::time::Instant::now)
                .duration_since(i.started)
                .as_secs(),
            lines: i.lines.iter().cloned().collect(),
        }
    }

    fn push(&self, image: &str, text: &str) {
        let mut i = self.lock();
        if i.current.as_deref() != Some(image)
            && let Some(previous) = i.current.replace(image.to_string())
            && !i.built.contains(&previous)
        {
            i.built.push(previous);
        }
        if i.lines.len() == KEPT_LINES {
            i.lines.pop_front();
        }
        i.lines.push_back(Line {
            image: image.to_string(),
            text: text.to_string(),
        });
    }
}

/// Whether a progress line is worth the info log (the rest, apt's chatter, is debug).
fn notable(line: &str) -> bool {
    [
        "Step ",
        "Successfully",
        "checked",
        "tagged",
        "done",
        "debootstrap",
        "building",
    ]
    .iter()
    .any(|k| line.contains(k))
}

/// Builds `names` (the catalog images the store lacks) on a thread of its own, so a
/// long build never holds the server's workers; progress goes to the log and `status`.
pub fn build_in_background(catalog: Arc<Catalog>, names: Vec<String>, status: Arc<CatalogStatus>) {
    if names.is_empty() {
        return;
    }
    {
        let mut i = status.lock();
        i.phase = Phase::Building;
        i.wanted = names.clone();
        i.started = std::time::Instant::now();
    }
    let report_status = status.clone();
    let report: Report = Arc::new(move |image: &str, line: &str| {
        if notable(line) {
            tracing::info!(image, "{line}");
        } else {
            tracing::debug!(image, "{line}");
        }
        report_status.push(image, line);
    });
    let spawned = std::thread::Builder::new().name("catalog".into()).spawn(move || {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, "cannot start the catalog build");
                return;
            }
        };
        tracing::info!(images = names.join(", "), "catalog: building what the image store lacks");
        let result = runtime.block_on(catalog.ensure(&names, report));
        let mut i = status.lock();
        i.finished = Some(std::time::Instant::now());
        // On success `ensure` says what it built; on failure the image in progress was not.
        i.current = None;
        match result {
            Ok(built) => {
                i.phase = Phase::Ready;
                i.built = built.clone();
                let secs = i.started.elapsed().as_secs();
                if built.is_empty() {
                    tracing::info!("catalog: every image is in the store");
                } else {
                    tracing::info!(built = built.join(", "), secs, "catalog: ready");
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                tracing::error!(error = %message, "catalog: build failed; restart the server or run `slipway images ensure` to retry");
                i.phase = Phase::Failed;
                i.error = Some(message);
            }
        }
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the catalog build");
    }
}
