//! `docker cp` (`/containers/{id}/archive`), `docker export` and `docker diff`: thin
//! handlers over [`crate::engine::archive`], the bodies streamed both ways.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, Path, Query, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use futures_util::StreamExt;

use super::super::Node;
use super::super::archive::{self, ChannelReader, ChannelWriter, PathStat, Root};
use super::super::error::{ApiError, ApiResult};
use super::flag;

pub fn routes() -> Router {
    Router::new()
        .route(
            "/containers/{id}/archive",
            get(get_archive).head(head_archive).put(put_archive),
        )
        .route("/containers/{id}/export", get(export))
        .route("/containers/{id}/changes", get(changes))
        .merge(super::df::routes())
}

type Q = Query<HashMap<String, String>>;

fn path_of(q: &HashMap<String, String>) -> ApiResult<String> {
    q.get("path")
        .filter(|p| !p.is_empty())
        .cloned()
        .ok_or_else(|| ApiError::bad("bad parameter: path cannot be empty"))
}

fn stat_header(s: &PathStat) -> ApiResult<HeaderValue> {
    let json = serde_json::to_vec(s).map_err(ApiError::internal)?;
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json)).map_err(ApiError::internal)
}

async fn stat_of(node: &Node, id: &str, path: &str) -> ApiResult<(PathStat, Root, String)> {
    let rec = node.container(id)?;
    let root = Root::of(node, &rec, true)?;
    let (p, name) = (path.to_string(), rec.name.clone());
    let s = archive::run_in(root.clone(), move |fd| archive::stat(fd, &p, &name)).await?;
    Ok((s, root, rec.name))
}

async fn head_archive(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let (s, _, _) = stat_of(&node, &id, &path).await?;
    Ok(([("x-docker-container-path-stat", stat_header(&s)?)], StatusCode::OK).into_response())
}

/// A tar body written by `job` on its own thread as the client reads it.
fn tar_body(
    root: Root,
    job: impl FnOnce(std::os::fd::BorrowedFd<'_>, &mut ChannelWriter) -> ApiResult<()> + Send + 'static,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut w = ChannelWriter::new(tx);
    tokio::spawn(async move {
        let result = archive::run_in(root, move |fd| {
            let r = job(fd, &mut w);
            if let Err(e) = &r {
                w.fail(e);
            }
            r
        })
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "a tar body ended early");
        }
    });
    Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
}

async fn get_archive(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Q,
) -> ApiResult<Response> {
    let path = path_of(&q)?;
    let (s, root, name) = stat_of(&node, &id, &path).await?;
    if let Ok(rec) = node.container(&id) {
        let attrs = super::super::containers::container_attributes(&rec);
        node.emit("container", "archive-path", &rec.id, attrs);
    }
    let body = tar_body(root, move |fd, w| archive::write_tar(fd, &path, &name, w));
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar")),
            (
                header::HeaderName::from_static("x-docker-container-path-stat"),
                stat_header(&s)?,
            ),
        ],
        body,
    )
        .into_response())
}

async fn put_archive(
    Extension(node): Extension<Arc<Node>>,
    Path(id): Path<String>,
    Query(q): Q,
    req: Request,
) -> ApiResult<StatusCode> {
    let path = path_of(&q)?;
    let rec = node.container(&id)?;
    if rec.host_config.readonly_rootfs == Some(true) {
        return Err(ApiError::Forbidden("container rootfs is marked read-only".into()));
    }
    let root = Root::of(&node, &rec, true)?;
    let no_overwrite = flag(q.get("noOverwriteDirNonDir").map(String::as_str));
    let copy_uid_gid = flag(q.get("copyUIDGID").map(String::as_str));
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    // The body is fed to the unpacking thread as it arrives, never held whole.
    let mut stream = req.into_body().into_data_stream();
    let feed = tokio::spawn(async move {
        while let Some(chunk) = stream.next().await {
            let item = chunk.map_err(std::io::Error::other);
            let stop = item.is_err();
            if tx.send(item).await.is_err() || stop {
                break;
            }
        }
    });
    let name = rec.name.clone();
    let result = archive::run_in(root, move |fd| {
        archive::extract(fd, &path, &name, no_overwrite, copy_uid_gid, ChannelReader::new(rx))
    })
    .await;
    feed.abort();
    result?;
    node.emit(
        "container",
        "extract-to-dir",
        &rec.id,
        super::super::containers::container_attributes(&rec),
    );
    Ok(StatusCode::OK)
}

async fn export(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<Response> {
    let rec = node.container(&id)?;
    // The container's own layers, not its mounts: Docker exports neither volumes nor /proc.
    let root = Root::of(&node, &rec, false)?;
    let body = tar_body(root, |fd, w| archive::write_root_tar(fd, w));
    node.emit(
        "container",
        "export",
        &rec.id,
        super::super::containers::container_attributes(&rec),
    );
    Ok((
        [(header::CONTENT_TYPE, HeaderValue::from_static("application/x-tar"))],
        body,
    )
        .into_response())
}

async fn changes(Extension(node): Extension<Arc<Node>>, Path(id): Path<String>) -> ApiResult<Response> {
    let rec = node.container(&id)?;
    let image = node.engine.images.image(&rec.image_id)?;
    let lower = node.engine.images.lower_dirs(&image);
    let (upper, _) = node.container_layer(&rec.id);
    let list = tokio::task::spawn_blocking(move || archive::changes(&upper, &lower))
        .await
        .map_err(ApiError::internal)?;
    Ok(super::json(&list))
}
