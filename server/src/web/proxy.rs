//! Learners' own web servers, opened from the browser.
//!
//! A learner who starts a server in a node (nginx, `nc -l`, an app in a container) opens it
//! through Slipway, which connects to the port from inside the node's network namespace
//! (`playground::ports`): the host has no route to the node. Two ways in:
//!
//! - by path, `/pg/<id>/<node>/<port>/...` (what the page links to): works behind any
//!   host name; the prefix is stripped, so an app that links to absolute paths
//!   (`/static/app.js`) loses it. Redirects to the app's own address are rewritten.
//! - by host name, `<id>-<node>-<port>.<Slipway's host>`: the app gets an origin of its own
//!   and absolute paths work, but the name must reach Slipway (`*.localhost` does in
//!   browsers; elsewhere a wildcard DNS record is needed).
//!
//! Only the playground's owner gets through, or the admin by bearer token; anyone else
//! gets the 404 of a playground that does not exist. The admin's sign-in cookie is not
//! accepted on paths: a learner's page served on Slipway's own origin would run in the
//! admin's browser with it. The owner's identity cookie is sent to Slipway's host only, so
//! a host-name link carries a short-lived signed token (`?slipway_token=`), swapped on the
//! first request for a cookie of that host.
//!
//! Slipway's cookies and the admin's bearer token are taken out of what is forwarded, and
//! cookies named like Slipway's out of what comes back.

use std::os::fd::AsFd;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use hyper_util::rt::TokioIo;
use sha2::Sha256;
use time::OffsetDateTime;

use super::AppState;
use super::admin::same;
use super::identity::Identity;
use super::playground::Caller;
use crate::playground::{PlaygroundError, Playgrounds, Record, ports};

/// The query parameter of a host-name link, and the cookie it is swapped for.
const TOKEN_PARAM: &str = "slipway_token";
const HOST_COOKIE: &str = "slipway_pg";
/// A link's token is fresh on every poll of the ports; the cookie lasts a working day.
const TOKEN_SECONDS: i64 = 120;
const COOKIE_SECONDS: i64 = 12 * 3600;

/// The playgrounds and playground `id`'s record, if `caller` may use it; else, as in the
/// rest of the API, the 404 of a playground that does not exist.
pub(super) fn owned(app: &AppState, caller: &Caller, id: &str) -> Result<(Arc<Playgrounds>, Record), PlaygroundError> {
    let pgs = app.playgrounds.clone().ok_or(PlaygroundError::NotFound)?;
    let record = pgs
        .get(id)
        .map(|p| p.record())
        .filter(|r| caller.may_use(r))
        .ok_or(PlaygroundError::NotFound)?;
    Ok((pgs, record))
}

/// `GET /api/playgrounds/{id}/ports`: every listening TCP port of every node. Nothing is
/// left out: learners may see their own sshd or database there, which are theirs to see.
pub async fn ports(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (pgs, record) = match owned(&app, &caller, &id) {
        Ok(found) => found,
        Err(e) => return e.into_response(),
    };
    let base = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .and_then(named_host);
    let token = base.as_ref().map(|_| sign(&app, &id, &caller.owner(), TOKEN_SECONDS));
    let mut found = Vec::new();
    for node in &record.nodes {
        // A node that does not run listens on nothing.
        let Ok(proc) = pgs.node_proc(&id, &node.name) else {
            continue;
        };
        for port in ports::listening(proc.as_fd()) {
            let url = format!("/pg/{id}/{}/{port}/", node.name);
            let mut entry = serde_json::json!({ "node": node.name, "port": port, "url": url });
            if let (Some(base), Some(token)) = (&base, &token) {
                entry["host_url"] = format!("//{id}-{}-{port}.{base}/?{TOKEN_PARAM}={token}", node.name).into();
            }
            found.push(entry);
        }
    }
    Json(found).into_response()
}

/// The request's host if host-name links can be made under it: a DNS name, not an IP.
fn named_host(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    let name = host.rsplit_once(':').map_or(host.as_str(), |(name, _)| name);
    let plausible = !name.is_empty()
        && name.parse::<std::net::Ipv4Addr>().is_err()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && name.bytes().any(|b| b.is_ascii_alphabetic());
    plausible.then_some(host)
}

