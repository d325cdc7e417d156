//! Engine API errors, shaped as Docker's: a status code and `{"message": "..."}`.
//!
//! Clients act on the status: the CLI pulls an image when `create` answers 404, walks
//! `docker inspect` through containers, images, networks and volumes on 404, and prints
//! the message after `Error response from daemon: `.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// `No such container: x`, `No such image: x`, `network x not found`, ...: the whole
    /// message, since Docker's wording differs per kind of object.
    #[error("{0}")]
    NotFound(String),
    /// A name already taken, an object in use.
    #[error("{0}")]
    Conflict(String),
    /// A parameter or body the engine cannot take.
    #[error("{0}")]
    BadRequest(String),
    /// The container is already in the state asked for (`docker start` of a running one).
    #[error("")]
    NotModified,
    /// A limit of the playground was hit: the message names it.
    #[error("{0}")]
    Limit(String),
    /// Something the engine does not offer in a lab (privileged containers, devices).
    #[error("{0}")]
    Forbidden(String),
    #[error("{0:#}")]
    Internal(#[from] anyhow::Error),
}

pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    pub fn no_such_container(name: &str) -> ApiError {
        ApiError::NotFound(format!("No such container: {name}"))
    }
    pub fn no_such_image(name: &str) -> ApiError {
        ApiError::NotFound(format!("No such image: {name}"))
    }
    pub fn no_such_volume(name: &str) -> ApiError {
        ApiError::NotFound(format!("get {name}: no such volume"))
    }
    pub fn no_such_network(name: &str) -> ApiError {
        ApiError::NotFound(format!("network {name} not found"))
    }
    pub fn no_such_exec(id: &str) -> ApiError {
        ApiError::NotFound(format!("No such exec instance: {id}"))
    }
    pub fn bad(message: impl Into<String>) -> ApiError {
        ApiError::BadRequest(message.into())
    }
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(anyhow::anyhow!("{e}"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotModified => StatusCode::NOT_MODIFIED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            // Docker answers resource exhaustion with a 500 and a message naming it.
            ApiError::Limit(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<slipway_runtime::image::store::ImageError> for ApiError {
    fn from(e: slipway_runtime::image::store::ImageError) -> Self {
        use slipway_runtime::image::store::ImageError as E;
        match &e {
            E::NotFound(name) => ApiError::no_such_image(name),
            _ => ApiError::internal(e),
        }
    }
}

impl From<slipway_runtime::error::RuntimeError> for ApiError {
    fn from(e: slipway_runtime::error::RuntimeError) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status == StatusCode::NOT_MODIFIED {
            return status.into_response();
        }
        if status.is_server_error() {
            tracing::warn!(error = %self, "engine request failed");
        }
        (status, Json(serde_json::json!({ "message": self.to_string() }))).into_response()
    }
}
