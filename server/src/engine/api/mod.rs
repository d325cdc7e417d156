//! The Engine API's HTTP face: routes and thin handlers, one file per kind of object.
//! Every path is served both bare and under a `/v1.xx` prefix, which is stripped before
//! routing (and checked against the versions we speak).

pub mod archive;
pub mod build;
pub mod container_json;
pub mod containers;
pub mod df;
pub mod exec;
pub mod images;
pub mod networks;
pub mod system;
pub mod volumes;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::{API_VERSION, MIN_API_VERSION, Node};

/// The API version a request was made with (its `/v1.xx` prefix, or ours).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApiVersion(pub u32, pub u32);

impl ApiVersion {
    fn parse(s: &str) -> Option<ApiVersion> {
        let (major, minor) = s.strip_prefix('v')?.split_once('.')?;
        Some(ApiVersion(major.parse().ok()?, minor.parse().ok()?))
    }
    pub fn at_least(&self, major: u32, minor: u32) -> bool {
        *self >= ApiVersion(major, minor)
    }
}

fn ours() -> ApiVersion {
    ApiVersion::parse(&format!("v{API_VERSION}")).unwrap_or(ApiVersion(1, 45))
}

/// Headers every answer carries, as dockerd sends them.
pub fn daemon_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("api-version", HeaderValue::from_static(API_VERSION));
    h.insert("docker-experimental", HeaderValue::from_static("false"));
    h.insert("ostype", HeaderValue::from_static("linux"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static(concat!("Docker/", "26.1.5", " (linux)")),
    );
    h
}

/// The router, behind the step that strips the version prefix.
pub type Service = axum::routing::IntoMakeService<tower::util::MapRequest<Router, fn(Request) -> Request>>;

pub fn router(node: Arc<Node>) -> Service {
    let routes = Router::new()
        .merge(system::routes())
        .merge(containers::routes())
        .merge(exec::routes())
        .merge(networks::routes())
        .merge(images::routes())
        .merge(build::routes())
        .merge(volumes::routes().merge(archive::routes()))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(version_gate))
        .layer(axum::middleware::map_response(add_headers))
        .layer(axum::Extension(node));
    use tower::ServiceExt;
    let strip: fn(Request) -> Request = strip_version;
    axum::ServiceExt::<Request>::into_make_service(routes.map_request(strip))
}

async fn add_headers(mut resp: Response) -> Response {
    for (k, v) in daemon_headers() {
        if let Some(k) = k {
            resp.headers_mut().entry(k).or_insert(v);
        }
    }
    resp
}

async fn version_gate(req: Request, next: axum::middleware::Next) -> Response {
    let v = req.extensions().get::<ApiVersion>().copied().unwrap_or_else(ours);
    match check_version(v) {
        Ok(()) => next.run(req).await,
        Err(e) => e.into_response(),
    }
}

async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(format!("page not found: {}", uri.path()))
}

/// Takes `/v1.43/containers/json` to `/containers/json` and remembers 1.43.
fn strip_version(mut req: Request) -> Request {
    let path = req.uri().path();
    let mut version = ours();
    if let Some(rest) = path.strip_prefix('/')
        && let Some((first, tail)) = rest.split_once('/').or(Some((rest, "")))
        && let Some(v) = ApiVersion::parse(first)
    {
        version = v;
        let new_path = format!("/{tail}");
        let pq = match req.uri().query() {
            Some(q) => format!("{new_path}?{q}"),
            None => new_path,
        };
        if let Ok(pq) = pq.parse::<axum::http::uri::PathAndQuery>() {
            let mut parts = req.uri().clone().into_parts();
            parts.path_and_query = Some(pq);
            if let Ok(uri) = Uri::from_parts(parts) {
                *req.uri_mut() = uri;
            }
        }
    }
    req.extensions_mut().insert(version);
    req
}

/// Refuses API versions outside the range we speak, with dockerd's messages.
pub fn check_version(v: ApiVersion) -> Result<(), ApiError> {
    let min = ApiVersion::parse(&format!("v{MIN_API_VERSION}")).unwrap_or(ApiVersion(1, 24));
    if v > ours() {
        return Err(ApiError::bad(format!(
            "client version {}.{} is too new. Maximum supported API version is {API_VERSION}",
            v.0, v.1
        )));
    }
    if v < min {
        return Err(ApiError::bad(format!(
            "client version {}.{} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version",
            v.0, v.1
        )));
    }
    Ok(())
}

/// A query string's flag as Docker reads it: empty, `0`, `no`, `false` and `none` are
/// false, anything else true.
pub fn flag(value: Option<&str>) -> bool {
    let v = value.unwrap_or("").trim().to_ascii_lowercase();
    !matches!(v.as_str(), "" | "0" | "no" | "false" | "none")
}

pub fn json<T: serde::Serialize>(value: &T) -> Response {
    axum::Json(value).into_response()
}
