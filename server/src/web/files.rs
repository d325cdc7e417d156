//! Uploading files into a node and downloading them out:
//! `PUT /api/playgrounds/{id}/nodes/{node}/files?path=/abs/path` (the body is the file) and
//! `GET` of the same. Paths are resolved inside the node (see `playground::files`).

use std::os::fd::AsFd;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Deserialize;

use super::AppState;
use super::playground::{Caller, message};
use super::proxy::owned;
use crate::playground::files::{self, FileError};

#[derive(Deserialize)]
pub struct FileQuery {
    path: String,
}

impl IntoResponse for FileError {
    fn into_response(self) -> Response {
        let status = match &self {
            FileError::BadPath(_) => StatusCode::BAD_REQUEST,
            FileError::NotFound(_) => StatusCode::NOT_FOUND,
            FileError::TooBig(..) => StatusCode::PAYLOAD_TOO_LARGE,
            FileError::Refused(..) => StatusCode::FORBIDDEN,
            FileError::Io(..) => {
                tracing::error!(error = %self, "a node file operation failed");
                return message(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the request failed on our side; it has been logged",
                );
            }
        };
        message(status, self)
    }
}

pub async fn upload(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, node)): Path<(String, String)>,
    Query(q): Query<FileQuery>,
    headers: HeaderMap,
    mut body: Body,
) -> Response {
    let pgs = match owned(&app, &caller, &id) {
        Ok((pgs, _)) => pgs,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = files::check_path(&q.path) {
        return e.into_response();
    }
    let limit = pgs.limits.upload_mib << 20;
    let too_big = || FileError::TooBig(q.path.clone(), pgs.limits.upload_mib).into_response();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut data = Vec::new();
    let mut over = declared.is_some_and(|n| n > limit);
    while !over && let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => return message(StatusCode::BAD_REQUEST, format!("the upload broke off: {e}")),
        };
        if let Some(chunk) = frame.data_ref() {
            over = (data.len() + chunk.len()) as u64 > limit;
            if !over {
                data.extend_from_slice(chunk);
            }
        }
    }
    if over {
        drain(body, limit).await;
        return too_big();
    }
    let proc = match pgs.node_proc(&id, &node) {
        Ok(proc) => proc,
        Err(e) => return e.into_response(),
    };
    let path = q.path.clone();
    let size = data.len();
    match tokio::task::spawn_blocking(move || files::upload(proc.as_fd(), &path, &data)).await {
        Ok(Ok(())) => (
            StatusCode::CREATED,
            axum::Json(serde_json::json!({ "path": q.path, "size": size })),
        )
            .into_response(),
        Ok(Err(e)) => e.into_response(),
        Err(e) => message(StatusCode::INTERNAL_SERVER_ERROR, format!("the upload failed: {e}")),
    }
}

pub async fn download(
    State(app): State<AppState>,
    caller: Caller,
    Path((id, node)): Path<(String, String)>,
    Query(q): Query<FileQuery>,
) -> Response {
    let pgs = match owned(&app, &caller, &id) {
        Ok((pgs, _)) => pgs,
        Err(e) => return e.into_response(),
    };
    let proc = match pgs.node_proc(&id, &node) {
        Ok(proc) => proc,
        Err(e) => return e.into_response(),
    };
    let limit = pgs.limits.upload_mib << 20;
    let path = q.path.clone();
    let bytes = match tokio::task::spawn_blocking(move || files::download(proc.as_fd(), &path, limit)).await {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return e.into_response(),
        Err(e) => return message(StatusCode::INTERNAL_SERVER_ERROR, format!("the download failed: {e}")),
    };
    let name = q.path.rsplit('/').next().unwrap_or("file");
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::CONTENT_DISPOSITION, disposition(name)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        bytes,
    )
        .into_response()
}

/// Reads and drops the rest of a refused upload (up to `limit` more bytes, for a few
/// seconds): a server that closes the connection on a client still sending resets it,
/// and the client never reads the 413.
async fn drain(mut body: Body, limit: u64) {
    let mut left = limit;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), async {
        while let Some(Ok(frame)) = body.frame().await {
            let n = frame.data_ref().map_or(0, |d| d.len() as u64);
            match left.checked_sub(n) {
                Some(l) => left = l,
                None => return,
            }
        }
    })
    .await;
}

/// `attachment` with the file's name: plain for old clients, exact as RFC 8187 UTF-8.
fn disposition(name: &str) -> HeaderValue {
    let plain: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let exact = percent_encoding::utf8_percent_encode(name, percent_encoding::NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{exact}"))
        .unwrap_or(HeaderValue::from_static("attachment"))
}
