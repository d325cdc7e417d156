//! Checks that look beyond the engine's records: a file in a node or a volume, a command
//! in a node or a container, an HTTP answer from a port of a node. Each has a time limit,
//! so a hung server or command cannot stall the grader.

use std::os::fd::AsFd;
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use nix::fcntl::{OFlag, open};
use nix::sys::stat::Mode;
use slipway_runtime::monitor::client::Output;

use super::{Outcome, Target};
use crate::course::exercise::{ExecCheck, FileCheck, HttpCheck, Text};
use crate::engine::Node;
use crate::playground::files::{self, FileError};
use crate::playground::ports;

/// Files and answers are read up to this much.
const LIMIT: u64 = 1 << 20;
const EXEC_TIMEOUT: Duration = Duration::from_secs(10);
const HTTP_TIMEOUT: Duration = Duration::from_secs(3);

fn shown(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let one_line = text.trim().replace('\n', " ⏎ ");
    if one_line.chars().count() > 80 {
        format!("“{}…”", one_line.chars().take(80).collect::<String>())
    } else {
        format!("“{one_line}”")
    }
}

pub fn volume_file(node: &Node, volume: &str, path: &str, text: &Text) -> Outcome {
    let dir = node.paths.volume_data(volume);
    let root = match open(
        &dir,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(e) => return Outcome::fail(format!("the volume {volume} cannot be read: {e}")),
    };
    let rel = format!("/{}", path.trim_start_matches('/'));
    match files::read_in(root.as_fd(), &rel, LIMIT) {
        Ok(bytes) => match text.test(&String::from_utf8_lossy(&bytes)) {
            Ok(()) => Outcome::pass(format!("{rel} in the volume {volume} holds the text")),
            Err(why) => Outcome::fail(format!(
                "{rel} in the volume {volume} {why}: it holds {}",
                shown(&bytes)
            )),
        },
        Err(FileError::NotFound(_)) => Outcome::fail(format!("the volume {volume} has no file {rel}")),
        Err(e) => Outcome::fail(format!("{rel} in the volume {volume}: {e}")),
    }
}

pub async fn file(t: &Target, node: &str, c: &FileCheck, text: &Text) -> Outcome {
    let proc = match t.playgrounds.node_proc(&t.id, node) {
        Ok(p) => p,
        Err(e) => return Outcome::fail(format!("{node}: {e}")),
    };
    let want = c.exists.unwrap_or(true);
    match files::download(proc.as_fd(), &c.path, LIMIT) {
        Ok(_) if !want => Outcome::fail(format!("{} still exists", c.path)),
        Ok(bytes) => match text.test(&String::from_utf8_lossy(&bytes)) {
            Ok(()) => Outcome::pass(format!("{} holds the text", c.path)),
            Err(why) => Outcome::fail(format!("{} {why}: it holds {}", c.path, shown(&bytes))),
        },
        Err(FileError::NotFound(_)) if !want => Outcome::pass(format!("{} does not exist", c.path)),
        Err(FileError::NotFound(_)) => Outcome::fail(format!("{} does not exist in {node}", c.path)),
        Err(e) => Outcome::fail(e.to_string()),
    }
}

fn judge(c: &ExecCheck, text: &Text, code: i32, out: &[u8], err: &[u8]) -> Outcome {
    let want = c.exit_code.unwrap_or(0);
    let mut all = out.to_vec();
    all.extend_from_slice(err);
    if code != want {
        return Outcome::fail(format!(
            "`{}` exited with {code}, not {want}: {}",
            c.command,
            shown(&all)
        ));
    }
    match text.test(&String::from_utf8_lossy(&all)) {
        Ok(()) => Outcome::pass(format!("`{}` answered as expected", c.command)),
        Err(why) => Outcome::fail(format!("the output of `{}` {why}: {}", c.command, shown(&all))),
    }
}

