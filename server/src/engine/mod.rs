//! The Docker Engine API, one endpoint per node: a Unix socket on the host, bind-mounted
//! into the node, so the socket a request arrives on says whose objects it may touch.
//!
//! This first slice answers the daemon's health and version calls, which every docker
//! CLI command starts with; the containers, images, networks and volumes come with the
//! Engine API issue.

use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::IntoResponse;
use axum::routing::get;

/// The API version we speak: the one docker-cli 26 asks for.
pub const API_VERSION: &str = "1.45";
pub const MIN_API_VERSION: &str = "1.24";

/// Which node an endpoint belongs to.
#[derive(Debug, Clone)]
pub struct NodeContext {
    pub playground: String,
    pub node: String,
}

fn daemon_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert(header::SERVER, HeaderValue::from_static("Docker/26.1.5 (linux)"));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h
}

async fn ping() -> impl IntoResponse {
    (daemon_headers(), "OK")
}

async fn version() -> impl IntoResponse {
    let body = serde_json::json!({
        "Platform": { "Name": "Slipway Engine" },
        "Components": [{ "Name": "Engine", "Version": "26.1.5", "Details": { "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": "amd64" } }],
        "Version": "26.1.5",
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": "slipway",
        "GoVersion": "n/a",
        "Os": "linux",
        "Arch": slipway_runtime::image::config::host_architecture(),
        "KernelVersion": nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default(),
        "BuildTime": "",
    });
    (daemon_headers(), axum::Json(body))
}

pub fn router(node: Arc<NodeContext>) -> Router {
    // The CLI prefixes paths with /v1.xx; both forms are served.
    let api = Router::new()
        .route("/_ping", get(ping).head(ping))
        .route("/version", get(version));
    Router::new()
        .merge(api.clone())
        .nest("/{version}", api)
        .layer(axum::Extension(node))
}

/// Serves `node`'s endpoint on a Unix socket at `path` until the task is aborted.
pub fn serve(path: &Path, node: NodeContext) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let _ = std::fs::remove_file(path);
    let listener =
        slipway_runtime::linux::socket::SocketPath::new(path).and_then(|p| tokio::net::UnixListener::bind(p.path()))?;
    // Only root reaches the host side; inside the node, the learner is root.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    let app = router(Arc::new(node));
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "engine endpoint stopped");
        }
    }))
}
