//! Compression of HTML pages, cached by content.
//!
//! A lesson page differs between learners only in small parts (progress marks, a name), so
//! the same bytes are served over and over. Compressing them per request cost three
//! quarters of the server's time; instead each distinct page is compressed once, at a
//! better level than per-request compression could afford, and found again by the SHA-256
//! of its bytes.

use std::io::Write;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use quick_cache::Weighter;
use quick_cache::sync::Cache;
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Encoding {
    Brotli,
    Gzip,
}

impl Encoding {
    fn name(self) -> &'static str {
        match self {
            Encoding::Brotli => "br",
            Encoding::Gzip => "gzip",
        }
    }

    fn compress(self, data: &[u8]) -> Option<Vec<u8>> {
        match self {
            Encoding::Brotli => {
                let mut out = Vec::with_capacity(data.len() / 3);
                let params = brotli::enc::BrotliEncoderParams {
                    quality: 6,
                    lgwin: 22,
                    ..Default::default()
                };
                brotli::BrotliCompress(&mut &data[..], &mut out, &params).ok()?;
                Some(out)
            }
            Encoding::Gzip => {
                let mut enc =
                    flate2::write::GzEncoder::new(Vec::with_capacity(data.len() / 3), flate2::Compression::new(6));
                enc.write_all(data).ok()?;
                enc.finish().ok()
            }
        }
    }
}

/// The best encoding the client accepts: brotli, then gzip.
fn negotiate(accept: Option<&HeaderValue>) -> Option<Encoding> {
    let accept = accept?.to_str().ok()?;
    let accepted = |name: &str| {
        accept.split(',').any(|item| {
            let mut parts = item.split(';').map(str::trim);
            parts.next().is_some_and(|n| n.eq_ignore_ascii_case(name))
                && parts.all(|p| {
                    p.strip_prefix("q=")
                        .and_then(|q| q.parse::<f32>().ok())
                        .is_none_or(|q| q > 0.0)
                })
        })
    };
    if accepted("br") {
        Some(Encoding::Brotli)
    } else if accepted("gzip") {
        Some(Encoding::Gzip)
    } else {
        None
    }
}

#[derive(Clone)]
struct ByteWeight;

impl Weighter<([u8; 32], Encoding), Bytes> for ByteWeight {
    fn weight(&self, _key: &([u8; 32], Encoding), value: &Bytes) -> u64 {
        value.len() as u64 + 64
    }
}

pub struct PageCache {
    cache: Cache<([u8; 32], Encoding), Bytes, ByteWeight>,
}

impl PageCache {
    /// A cache holding up to `bytes` of compressed pages.
    pub fn new(bytes: u64) -> Arc<Self> {
        Arc::new(PageCache {
            cache: Cache::with_weighter(10_000, bytes, ByteWeight),
        })
    }
}

const MIN_SIZE: usize = 1024;
const MAX_SIZE: usize = 4 << 20;

pub async fn middleware(State(pages): State<Arc<PageCache>>, request: Request, next: Next) -> Response {
    let encoding = negotiate(request.headers().get(header::ACCEPT_ENCODING));
    let mut response = next.run(request).await;
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !is_html || response.headers().contains_key(header::CONTENT_ENCODING) {
        return response;
    }
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    let Some(encoding) = encoding else {
        return response;
    };
    let (mut parts, body) = response.into_parts();
    let bytes = match axum::body::to_bytes(body, MAX_SIZE).await {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "reading a page body to compress it");
            return Response::from_parts(parts, Body::empty());
        }
    };
    if bytes.len() < MIN_SIZE {
        return Response::from_parts(parts, Body::from(bytes));
    }
    let key: [u8; 32] = Sha256::digest(&bytes).into();
    let compressed = match pages.cache.get(&(key, encoding)) {
        Some(c) => c,
        None => match encoding.compress(&bytes) {
            Some(c) => {
                let c = Bytes::from(c);
                pages.cache.insert((key, encoding), c.clone());
                c
            }
            None => return Response::from_parts(parts, Body::from(bytes)),
        },
    };
    parts
        .headers
        .insert(header::CONTENT_ENCODING, HeaderValue::from_static(encoding.name()));
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(compressed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_prefers_brotli_and_honours_q_zero() {
        let h = |s: &'static str| HeaderValue::from_static(s);
        assert_eq!(negotiate(Some(&h("gzip, deflate, br, zstd"))), Some(Encoding::Brotli));
        assert_eq!(negotiate(Some(&h("gzip;q=1.0, br;q=0"))), Some(Encoding::Gzip));
        assert_eq!(negotiate(Some(&h("identity"))), None);
        assert_eq!(negotiate(None), None);
    }

    #[test]
    fn compressed_pages_decompress_to_the_page() {
        use std::io::Read;
        let page = "<p>lesson</p>".repeat(500);
        let gz = Encoding::Gzip.compress(page.as_bytes()).unwrap();
        let mut back = String::new();
        flate2::read::GzDecoder::new(&gz[..]).read_to_string(&mut back).unwrap();
        assert_eq!(back, page);
        let br = Encoding::Brotli.compress(page.as_bytes()).unwrap();
        let mut back = Vec::new();
        brotli::BrotliDecompress(&mut &br[..], &mut back).unwrap();
        assert_eq!(back, page.as_bytes());
    }
}
