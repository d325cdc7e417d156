//! `slipway bench grading`: from an engine event to the new check result on the lesson
//! page's socket. A real `slipway serve` with a throw-away lesson (one exercise, a volume
//! check), a real playground, and the page's own WebSocket; the volume is created and
//! removed alternately through the node's Engine API socket. Each sample is the time from
//! the event (its `timeNano`, stamped by the engine) to the socket message arriving here,
//! on the same clock: the debounce, the evaluation and the socket are all inside it.
//!
//! The peer is how a script-graded lab checks the same thing (Killercoda's and Instruqt's
//! check scripts): `docker volume inspect` run in the node, timed from the request to its
//! exit; that is one evaluation, before any polling interval or button press.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use serde::Serialize;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use super::lab::Lab;
use super::stats::Stats;

const TARGET_MS: f64 = 50.0;

const LESSON: &str = "---
title: Grading benchmark
summary: One exercise with one volume check.
exercises:
  - id: volume
    title: A volume
    task: Make the volume `bench-notes`.
    checks:
      - description: The volume `bench-notes` exists
        volume: {name: bench-notes}
    solution: docker volume create bench-notes
---
The grading benchmark's lesson.
";

pub struct Options {
    pub catalog_dir: PathBuf,
    /// Timed rounds (each a create and a remove: two samples).
    pub rounds: usize,
}

#[derive(Debug, Serialize)]
pub struct Figures {
    /// Engine event to the new result on the page's socket.
    pub event_to_page: Stats,
    /// The API request that makes the change to the new result on the page.
    pub request_to_page: Stats,
    /// One evaluation as a check script does it: `docker volume inspect` in the node.
    pub script_check: Stats,
    pub target_ms: f64,
}

/// One Engine API call on the node's socket (the change being graded).
fn engine_call(socket: &Path, method: &str, path: &str, body: &str) -> Result<u16> {
    let mut s = UnixStream::connect(socket).with_context(|| format!("connecting {}", socket.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let head = String::from_utf8_lossy(&raw);
    head.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no status line from the engine")
}

/// The benchmark's lessons directory, removed when it ends (the server rereads it).
struct Lessons(PathBuf);

impl Lessons {
    fn write() -> Result<Lessons> {
        let dir = std::env::temp_dir().join(format!("slipway-bench-grading-lessons-{}", std::process::id()));
        let lessons = Lessons(dir);
        let module = lessons.0.join("01-bench");
        std::fs::create_dir_all(&module)?;
        std::fs::write(module.join("module.yaml"), "title: Bench\n")?;
        std::fs::write(module.join("01-grading.md"), LESSON)?;
        Ok(lessons)
    }
}

impl Drop for Lessons {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn now_nanos() -> i128 {
    time::OffsetDateTime::now_utc().unix_timestamp_nanos()
}

pub fn run(o: &Options) -> Result<Figures> {
    let lessons = Lessons::write()?;
    let lab = Lab::start("bench-grading", &lessons.0, &o.catalog_dir, "memory_mib = 1024")?;
    let record = lab.create_playground(1)?;
    let id = record["id"].as_str().context("no playground made")?.to_string();
    let socket = PathBuf::from(
        record["nodes"][0]["docker_host"]
            .as_str()
            .context("no docker_host")?
            .trim_start_matches("unix://"),
    );

    // The peer: a check script's one evaluation.
    let mut script = Vec::new();
    engine_call(&socket, "POST", "/v1.45/volumes/create", r#"{"Name":"bench-notes"}"#)?;
    for i in 0..o.rounds + 3 {
        let t = Instant::now();
        let r: serde_json::Value = lab
            .http
            .post(format!("{}/api/playgrounds/{id}/nodes/node1/exec", lab.base))
            .bearer_auth(&lab.token)
            .json(&serde_json::json!({ "cmd": ["docker", "volume", "inspect", "bench-notes"] }))
            .send()?
            .json()?;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        if r["exit_code"] != 0 {
            bail!("docker volume inspect failed in the node: {r}");
        }
        if i >= 3 {
            script.push(ms);
        }
    }
    engine_call(&socket, "DELETE", "/v1.45/volumes/bench-notes", "")?;

    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (event_to_page, request_to_page) = rt.block_on(async {
        let mut request = format!(
            "{}/learn/bench/grading/grading?playground={id}",
            lab.base.replacen("http", "ws", 1)
        )
        .into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", lab.token))?,
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request)
            .await
            .context("the grading socket")?;
        // Waits for the check to become `want`; returns the message and its arrival.
        let mut until = async |want: bool| -> Result<(serde_json::Value, i128)> {
            loop {
                let m = tokio::time::timeout(Duration::from_secs(10), ws.next())
                    .await
                    .context("no result within 10 s")?
                    .context("the socket closed")??;
                let at = now_nanos();
                if let Message::Text(t) = m {
                    let v: serde_json::Value = serde_json::from_str(&t)?;
                    if v["type"] == "results" && v["checks"][0]["passed"] == want {
                        return Ok((v, at));
                    }
                }
            }
        };
        until(false).await?;
        let (mut event_ms, mut request_ms) = (Vec::new(), Vec::new());
        for round in 0..o.rounds + 3 {
            for (method, path, body, want) in [
                ("POST", "/v1.45/volumes/create", r#"{"Name":"bench-notes"}"#, true),
                ("DELETE", "/v1.45/volumes/bench-notes", "", false),
            ] {
                let sent = now_nanos();
                let socket = socket.clone();
                let status = tokio::task::spawn_blocking(move || engine_call(&socket, method, path, body)).await??;
                if !(200..300).contains(&status) {
                    bail!("{method} {path}: HTTP {status}");
                }
                let (v, at) = until(want).await?;
                let event: i128 = v["event_time"]
                    .as_str()
                    .and_then(|s| s.parse().ok())
                    .context("a result without its event's time")?;
                if round >= 3 {
                    event_ms.push((at - event) as f64 / 1e6);
                    request_ms.push((at - sent) as f64 / 1e6);
                }
            }
        }
        anyhow::Ok((event_ms, request_ms))
    })?;
    lab.remove_playground(&id)?;
    drop(lab);
    Ok(Figures {
        event_to_page: Stats::of(event_to_page),
        request_to_page: Stats::of(request_to_page),
        script_check: Stats::of(script),
        target_ms: TARGET_MS,
    })
}

pub fn print(f: &Figures) {
    println!("Live grading: engine event to the check's new result on the lesson page's socket");
    println!();
    Stats::print_header(52);
    let row = |name: &str, s: &Stats| s.print_row(&format!("{name} (n={})", s.samples), 52);
    row("event → page", &f.event_to_page);
    row("API request → page", &f.request_to_page);
    row("peer: check script (docker volume inspect in node)", &f.script_check);
    println!();
    println!(
        "   event → page median {:.1} ms (target ≤ {:.0} ms: {}); {:.2}× one check-script evaluation",
        f.event_to_page.median_ms,
        f.target_ms,
        if f.event_to_page.median_ms <= f.target_ms {
            "met"
        } else {
            "MISSED"
        },
        f.event_to_page.median_ms / f.script_check.median_ms
    );
}
