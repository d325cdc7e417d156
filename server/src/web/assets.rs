//! Static assets: the site's own CSS and JavaScript, the npm packages it uses, and the
//! highlighting stylesheet generated at start. All are served by Slipway itself (no CDN).
//!
//! rust-embed puts the files into release binaries; URLs carry a content hash, so browsers
//! may cache them forever. Text assets are gzipped once, on first request.

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, OnceLock};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rust_embed::Embed;
use sha2::{Digest, Sha256};

#[derive(Embed)]
#[folder = "../web/static"]
struct SiteFiles;

/// The npm packages the pages use, installed into web/node_modules by the README's set-up.
#[derive(Embed)]
#[folder = "../web/node_modules"]
#[include = "mermaid/dist/mermaid.min.js"]
#[include = "@xterm/xterm/css/xterm.css"]
#[include = "@xterm/xterm/lib/xterm.js"]
#[include = "@xterm/addon-fit/lib/addon-fit.js"]
#[include = "@xterm/addon-web-links/lib/addon-web-links.js"]
#[allow_missing = true]
struct VendorFiles;

pub struct Asset {
    bytes: Bytes,
    mime: String,
    etag: String,
    gzipped: OnceLock<Option<Bytes>>,
}

impl Asset {
    fn new(bytes: Cow<'static, [u8]>, mime: &str) -> Self {
        let etag = hex::encode(&Sha256::digest(&bytes)[..8]);
        let bytes = match bytes {
            Cow::Borrowed(b) => Bytes::from_static(b),
            Cow::Owned(v) => Bytes::from(v),
        };
        Asset {
            bytes,
            mime: mime.to_string(),
            etag,
            gzipped: OnceLock::new(),
        }
    }

    fn compressible(&self) -> bool {
        self.mime.starts_with("text/")
            || self.mime.contains("javascript")
            || self.mime.contains("json")
            || self.mime.contains("svg")
    }

    fn gzipped(&self) -> Option<Bytes> {
        self.gzipped
            .get_or_init(|| {
                if !self.compressible() || self.bytes.len() < 1024 {
                    return None;
                }
                let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                enc.write_all(&self.bytes).ok()?;
                enc.finish().ok().map(Bytes::from)
            })
            .clone()
    }
}

/// Every asset by its path under `/static/`.
pub struct Assets {
    files: HashMap<String, Asset>,
}

impl Assets {
    pub fn load() -> Arc<Assets> {
        let mut files = HashMap::new();
        for name in SiteFiles::iter() {
            if let Some(f) = SiteFiles::get(&name) {
                files.insert(name.to_string(), Asset::new(f.data, f.metadata.mimetype()));
            }
        }
        for name in VendorFiles::iter() {
            if let Some(f) = VendorFiles::get(&name) {
                files.insert(format!("vendor/{name}"), Asset::new(f.data, f.metadata.mimetype()));
            }
        }
        if !files.contains_key("vendor/mermaid/dist/mermaid.min.js") {
            tracing::warn!("web/node_modules is missing (run `npm ci` in web/): diagrams will not be drawn");
        }
        let css = crate::course::highlight::stylesheet();
        files.insert(
            "highlight.css".into(),
            Asset::new(Cow::Owned(css.into_bytes()), "text/css"),
        );
        Arc::new(Assets { files })
    }

    /// The URL of an asset, versioned by its content so it can be cached for good.
    pub fn url(&self, name: &str) -> String {
        match self.files.get(name) {
            Some(a) => format!("/static/{name}?v={}", a.etag),
            None => format!("/static/{name}"),
        }
    }

    pub fn contains(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }
}

pub async fn serve(
    State(assets): State<Arc<Assets>>,
    Path(path): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let Some(asset) = assets.files.get(&path) else {
        return (StatusCode::NOT_FOUND, "no such asset").into_response();
    };
    let etag = format!("\"{}\"", asset.etag);
    if headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag))
    {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().starts_with("gzip")));
    let mut response = match asset.gzipped().filter(|_| accepts_gzip) {
        Some(gz) => {
            let mut r = gz.into_response();
            r.headers_mut()
                .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            r
        }
        None => asset.bytes.clone().into_response(),
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&asset.mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    // A URL with the content hash (see `Assets::url`) never goes stale; one without it must
    // be revalidated, or a browser could keep an old copy after an upgrade.
    let versioned = query.as_deref() == Some(&format!("v={}", asset.etag));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if versioned {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    response
}
