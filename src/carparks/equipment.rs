//! `/api/v1/admin/equipment`: barrier and camera equipment, each allowed to report for its own
//! car parks.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::app::AppState;
use crate::http::error::ErrorBody;
use crate::http::{AppError, Json, Principal};
use crate::principals::Role;
use crate::principals::admin::{
    self, PrincipalCreated, PrincipalInput, PrincipalView, TokenIssued,
};
use crate::principals::store::TokenInfo;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_equipment, list_equipment))
        .routes(routes!(get_equipment))
        .routes(routes!(issue_equipment_token, list_equipment_tokens))
        .routes(routes!(revoke_equipment_token))
}

/// Register equipment for some car parks (every lot when `parkingLotIds` is absent); answers
/// with its first token, shown once.
#[utoipa::path(post, path = "/api/v1/admin/equipment", tag = "carparks",
    request_body = PrincipalInput,
    responses(
        (status = 201, description = "created", body = PrincipalCreated),
        (status = 409, description = "equipment with this name exists", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn create_equipment(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<PrincipalInput>,
) -> Result<(StatusCode, Json<PrincipalCreated>), AppError> {
    admin::create_principal(&state, &who, Role::Equipment, input).await
}

/// List equipment.
#[utoipa::path(get, path = "/api/v1/admin/equipment", tag = "carparks",
    responses((status = 200, description = "the equipment", body = Vec<PrincipalView>)),
    security(("bearer" = ["operator"])))]
async fn list_equipment(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<PrincipalView>>, AppError> {
    admin::list_principals(&state, &who, Role::Equipment).await
}

/// Get one piece of equipment.
#[utoipa::path(get, path = "/api/v1/admin/equipment/{id}", tag = "carparks",
    params(("id" = i64, Path, description = "the equipment's id")),
    responses(
        (status = 200, description = "the equipment", body = PrincipalView),
        (status = 404, description = "no such equipment", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn get_equipment(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<PrincipalView>, AppError> {
    let principal = admin::find_principal(&state, &who, Role::Equipment, &id).await?;
    Ok(Json(admin::view(&state, principal).await?))
}

/// Issue another token for equipment; shown once.
#[utoipa::path(post, path = "/api/v1/admin/equipment/{id}/tokens", tag = "carparks",
    params(("id" = i64, Path, description = "the equipment's id")),
    responses(
        (status = 201, description = "the new token", body = TokenIssued),
        (status = 404, description = "no such equipment", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn issue_equipment_token(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TokenIssued>), AppError> {
    admin::issue_token(&state, &who, Role::Equipment, &id).await
}

/// List equipment tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/admin/equipment/{id}/tokens", tag = "carparks",
    params(("id" = i64, Path, description = "the equipment's id")),
    responses(
        (status = 200, description = "the tokens", body = Vec<TokenInfo>),
        (status = 404, description = "no such equipment", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn list_equipment_tokens(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<TokenInfo>>, AppError> {
    admin::list_tokens(&state, &who, Role::Equipment, &id).await
}

/// Revoke an equipment token; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/admin/equipment/{id}/tokens/{tokenId}", tag = "carparks",
    params(
        ("id" = i64, Path, description = "the equipment's id"),
        ("tokenId" = i64, Path, description = "the token's id"),
    ),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "no such equipment or token", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn revoke_equipment_token(
    State(state): State<AppState>,
    who: Principal,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    admin::revoke_token(&state, &who, Role::Equipment, &id, &token_id).await
}
