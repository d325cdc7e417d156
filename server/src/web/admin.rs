//! The operator's pages: the admin token, sign-in with it, and the image catalog's
//! status (what the background build is doing, what the store holds).
//!
//! The token is made on first start in `<data-dir>/admin-token` (mode 0600) and written
//! into `server.json` for local tools. Requests carry it as `Authorization: Bearer`, or
//! sign in once at `/admin/login`, which sets a signed cookie.

use std::path::Path;

use anyhow::{Context, Result};
use axum::Json;
use axum::extract::{Extension, Form, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, SameSite, SignedCookieJar};
use serde::Deserialize;

use super::identity::Identity;
use super::templates::{AdminImagesPage, AdminLoginPage, ImageRow};
use super::{AppError, AppState};
use crate::catalog::status::Phase;
use crate::images_cli::{human_ago, human_size};

const COOKIE: &str = "slipway_admin";

/// Reads `<data-dir>/admin-token`, making it on first start.
pub fn load_token(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("admin-token");
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 32 => return Ok(t.trim().to_string()),
        Ok(_) => anyhow::bail!("{} is too short; delete it to make a new one", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    }
    let bytes: [u8; 24] = rand::random();
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(token.as_bytes()))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(token)
}

/// Constant-time comparison, so the token cannot be guessed a byte at a time.
pub(super) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A request from the operator: the extractor refuses anyone else.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Self::Rejection> {
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.strip_prefix("Bearer "));
        if bearer.is_some_and(|t| same(t.trim(), &app.admin_token)) {
            return Ok(Admin);
        }
        let jar = SignedCookieJar::from_headers(&parts.headers, app.key.clone());
        if jar
            .get(COOKIE)
            .is_some_and(|c| same(c.value(), &token_tag(&app.admin_token)))
        {
            return Ok(Admin);
        }
        let wants_html = parts
            .headers
            .get(header::ACCEPT)
            .and_then(|h| h.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        Err(if wants_html {
            Redirect::to("/admin/login").into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                "admin token required (Authorization: Bearer TOKEN)",
            )
                .into_response()
        })
    }
}

/// What the cookie holds: not the token itself, so a leaked cookie does not give it away
/// (and a new token signs everyone out).
fn token_tag(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("slipway-admin-cookie:{token}"));
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

pub async fn login_form(
    State(app): State<AppState>,
    Extension(me): Extension<Identity>,
) -> Result<AdminLoginPage, AppError> {
    let learner = app.learner(&me).await?;
    Ok(AdminLoginPage {
        frame: app.frame(&learner),
        error: None,
    })
}

#[derive(Deserialize)]
pub struct LoginForm {
    token: String,
}

pub async fn login(
    State(app): State<AppState>,
    Extension(me): Extension<Identity>,
    jar: SignedCookieJar,
    Form(form): Form<LoginForm>,
) -> Result<Response, AppError> {
    if !same(form.token.trim(), &app.admin_token) {
        let learner = app.learner(&me).await?;
        let page = AdminLoginPage {
            frame: app.frame(&learner),
            error: Some("That is not the admin token.".into()),
        };
        return Ok((StatusCode::UNAUTHORIZED, page).into_response());
    }
    let cookie = Cookie::build((COOKIE, token_tag(&app.admin_token)))
        .path("/admin")
        .http_only(true)
        .same_site(SameSite::Strict)
        .build();
    Ok((jar.add(cookie), Redirect::to("/admin/images")).into_response())
}

pub async fn images_page(
    _: Admin,
    State(app): State<AppState>,
    Extension(me): Extension<Identity>,
) -> Result<Response, AppError> {
    let learner = app.learner(&me).await?;
    let status = app.catalog_status.snapshot();
    let mut rows = Vec::new();
    if let Some(catalog) = &app.catalog {
        let store = catalog.store.clone();
        let summaries = tokio::task::spawn_blocking(move || store.list(false)).await??;
        for s in summaries {
            rows.push(ImageRow {
                tags: s.tags.join(", "),
                id: slipway_runtime::image::store::short_id(&s.id),
                created: human_ago(&s.created),
                size: human_size(s.size),
            });
        }
    }
    let page = AdminImagesPage {
        frame: app.frame(&learner),
        building: status.phase == Phase::Building,
        phase: format!("{:?}", status.phase).to_lowercase(),
        status,
        rows,
    };
    let mut response = page.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, "no-store".parse().expect("header value"));
    Ok(response)
}

/// The same, for tools and tests.
pub async fn images_json(_: Admin, State(app): State<AppState>) -> Result<Response, AppError> {
    let status = app.catalog_status.snapshot();
    let images = match &app.catalog {
        Some(catalog) => {
            let store = catalog.store.clone();
            tokio::task::spawn_blocking(move || store.list(false)).await??
        }
        None => Vec::new(),
    };
    Ok(Json(serde_json::json!({ "catalog": status, "images": images })).into_response())
}
