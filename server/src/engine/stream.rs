//! The engine's streams: hijacked connections for attach and exec, Docker's 8-byte
//! multiplexed framing, and the NDJSON bodies of pulls, builds and events.
//!
//! A hijack answers `101` with `Upgrade: tcp` when the client asks for the upgrade (the
//! docker CLI, compose and docker-py all do), and then the connection is a raw byte stream
//! both ways; a client that does not ask gets `200` and output only, as Docker does.

use std::pin::Pin;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};

pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";
pub const MULTIPLEXED_STREAM: &str = "application/vnd.docker.multiplexed-stream";

/// Stream numbers of the multiplexed framing.
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
/// Written by the engine itself (an error after the stream began).
pub const SYSTEM_ERR: u8 = 3;

/// One frame: stream number, three zero bytes, big-endian payload length, payload.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

pub type Reader = Pin<Box<dyn AsyncRead + Send>>;
pub type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// Both halves of a hijacked connection: what the client sends, and where output goes.
/// Without an upgrade the reader is at its end at once.
pub struct Conn {
    pub input: Reader,
    pub output: Writer,
    /// Whether the client can send input at all (it upgraded the connection).
    pub upgraded: bool,
}

fn wants_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("tcp") || !v.is_empty())
}

/// Answers the request with a hijack and runs `task` over the connection once it is ours.
pub fn hijack<F, Fut>(mut req: Request, content_type: &'static str, task: F) -> Response
where
    F: FnOnce(Conn) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if wants_upgrade(&req) {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                    task(Conn {
                        input: Box::pin(r),
                        output: Box::pin(w),
                        upgraded: true,
                    })
                    .await
                }
                Err(e) => tracing::debug!(error = %e, "hijack: the client went away before the upgrade"),
            }
        });
        let mut resp = StatusCode::SWITCHING_PROTOCOLS.into_response();
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("tcp"));
        return resp;
    }
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(task(Conn {
        input: Box::pin(tokio::io::empty()),
        output: Box::pin(ours),
        upgraded: false,
    }));
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(theirs));
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// An NDJSON response fed from a channel of JSON values (pull and build progress, events).
pub fn ndjson(rx: tokio::sync::mpsc::Receiver<serde_json::Value>) -> Response {
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx).map(|v| {
        let mut line = serde_json::to_vec(&v).unwrap_or_default();
        line.push(b'\n');
        Ok::<_, std::convert::Infallible>(line)
    });
    ([(header::CONTENT_TYPE, "application/json")], Body::from_stream(stream)).into_response()
}

/// A progress message as Docker's stream formatter writes it.
pub fn status(id: Option<&str>, status: &str) -> serde_json::Value {
    match id {
        Some(id) => serde_json::json!({ "status": status, "id": id }),
        None => serde_json::json!({ "status": status }),
    }
}

/// An error inside a stream: the legacy `error` string docker-py reads, and `errorDetail`.
pub fn stream_error(message: &str) -> serde_json::Value {
    serde_json::json!({ "error": message, "errorDetail": { "message": message } })
}