/// `/pg/{id}/{node}/{port}/{*rest}`, any method, WebSocket upgrades included.
pub async fn by_path(State(app): State<AppState>, request: Request) -> Response {
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(|q| format!("?{q}")).unwrap_or_default();
    // "", "pg", id, node, port, rest
    let mut parts = path.splitn(6, '/').skip(2);
    let (Some(id), Some(node), Some(port)) = (parts.next(), parts.next(), parts.next()) else {
        return PlaygroundError::NotFound.into_response();
    };
    let Some(port) = port.parse::<u16>().ok().filter(|p| *p > 0) else {
        return PlaygroundError::NotFound.into_response();
    };
    let prefix = format!("/pg/{id}/{node}/{port}");
    let Some(rest) = parts.next() else {
        // The app's relative links need the slash.
        return Redirect::permanent(&format!("{prefix}/{query}")).into_response();
    };
    let caller = if bearer_is_admin(&app, request.headers()) {
        Some(Caller::Admin)
    } else {
        request
            .extensions()
            .get::<Identity>()
            .filter(|me| !me.fresh)
            .map(|me| Caller::Learner(me.id.as_str().to_string()))
    };
    // A shared playground's ports are open to whoever has the link.
    let shared = app
        .playgrounds
        .as_ref()
        .filter(|pgs| pgs.get(id).is_some_and(|p| p.record().shared))
        .cloned();
    let pgs = match shared {
        Some(pgs) => pgs,
        None => match caller
            .ok_or(PlaygroundError::NotFound)
            .and_then(|c| owned(&app, &c, id))
        {
            Ok((pgs, _)) => pgs,
            Err(e) => return e.into_response(),
        },
    };
    let target = format!("/{rest}{query}");
    let mut response = forward(&app, &pgs, id, node, port, request, &target, Some(&prefix)).await;
    // Slipway's policy would stop the app's inline scripts; the app's page is the
    // learner's own, so it only may not be framed.
    response
        .headers_mut()
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("frame-ancestors 'none'"));
    response
}

/// Requests to `<id>-<node>-<port>.<anything>` go to that port; the rest to Slipway.
pub async fn by_host(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let Some((id, node, port)) = host_target(&request) else {
        return next.run(request).await;
    };
    let Some(pgs) = app.playgrounds.clone() else {
        return PlaygroundError::NotFound.into_response();
    };
    let usable = |caller: &Caller| pgs.get(&id).is_some_and(|p| caller.may_use(&p.record()));
    let (token, rest_query) = take_token(request.uri().query());
    if let Some(caller) = token.and_then(|t| verify(&app, t, &id)).filter(&usable) {
        // Swapped for a cookie of this host, and out of sight of the app.
        let cookie = Cookie::build((HOST_COOKIE, sign(&app, &id, &caller.owner(), COOKIE_SECONDS)))
            .path("/")
            .http_only(true)
            .same_site(SameSite::Lax)
            .max_age(time::Duration::seconds(COOKIE_SECONDS))
            .build();
        let to = format!(
            "{}{}",
            request.uri().path(),
            rest_query.map(|q| format!("?{q}")).unwrap_or_default()
        );
        let mut response = Redirect::to(&to).into_response();
        if let Ok(v) = HeaderValue::from_str(&cookie.to_string()) {
            response.headers_mut().insert(header::SET_COOKIE, v);
        }
        return response;
    }
    let caller = if bearer_is_admin(&app, request.headers()) {
        Some(Caller::Admin)
    } else {
        CookieJar::from_headers(request.headers())
            .get(HOST_COOKIE)
            .and_then(|c| verify(&app, c.value(), &id))
    };
    if !caller.as_ref().is_some_and(usable) {
        return (
            StatusCode::NOT_FOUND,
            "Nothing here for you. Open your playground's ports from its Ports list in Slipway: \
             that link signs you in to this address.\n",
        )
            .into_response();
    }
    let target = request
        .uri()
        .path_and_query()
        .map_or("/".to_string(), |pq| pq.to_string());
    forward(&app, &pgs, &id, &node, port, request, &target, None).await
}

/// (playground, node, port) from a host name `<id>-<node>-<port>.<base>`.
fn host_target(request: &Request) -> Option<(String, String, u16)> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().host())?;
    let (label, base) = host.split_once('.')?;
    if base.is_empty() {
        return None;
    }
    let label = label.to_ascii_lowercase();
    let mut parts = label.splitn(3, '-');
    let (id, node, port) = (parts.next()?, parts.next()?, parts.next()?);
    let id_ok = id.len() == 12 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let node_ok = node
        .strip_prefix("node")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    let port = port.parse::<u16>().ok().filter(|p| *p > 0)?;
    (id_ok && node_ok).then(|| (id.to_string(), node.to_string(), port))
}

/// The `slipway_token` of a query, and the query without it.
fn take_token(query: Option<&str>) -> (Option<&str>, Option<String>) {
    let Some(query) = query else { return (None, None) };
    let mut token = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(
            |pair| match pair.strip_prefix(TOKEN_PARAM).and_then(|v| v.strip_prefix('=')) {
                Some(v) => {
                    token = Some(v);
                    false
                }
                None => true,
            },
        )
        .collect();
    (token, (!rest.is_empty()).then(|| rest.join("&")))
}

fn bearer_is_admin(app: &AppState, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| same(t.trim(), &app.admin_token))
}

