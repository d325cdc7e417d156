//! Healthchecks: the container's test run at its interval (as an exec), its status and
//! last results kept in the record, a `health_status` event on every change of status.

use std::sync::Arc;
use std::time::Duration;

use bollard_stubs::models::{Health, HealthStatusEnum, HealthcheckResult};
use slipway_runtime::monitor::client::Output;

use super::super::Node;
use super::super::state::{ContainerRecord, State, now};
use super::container_attributes;

const DEFAULT: Duration = Duration::from_secs(30);
/// Docker keeps the last five results and at most 4 KiB of each one's output.
const KEPT: usize = 5;
const OUTPUT_MAX: usize = 4096;

fn dur(nanos: Option<i64>) -> Option<Duration> {
    nanos.filter(|n| *n > 0).map(|n| Duration::from_nanos(n as u64))
}

/// The command a test runs, or None when the container has no healthcheck.
pub fn command(rec: &ContainerRecord) -> Option<Vec<String>> {
    let test = rec.config.healthcheck.as_ref()?.test.clone()?;
    match test.first().map(String::as_str) {
        Some("CMD") => Some(test[1..].to_vec()),
        Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]),
        _ => None,
    }
}

/// Starts checking a container that just started; None without a healthcheck.
pub fn spawn(node: &Arc<Node>, rec: &ContainerRecord) -> Option<tokio::task::JoinHandle<()>> {
    let cmd = command(rec)?;
    let hc = rec.config.healthcheck.clone().unwrap_or_default();
    let interval = dur(hc.interval).unwrap_or(DEFAULT);
    let timeout = dur(hc.timeout).unwrap_or(DEFAULT);
    let start_period = dur(hc.start_period).unwrap_or(Duration::ZERO);
    let start_interval = dur(hc.start_interval).unwrap_or(Duration::from_secs(5));
    let retries = hc.retries.filter(|r| *r > 0).unwrap_or(3);
    let node = node.clone();
    let id = rec.id.clone();
    update(&node, &id, |h| {
        h.status = Some(HealthStatusEnum::STARTING);
        h.failing_streak = Some(0);
    });
    Some(tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut first = true;
        loop {
            let in_start = started.elapsed() < start_period;
            let wait = if first || in_start {
                interval.min(start_interval)
            } else {
                interval
            };
            // Docker waits one interval before the first check.
            tokio::time::sleep(if first { interval.min(wait) } else { wait }).await;
            first = false;
            let Ok(rec) = node.container(&id) else { return };
            if rec.state.status != "running" {
                if rec.state.status == "paused" {
                    continue;
                }
                return;
            }
            let begin = now();
            let (code, output) = match tokio::time::timeout(timeout, probe(&node, &rec, cmd.clone())).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => (-1, e),
                Err(_) => (-1, format!("Health check exceeded timeout ({}s)", timeout.as_secs())),
            };
            let in_start = started.elapsed() < start_period;
            let result = HealthcheckResult {
                start: Some(begin),
                end: Some(now()),
                exit_code: Some(code),
                output: Some(output),
            };
            let mut changed_to = None;
            update(&node, &id, |h| {
                let log = h.log.get_or_insert_with(Vec::new);
                log.push(result);
                if log.len() > KEPT {
                    log.remove(0);
                }
                let before = h.status;
                if code == 0 {
                    h.failing_streak = Some(0);
                    h.status = Some(HealthStatusEnum::HEALTHY);
                } else if !in_start {
                    let streak = h.failing_streak.unwrap_or(0) + 1;
                    h.failing_streak = Some(streak);
                    if streak >= retries {
                        h.status = Some(HealthStatusEnum::UNHEALTHY);
                    }
                }
                if h.status != before {
                    changed_to = h.status;
                }
            });
            if let Some(status) = changed_to
                && let Ok(rec) = node.container(&id)
            {
                node.emit(
                    "container",
                    &format!("health_status: {status}"),
                    &id,
                    container_attributes(&rec),
                );
            }
        }
    }))
}

fn update(node: &Node, id: &str, f: impl FnOnce(&mut Health)) {
    let mut st = node.state();
    if let Some(rec) = st.containers.get_mut(id) {
        f(rec.state.health.get_or_insert_with(Health::default));
        let _ = State::save_container(&node.paths, rec);
    }
    drop(st);
    node.runs.bump();
}

/// Runs the test in the container: (exit code, output).
async fn probe(node: &Node, rec: &ContainerRecord, cmd: Vec<String>) -> Result<(i64, String), String> {
    let process =
        super::super::exec::process_for(node, rec, cmd, false, None, None, None).map_err(|e| e.to_string())?;
    let exec_id = format!("health-{}", hex::encode(rand::random::<[u8; 6]>()));
    let mut session = node
        .engine
        .containers
        .exec(&rec.runtime_id, &exec_id, process)
        .await
        .map_err(|e| e.to_string())?;
    let mut output = Vec::new();
    loop {
        match session.output.next().await.map_err(|e| e.to_string())? {
            Some(Output::Stdout(d)) | Some(Output::Stderr(d)) => {
                if output.len() < OUTPUT_MAX {
                    output.extend_from_slice(&d[..d.len().min(OUTPUT_MAX - output.len())]);
                }
            }
            Some(Output::Exit(e)) => return Ok((e.code as i64, String::from_utf8_lossy(&output).into_owned())),
            Some(Output::Error(m)) => return Err(m),
            None => return Err("the container's monitor went away".into()),
        }
    }
}
