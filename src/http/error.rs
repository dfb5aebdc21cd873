//! One error story: every failure leaves the service as
//! `{"status":"error","error_id":"...","message":"...","errors":{"field":["..."]}}`.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Per-field validation messages, collected so a client learns everything wrong at once.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct FieldErrors(BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }

    /// The same messages, with `from` called `to` (for a parameter known by another name).
    pub fn renamed(mut self, from: &str, to: &str) -> Self {
        if let Some(messages) = self.0.remove(from) {
            self.0.entry(to.to_owned()).or_default().extend(messages);
        }
        self
    }

    /// Adds every message of `other`.
    pub fn extend(&mut self, other: FieldErrors) {
        for (field, messages) in other.0 {
            self.0.entry(field).or_default().extend(messages);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    /// `Ok(())` when nothing was added, else the 422 that names every field.
    pub fn into_result(self) -> Result<(), AppError> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(AppError::Validation(self))
        }
    }

    pub fn single(field: &str, message: impl Into<String>) -> AppError {
        let mut errors = Self::new();
        errors.add(field, message);
        AppError::Validation(errors)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("the request has invalid fields")]
    Validation(FieldErrors),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    /// A conflict with the current state, with a stable error id (e.g. `ticket_canceled`).
    #[error("{message}")]
    Conflict {
        error_id: &'static str,
        message: String,
    },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// Over a rate or a count limit; `retry_after` goes to the `Retry-After` header.
    #[error("{message}")]
    TooManyRequests {
        message: String,
        retry_after: std::time::Duration,
    },
    #[error("{0}")]
    UnsupportedMediaType(String),
    #[error("the database is unavailable")]
    Unavailable(#[source] anyhow::Error),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    pub fn conflict(error_id: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            error_id,
            message: message.into(),
        }
    }

    pub fn internal(err: impl Into<anyhow::Error>) -> Self {
        Self::Internal(err.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn error_id(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::Conflict { error_id, .. } => error_id,
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::TooManyRequests { .. } => "too_many_requests",
            Self::UnsupportedMediaType(_) => "unsupported_media_type",
            Self::Unavailable(_) => "service_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }
}

/// The JSON body of every error response.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Always `error`.
    pub status: &'static str,
    /// A stable snake_case identifier of the kind of error, e.g. `validation_failed`.
    pub error_id: String,
    /// What went wrong and, for 4xx, what the client must change.
    pub message: String,
    /// For 422: the invalid fields, each with its messages.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub errors: Option<FieldErrors>,
}

/// A JSON error response for a bare status code (used for framework rejections and fallbacks).
pub fn error_response(
    status: StatusCode,
    error_id: &str,
    message: impl Into<String>,
    errors: Option<FieldErrors>,
) -> Response {
    let body = ErrorBody {
        status: "error",
        error_id: error_id.to_owned(),
        message: message.into(),
        errors,
    };
    let mut response = (status, axum::Json(body)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let status = self.status();
        match &self {
            Self::Internal(cause) => tracing::error!(error = ?cause, "internal error"),
            Self::Unavailable(cause) => tracing::warn!(error = %cause, "database unavailable"),
            _ => {}
        }
        let error_id = self.error_id();
        let retry_after = match &self {
            // Whole seconds, rounded up: a client that waits that long gets through.
            Self::TooManyRequests { retry_after, .. } => {
                Some(retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0))
            }
            _ => None,
        };
        let message = match &self {
            Self::Validation(errors) => validation_message(errors),
            other => other.to_string(),
        };
        let errors = match self {
            Self::Validation(errors) => Some(errors),
            _ => None,
        };
        let mut response = error_response(status, error_id, message, errors);
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        }
        response
    }
}

fn validation_message(errors: &FieldErrors) -> String {
    let mut parts = errors
        .0
        .iter()
        .flat_map(|(field, msgs)| msgs.iter().map(move |m| format!("{field} {m}")));
    match (parts.next(), parts.next()) {
        (Some(first), None) => format!("invalid field: {first}"),
        (Some(first), Some(_)) => format!(
            "{} invalid fields, first: {first}",
            errors.0.values().map(Vec::len).sum::<usize>()
        ),
        _ => "the request has invalid fields".to_owned(),
    }
}

/// Database errors that a client can cause map to 409 here, once; the rest are 503 when the
/// database cannot be reached and 500 otherwise.
impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        use sqlx::error::ErrorKind;
        match &err {
            sqlx::Error::Database(db) => match db.kind() {
                ErrorKind::UniqueViolation => AppError::conflict(
                    "duplicate",
                    crate::store::describe_unique_violation(db.as_ref()),
                ),
                ErrorKind::ForeignKeyViolation => AppError::conflict(
                    "referenced_object_missing",
                    "an object this request refers to does not exist (any more)",
                ),
                _ if crate::store::is_unavailable(&err) => AppError::Unavailable(err.into()),
                _ if crate::store::is_unstorable_text(&err) => AppError::BadRequest(
                    "text with a NUL character (U+0000) is not accepted; remove it".into(),
                ),
                _ => AppError::Internal(err.into()),
            },
            _ if crate::store::is_unavailable(&err) => AppError::Unavailable(err.into()),
            _ => AppError::Internal(err.into()),
        }
    }
}

impl From<anyhow::Error> for AppError {
    fn from(err: anyhow::Error) -> Self {
        match err.downcast::<sqlx::Error>() {
            Ok(sqlx_err) => sqlx_err.into(),
            Err(err) => AppError::Internal(err),
        }
    }
}