pub async fn exec(t: &Target, node: &Node, c: &ExecCheck, text: &Text) -> Outcome {
    let cmd = vec!["sh".to_string(), "-c".to_string(), c.command.clone()];
    let Some(name) = &c.container else {
        let run = t.playgrounds.exec(&t.id, &node.name, cmd);
        return match tokio::time::timeout(EXEC_TIMEOUT, run).await {
            Err(_) => Outcome::fail(format!("`{}` did not finish within 10 s", c.command)),
            Ok(Err(e)) => Outcome::fail(format!("`{}` could not run in {}: {e}", c.command, node.name)),
            Ok(Ok((code, out, err))) => judge(c, text, code, &out, &err),
        };
    };
    let rec = match node.container(name) {
        Ok(r) => r,
        Err(_) => return Outcome::fail(format!("there is no container named {name}")),
    };
    if rec.state.status != "running" {
        return Outcome::fail(format!("{name} is {}, so nothing can run in it", rec.state.status));
    }
    // Straight to the runtime, not through the Engine API: the grader's own commands are
    // not the learner's, so they make no exec events (which would re-trigger grading).
    let process = match crate::engine::exec::process_for(node, &rec, cmd, false, None, None, None) {
        Ok(p) => p,
        Err(e) => return Outcome::fail(format!("`{}` cannot run in {name}: {e}", c.command)),
    };
    let exec_id = format!("grader-{}", hex::encode(rand::random::<[u8; 6]>()));
    let run = async {
        let mut session = node
            .engine
            .containers
            .exec(&rec.runtime_id, &exec_id, process)
            .await
            .map_err(|e| e.to_string())?;
        let (mut out, mut err) = (Vec::new(), Vec::new());
        loop {
            match session.output.next().await.map_err(|e| e.to_string())? {
                Some(Output::Stdout(d)) => out.extend(d),
                Some(Output::Stderr(d)) => err.extend(d),
                Some(Output::Exit(e)) => return Ok((e.code, out, err)),
                Some(Output::Error(m)) => return Err(m),
                None => return Err("the container's monitor went away".to_string()),
            }
            if out.len() + err.len() > LIMIT as usize {
                return Err("it printed more than 1 MiB".into());
            }
        }
    };
    match tokio::time::timeout(EXEC_TIMEOUT, run).await {
        Err(_) => Outcome::fail(format!("`{}` did not finish within 10 s in {name}", c.command)),
        Ok(Err(e)) => Outcome::fail(format!("`{}` could not run in {name}: {e}", c.command)),
        Ok(Ok((code, out, err))) => judge(c, text, code, &out, &err),
    }
}

pub async fn http(t: &Target, node: &str, c: &HttpCheck, text: &Text) -> Outcome {
    let path = c.path.clone().unwrap_or_else(|| "/".into());
    let url = format!("localhost:{}{path}", c.port);
    match tokio::time::timeout(HTTP_TIMEOUT, get(t, node, c.port, &path)).await {
        Err(_) => Outcome::fail(format!("{url} did not answer within 3 s")),
        Ok(Err(e)) => Outcome::fail(format!("{url}: {e}")),
        Ok(Ok((status, body))) => {
            let want = c.status.unwrap_or(200);
            if status != want {
                return Outcome::fail(format!("{url} answered {status}, not {want}"));
            }
            match text.test(&String::from_utf8_lossy(&body)) {
                Ok(()) => Outcome::pass(format!("{url} answered {status} as expected")),
                Err(why) => Outcome::fail(format!("the page at {url} {why}: {}", shown(&body))),
            }
        }
    }
}

/// A GET to `port` on the node's loopback, from inside its network namespace (as
/// `curl localhost:PORT` in the node would).
async fn get(t: &Target, node: &str, port: u16, path: &str) -> Result<(u16, Vec<u8>), String> {
    let stream = {
        let proc = t.playgrounds.node_proc(&t.id, node).map_err(|e| e.to_string())?;
        ports::connect(proc.as_fd(), port).await
    }
    .map_err(|e| match e.kind() {
        std::io::ErrorKind::ConnectionRefused => format!("nothing listens on port {port}"),
        _ => e.to_string(),
    })?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake::<_, Empty<hyper::body::Bytes>>(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("localhost:{port}"))
        .header(hyper::header::USER_AGENT, "slipway-grader")
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = Limited::new(response.into_body(), LIMIT as usize)
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body.to_vec()))
}
