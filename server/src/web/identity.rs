//! Who is asking: every visitor is a learner, identified by a random id in a signed cookie.
//! No account is needed to learn; an account only attaches a username and password to it.

use std::path::Path;

use anyhow::{Context, Result};
use axum::extract::{Request, State};
use axum::http::header::SET_COOKIE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::{Cookie, Key, SameSite, SignedCookieJar};

use crate::store::LearnerId;

pub const COOKIE: &str = "slipway_learner";
/// Browsers cap cookie lifetimes at 400 days.
const MAX_AGE_DAYS: i64 = 400;

/// The learner of this request, put into request extensions by [`middleware`].
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: LearnerId,
    /// True when the request carried no valid cookie: the learner is new.
    pub fresh: bool,
}

/// Reads the signing key from `<data-dir>/cookie.key`, creating it on first start.
pub fn load_key(data_dir: &Path) -> Result<Key> {
    let path = data_dir.join("cookie.key");
    match std::fs::read(&path) {
        Ok(bytes) if bytes.len() >= 64 => {
            return Key::try_from(&bytes[..]).context("cookie.key is not a usable key");
        }
        Ok(_) => anyhow::bail!(
            "{} is shorter than 64 bytes; delete it to make a new one",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let key = Key::generate();
    write_private(&path, key.master()).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(bytes)
}

pub fn cookie_for(id: &LearnerId) -> Cookie<'static> {
    Cookie::build((COOKIE, id.as_str().to_string()))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .max_age(time::Duration::days(MAX_AGE_DAYS))
        .build()
}

/// Gives every page request an [`Identity`], and a cookie to a learner who had none.
pub async fn middleware(State(key): State<Key>, mut request: Request, next: Next) -> Response {
    let jar = SignedCookieJar::from_headers(request.headers(), key.clone());
    let known = jar.get(COOKIE).and_then(|c| LearnerId::parse(c.value()));
    let identity = match known {
        Some(id) => Identity { id, fresh: false },
        None => Identity {
            id: LearnerId::random(),
            fresh: true,
        },
    };
    request.extensions_mut().insert(identity.clone());
    let response = next.run(request).await;
    // A handler that changed the identity (log in, log out) set its own cookie.
    let handler_set_cookie = response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.starts_with(COOKIE)));
    if identity.fresh && !handler_set_cookie {
        return (jar.add(cookie_for(&identity.id)), response).into_response();
    }
    response
}
