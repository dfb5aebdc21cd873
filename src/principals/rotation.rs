//! `POST /api/v1/tokens/rotate`: any caller replaces the token it calls with, keeping the old
//! one working for an overlap period so it can roll the new one out without downtime.

use std::time::Duration;

use axum::Extension;
use axum::extract::State;
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, TokenInfo};
use crate::app::AppState;
use crate::http::auth::TokenId;
use crate::http::error::ErrorBody;
use crate::http::{AppError, FieldErrors, Json, Principal};

/// The overlap when none is asked for.
pub const DEFAULT_OVERLAP_SECONDS: i64 = 3600;
/// The longest overlap: 30 days.
pub const MAX_OVERLAP_SECONDS: i64 = 30 * 24 * 3600;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(rotate))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateInput {
    /// How long the old token keeps working, 0 to 2592000 seconds (default 3600).
    #[schema(example = 3600, minimum = 0, maximum = 2592000)]
    pub overlap_seconds: Option<i64>,
}

/// The new token, shown this once, and when the old one stops working.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenRotated {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token; it is not stored and cannot be shown again.
    pub token: String,
    pub previous_token_id: i64,
    /// When the token this request was made with stops working; RFC 3339, UTC.
    #[schema(value_type = String)]
    pub previous_token_expires_at: Timestamp,
}

/// The overlap asked for, checked.
pub fn overlap(input: &RotateInput) -> Result<Duration, AppError> {
    let seconds = input.overlap_seconds.unwrap_or(DEFAULT_OVERLAP_SECONDS);
    if !(0..=MAX_OVERLAP_SECONDS).contains(&seconds) {
        return Err(FieldErrors::single(
            "overlapSeconds",
            format!("must be from 0 to {MAX_OVERLAP_SECONDS} seconds"),
        ));
    }
    Ok(Duration::from_secs(seconds.unsigned_abs()))
}

/// Rotate the token this request is made with: a new token for the same principal, and the
/// old one retired after the overlap (default one hour). Any role.
#[utoipa::path(post, path = "/api/v1/tokens/rotate", tag = "admin",
    request_body = RotateInput,
    responses(
        (status = 201, description = "the new token, shown once", body = TokenRotated),
        (status = 401, description = "missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 422, description = "invalid overlap", body = ErrorBody),
    ),
    security(("bearer" = [])))]
async fn rotate(
    State(state): State<AppState>,
    _who: Principal,
    Extension(TokenId(token_id)): Extension<TokenId>,
    Json(input): Json<RotateInput>,
) -> Result<(StatusCode, Json<TokenRotated>), AppError> {
    let overlap = overlap(&input)?;
    let (info, token, expires) = store::rotate_token(&state.store, token_id, overlap)
        .await?
        // Revoked between authentication and now.
        .ok_or_else(|| AppError::Unauthorized("the token is unknown or revoked".into()))?;
    Ok((
        StatusCode::CREATED,
        Json(TokenRotated {
            info,
            token,
            previous_token_id: token_id,
            previous_token_expires_at: expires,
        }),
    ))
}
