//! Operations: liveness, readiness, metrics and the OpenAPI document.

pub mod metrics;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::AppError;

#[derive(Serialize, utoipa::ToSchema)]
pub struct StatusBody {
    /// `ok` (alive) or `ready` (database reachable).
    pub status: &'static str,
}

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
}

/// The process is alive.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "alive", body = StatusBody)))]
async fn healthz() -> axum::Json<StatusBody> {
    axum::Json(StatusBody { status: "ok" })
}

/// The database is reachable.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "ready", body = StatusBody),
        (status = 503, description = "the database is unreachable", body = crate::http::error::ErrorBody),
    ))]
async fn readyz(State(state): State<AppState>) -> Result<axum::Json<StatusBody>, AppError> {
    state
        .store
        .ping()
        .await
        .map_err(|e| AppError::Unavailable(e.into()))?;
    Ok(axum::Json(StatusBody { status: "ready" }))
}

/// Prometheus metrics: requests by route, method and status, and their latency.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text exposition", content_type = "text/plain", body = String)))]
async fn metrics_text(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok(text) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(err) => AppError::internal(err).into_response(),
    }
}
