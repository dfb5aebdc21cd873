//! Operations: liveness, readiness, metrics and the OpenAPI document.

pub mod metrics;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;

const READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);
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
    // A readiness probe must answer quickly even when the database hangs.
    match tokio::time::timeout(READY_TIMEOUT, state.store.ping()).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => return Err(AppError::Unavailable(err.into())),
        Err(_) => {
            return Err(AppError::Unavailable(anyhow::anyhow!(
                "no answer from the database within {READY_TIMEOUT:?}"
            )));
        }
    }
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