// --- Tokens: "<id>.<owner>.<expiry>.<HMAC-SHA256>", keyed with the cookie key ----------------

fn mac(app: &AppState) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(app.key.signing()).expect("HMAC takes keys of any length");
    // Nothing signed for another purpose with the same key can pass for a token.
    mac.update(b"slipway port proxy\0");
    mac
}

fn sign(app: &AppState, id: &str, owner: &str, seconds: i64) -> String {
    let payload = format!("{id}.{owner}.{}", OffsetDateTime::now_utc().unix_timestamp() + seconds);
    let mut mac = mac(app);
    mac.update(payload.as_bytes());
    format!("{payload}.{}", hex::encode(mac.finalize().into_bytes()))
}

/// Who a token stands for, if it is genuine, current, and for playground `id`.
fn verify(app: &AppState, token: &str, id: &str) -> Option<Caller> {
    let (payload, tag) = token.rsplit_once('.')?;
    let mut mac = mac(app);
    mac.update(payload.as_bytes());
    mac.verify_slice(&hex::decode(tag).ok()?).ok()?;
    let mut fields = payload.split('.');
    let (for_id, owner, expires) = (fields.next()?, fields.next()?, fields.next()?.parse::<i64>().ok()?);
    if fields.next().is_some() || for_id != id || expires < OffsetDateTime::now_utc().unix_timestamp() {
        return None;
    }
    Some(if owner == "admin" {
        Caller::Admin
    } else {
        Caller::Learner(owner.to_string())
    })
}

// --- The forwarding itself ----------------------------------------------------------------

/// Headers of one connection, not of the message (RFC 9110, 7.6.1).
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    let upgrade_to = headers.get(header::UPGRADE).cloned();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if upgrade && let Some(protocol) = upgrade_to {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        headers.insert(header::UPGRADE, protocol);
    }
}

fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade")))
}

/// Takes Slipway's cookies and the admin's token out of a request for a learner's server.
fn strip_credentials(app: &AppState, headers: &mut HeaderMap) {
    if bearer_is_admin(app, headers) {
        headers.remove(header::AUTHORIZATION);
    }
    let kept: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && !c.starts_with("slipway_"))
        .map(str::to_string)
        .collect();
    headers.remove(header::COOKIE);
    if !kept.is_empty()
        && let Ok(v) = HeaderValue::from_str(&kept.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

fn bad_gateway(text: String) -> Response {
    (StatusCode::BAD_GATEWAY, text).into_response()
}

/// Sends `request` to `port` on `node` as `target` (path and query), and its answer back.
/// `prefix` is set for path-based requests.
#[allow(clippy::too_many_arguments)]
async fn forward(
    app: &AppState,
    pgs: &Playgrounds,
    id: &str,
    node: &str,
    port: u16,
    mut request: Request,
    target: &str,
    prefix: Option<&str>,
) -> Response {
    let proc = match pgs.node_proc(id, node) {
        Ok(proc) => proc,
        Err(e) => return e.into_response(),
    };
    if let Some(p) = pgs.get(id) {
        p.touch();
    }
    let stream = match ports::connect(proc.as_fd(), port).await {
        Ok(s) => s,
        Err(e) => {
            return bad_gateway(format!(
                "Nothing answers on port {port} of {node} ({e}). Start a server there, listening on \
                 0.0.0.0 (all addresses) or 127.0.0.1.\n"
            ));
        }
    };
    drop(proc);

    let upgrade = wants_upgrade(request.headers());
    // The browser's side of the upgrade, before the request is taken apart.
    let browser_side = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let original_host = parts.headers.get(header::HOST).cloned();
    let mut headers = parts.headers;
    strip_hop_by_hop(&mut headers, upgrade);
    strip_credentials(app, &mut headers);
    // Slipway has already answered any Expect: 100-continue itself.
    headers.remove(header::EXPECT);
    if let Some(host) = original_host.clone() {
        headers.insert(HeaderName::from_static("x-forwarded-host"), host);
    }
    match prefix {
        // Dev servers refuse host names they do not know, but know their own.
        Some(prefix) => {
            headers.insert(
                header::HOST,
                HeaderValue::from_str(&format!("localhost:{port}")).expect("a valid host"),
            );
            if let Ok(v) = HeaderValue::from_str(prefix) {
                headers.insert(HeaderName::from_static("x-forwarded-prefix"), v);
            }
        }
        None => {
            if let Some(host) = original_host {
                headers.insert(header::HOST, host);
            }
        }
    }
    let mut upstream = axum::http::Request::new(body);
    *upstream.method_mut() = parts.method;
    *upstream.version_mut() = Version::HTTP_11;
    *upstream.headers_mut() = headers;
    *upstream.uri_mut() = match target.parse() {
        Ok(uri) => uri,
        Err(_) => return (StatusCode::BAD_REQUEST, "bad request path\n").into_response(),
    };

    let (mut sender, connection) = match hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => return bad_gateway(format!("Port {port} of {node} did not take the connection: {e}\n")),
    };
    tokio::spawn(async move {
        if let Err(e) = connection.with_upgrades().await {
            tracing::debug!(error = %e, "proxied connection ended");
        }
    });
    let mut response = match sender.send_request(upstream).await {
        Ok(r) => r,
        Err(e) => return bad_gateway(format!("Port {port} of {node} did not answer over HTTP: {e}\n")),
    };

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(browser_side) = browser_side else {
            return bad_gateway(format!("Port {port} of {node} switched protocols unasked.\n"));
        };
        let node_side = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            let (Ok(browser), Ok(node)) = tokio::join!(browser_side, node_side) else {
                return;
            };
            let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(browser), &mut TokioIo::new(node)).await;
        });
    }

    let (mut parts, body) = response.into_parts();
    let switching = parts.status == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(&mut parts.headers, switching);
    let cookies: Vec<HeaderValue> = parts
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter(|v| !v.as_bytes().trim_ascii_start().starts_with(b"slipway_"))
        .cloned()
        .collect();
    parts.headers.remove(header::SET_COOKIE);
    for cookie in cookies {
        parts.headers.append(header::SET_COOKIE, cookie);
    }
    if let Some(prefix) = prefix
        && let Some(moved) = parts
            .headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|l| relocate(l, prefix, port))
        && let Ok(v) = HeaderValue::from_str(&moved)
    {
        parts.headers.insert(header::LOCATION, v);
    }
    Response::from_parts(parts, Body::new(body))
}

