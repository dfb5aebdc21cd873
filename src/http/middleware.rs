//! Middleware every request goes through: request ids, a tracing span named after the route,
//! metrics, and turning any error response that is not JSON into the service's error shape.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use super::error::error_response;
use crate::app::AppState;

pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The route template (`/api/v1/admin/parking-lots/{id}`), or `unmatched`.
pub fn route_of<B>(request: &axum::http::Request<B>) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned())
}

/// Counts each request by route, method and status, and records its latency.
pub async fn record_metrics(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let route = route_of(&request);
    let method = request.method().to_string();
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Any 4xx/5xx whose body is not JSON (a framework rejection, a timeout, a 405) is replaced
/// with the same JSON shape every handler error has.
pub async fn json_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let (parts, _) = response.into_parts();
    let (error_id, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint".to_owned()),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not support that HTTP method".to_owned(),
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "payload_too_large",
            format!(
                "the request body is larger than the limit of {} bytes",
                crate::app::MAX_BODY_BYTES
            ),
        ),
        StatusCode::REQUEST_TIMEOUT => (
            "request_timeout",
            "the request took too long and was abandoned".to_owned(),
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "expected a JSON body with Content-Type: application/json".to_owned(),
        ),
        other => (
            if other.is_server_error() {
                "internal_error"
            } else {
                "bad_request"
            },
            other
                .canonical_reason()
                .unwrap_or("request failed")
                .to_lowercase(),
        ),
    };
    let mut replaced = error_response(status, error_id, message, None);
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            replaced.headers_mut().insert(name.clone(), value.clone());
        }
    }
    replaced
}

fn is_json(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}
