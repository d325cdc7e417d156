//! Creating an account, signing in and out.

use axum::Extension;
use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::SignedCookieJar;
use serde::Deserialize;

use super::identity::{Identity, cookie_for};
use super::templates::AccountPage;
use super::{AppError, AppState};
use crate::store::{AccountError, LearnerId};

#[derive(Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

async fn page(app: &AppState, me: &Identity, error: Option<String>) -> Result<AccountPage, AppError> {
    let learner = app.learner(me).await?;
    let done = learner.lessons.values().filter(|s| s.completed_at.is_some()).count();
    Ok(AccountPage {
        frame: app.frame(&learner),
        error,
        done,
    })
}

pub async fn show(State(app): State<AppState>, Extension(me): Extension<Identity>) -> Result<AccountPage, AppError> {
    page(&app, &me, None).await
}

/// Shows the form again with the error, or fails the request if the error is ours.
async fn refused(app: &AppState, me: &Identity, e: AccountError) -> Result<Response, AppError> {
    let status = match &e {
        AccountError::Internal(_) => return Err(AppError(anyhow::anyhow!(e))),
        AccountError::TooManyAttempts => StatusCode::TOO_MANY_REQUESTS,
        AccountError::BadCredentials => StatusCode::UNAUTHORIZED,
        AccountError::UsernameTaken(_) | AccountError::AlreadyHasAccount => StatusCode::CONFLICT,
        AccountError::InvalidUsername | AccountError::WeakPassword => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Ok((status, page(app, me, Some(e.to_string())).await?).into_response())
}

pub async fn signup(
    State(app): State<AppState>,
    Extension(me): Extension<Identity>,
    Form(form): Form<Credentials>,
) -> Result<Response, AppError> {
    match app.store.create_account(&me.id, &form.username, &form.password).await {
        Ok(()) => {
            tracing::info!(username = %form.username.trim(), "account created");
            Ok(Redirect::to("/account").into_response())
        }
        Err(e) => refused(&app, &me, e).await,
    }
}

pub async fn login(
    State(app): State<AppState>,
    Extension(me): Extension<Identity>,
    jar: SignedCookieJar,
    Form(form): Form<Credentials>,
) -> Result<Response, AppError> {
    match app.store.login(&me.id, &form.username, &form.password).await {
        Ok(account) => Ok((jar.add(cookie_for(&account)), Redirect::to("/")).into_response()),
        Err(e) => refused(&app, &me, e).await,
    }
}

/// Signing out starts a fresh anonymous learner in this browser.
pub async fn logout(jar: SignedCookieJar) -> impl IntoResponse {
    (jar.add(cookie_for(&LearnerId::random())), Redirect::to("/"))
}