/// A redirect from the app, for the browser: the app's own address and its absolute paths
/// lie under the prefix.
fn relocate(location: &str, prefix: &str, port: u16) -> Option<String> {
    for origin in [format!("http://localhost:{port}"), format!("http://127.0.0.1:{port}")] {
        if let Some(rest) = location.strip_prefix(&origin)
            && (rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
        {
            let rest = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            };
            return Some(format!("{prefix}{rest}"));
        }
    }
    let prefixed = location == prefix || location.starts_with(&format!("{prefix}/"));
    (location.starts_with('/') && !location.starts_with("//") && !prefixed).then(|| format!("{prefix}{location}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_stay_under_the_prefix() {
        let p = "/pg/0123456789ab/node1/8080";
        assert_eq!(
            relocate("/login", p, 8080).as_deref(),
            Some("/pg/0123456789ab/node1/8080/login")
        );
        assert_eq!(
            relocate("http://localhost:8080/a?b", p, 8080).as_deref(),
            Some("/pg/0123456789ab/node1/8080/a?b")
        );
        assert_eq!(
            relocate("http://127.0.0.1:8080", p, 8080).as_deref(),
            Some("/pg/0123456789ab/node1/8080/")
        );
        assert_eq!(
            relocate("/pg/0123456789ab/node1/8080/x", p, 8080),
            None,
            "already prefixed"
        );
        assert_eq!(relocate("https://example.com/", p, 8080), None);
        assert_eq!(relocate("//example.com/", p, 8080), None);
        assert_eq!(relocate("next", p, 8080), None, "relative: the browser resolves it");
    }

    #[test]
    fn host_names_name_a_port() {
        let at = |host: &str| {
            let request = Request::builder()
                .uri("/")
                .header(header::HOST, host)
                .body(Body::empty())
                .unwrap();
            host_target(&request)
        };
        assert_eq!(
            at("0123456789ab-node1-8080.localhost:8080"),
            Some(("0123456789ab".into(), "node1".into(), 8080))
        );
        assert_eq!(
            at("0123456789AB-node2-80.slipway.example.com"),
            Some(("0123456789ab".into(), "node2".into(), 80))
        );
        assert_eq!(at("localhost:8080"), None);
        assert_eq!(at("0123456789ab-node1-8080"), None, "no base name");
        assert_eq!(at("0123456789ab-nodes-8080.localhost"), None);
        assert_eq!(at("0123456789ab-node1-0.localhost"), None);
        assert_eq!(at("xyz-node1-8080.localhost"), None);
        assert_eq!(named_host("localhost:8080").as_deref(), Some("localhost:8080"));
        assert_eq!(named_host("127.0.0.1:8080"), None);
        assert_eq!(named_host("[::1]:8080"), None);
    }

    #[test]
    fn the_token_leaves_the_query() {
        assert_eq!(take_token(Some("slipway_token=abc")), (Some("abc"), None));
        assert_eq!(
            take_token(Some("a=1&slipway_token=abc&b=2")),
            (Some("abc"), Some("a=1&b=2".into()))
        );
        assert_eq!(take_token(Some("a=1")), (None, Some("a=1".into())));
        assert_eq!(take_token(None), (None, None));
    }
}
