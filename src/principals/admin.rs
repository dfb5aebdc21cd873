//! `/api/v1/admin/providers`: the operator registers mobile-payment providers and manages their
//! tokens. The helpers here serve every principal kind the operator creates.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Role;
use super::store::{self, Principal, TokenInfo};
use crate::app::AppState;
use crate::http::error::ErrorBody;
use crate::http::extract::path_id;
use crate::http::{AppError, FieldErrors, Json};

const MAX_NAME_CHARS: usize = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_provider, list_providers))
        .routes(routes!(get_provider))
        .routes(routes!(issue_provider_token, list_provider_tokens))
        .routes(routes!(revoke_provider_token))
}

/// A new principal: a name, and the lots it may act at (every lot when absent).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalInput {
    #[schema(example = "easypark", required = true, value_type = String)]
    pub name: Option<String>,
    /// The lots it may act at; every lot when absent or null.
    #[schema(example = json!([12]))]
    pub parking_lot_ids: Option<Vec<i64>>,
}

/// A principal as the admin API shows it (never with a token).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalView {
    pub id: i64,
    pub name: String,
    /// The lots it may act at; null when it may act at every lot.
    pub parking_lot_ids: Option<Vec<i64>>,
}

/// A principal just created, with its first token, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrincipalCreated {
    pub id: i64,
    pub name: String,
    pub parking_lot_ids: Option<Vec<i64>>,
    /// The bearer token; it is not stored and cannot be shown again.
    pub token: String,
}

/// A token just issued, shown this once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TokenIssued {
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The bearer token; it is not stored and cannot be shown again.
    pub token: String,
}

/// A principal's or an object's name: required, trimmed, not blank, at most 100 characters.
pub fn check_name(name: Option<String>, errors: &mut FieldErrors) -> String {
    match name.as_deref().map(str::trim) {
        None => errors.add("name", "is required"),
        Some("") => errors.add("name", "must not be blank"),
        Some(n) if n.chars().count() > MAX_NAME_CHARS => errors.add(
            "name",
            format!("must be at most {MAX_NAME_CHARS} characters"),
        ),
        Some(n) => return n.to_owned(),
    }
    String::new()
}

/// Creates a principal of `role` with its first token.
pub async fn create_principal(
    state: &AppState,
    who: &Principal,
    role: Role,
    input: PrincipalInput,
) -> Result<(StatusCode, Json<PrincipalCreated>), AppError> {
    who.require(&[Role::Operator])?;
    let mut errors = FieldErrors::new();
    let name = check_name(input.name, &mut errors);
    if input
        .parking_lot_ids
        .as_ref()
        .is_some_and(|ids| ids.len() > 1000)
    {
        errors.add("parkingLotIds", "must list at most 1000 lots");
    }
    errors.into_result()?;
    let (principal, lots, token) =
        store::create(&state.store, role, &name, input.parking_lot_ids.as_deref()).await?;
    Ok((
        StatusCode::CREATED,
        Json(PrincipalCreated {
            id: principal.id,
            name: principal.name,
            parking_lot_ids: (!principal.all_lots).then_some(lots),
            token: token.secret,
        }),
    ))
}

pub async fn view(state: &AppState, principal: Principal) -> Result<PrincipalView, AppError> {
    let parking_lot_ids = if principal.all_lots {
        None
    } else {
        Some(store::lot_ids(&state.store, principal.id).await?)
    };
    Ok(PrincipalView {
        id: principal.id,
        name: principal.name,
        parking_lot_ids,
    })
}

pub async fn list_principals(
    state: &AppState,
    who: &Principal,
    role: Role,
) -> Result<Json<Vec<PrincipalView>>, AppError> {
    who.require(&[Role::Operator])?;
    let mut views = Vec::new();
    for principal in store::list(&state.store, role).await? {
        views.push(view(state, principal).await?);
    }
    Ok(Json(views))
}

/// The principal of `role` with the id in the path, or 404.
pub async fn find_principal(
    state: &AppState,
    who: &Principal,
    role: Role,
    raw_id: &str,
) -> Result<Principal, AppError> {
    who.require(&[Role::Operator])?;
    let not_found = || AppError::NotFound(format!("no {role} with id '{raw_id}'"));
    let id = path_id(raw_id, role.as_str()).map_err(|_| not_found())?;
    store::get(&state.store, role, id)
        .await?
        .ok_or_else(not_found)
}

pub async fn issue_token(
    state: &AppState,
    who: &Principal,
    role: Role,
    raw_id: &str,
) -> Result<(StatusCode, Json<TokenIssued>), AppError> {
    let principal = find_principal(state, who, role, raw_id).await?;
    let (info, token) = store::issue_token(&state.store, principal.id).await?;
    Ok((StatusCode::CREATED, Json(TokenIssued { info, token })))
}

pub async fn list_tokens(
    state: &AppState,
    who: &Principal,
    role: Role,
    raw_id: &str,
) -> Result<Json<Vec<TokenInfo>>, AppError> {
    let principal = find_principal(state, who, role, raw_id).await?;
    Ok(Json(
        store::list_tokens(&state.store, Some(principal.id)).await?,
    ))
}

pub async fn revoke_token(
    state: &AppState,
    who: &Principal,
    role: Role,
    raw_id: &str,
    raw_token_id: &str,
) -> Result<StatusCode, AppError> {
    let principal = find_principal(state, who, role, raw_id).await?;
    let not_found = || {
        AppError::NotFound(format!(
            "{role} {raw_id} has no token with id '{raw_token_id}'"
        ))
    };
    let token_id = path_id(raw_token_id, "token").map_err(|_| not_found())?;
    if store::revoke_token(&state.store, Some(principal.id), token_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

/// Register a mobile-payment provider; answers with its first token, shown once.
#[utoipa::path(post, path = "/api/v1/admin/providers", tag = "admin",
    request_body = PrincipalInput,
    responses(
        (status = 201, description = "created", body = PrincipalCreated),
        (status = 409, description = "a provider with this name exists", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn create_provider(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<PrincipalInput>,
) -> Result<(StatusCode, Json<PrincipalCreated>), AppError> {
    create_principal(&state, &who, Role::Provider, input).await
}

/// List providers (never with tokens).
#[utoipa::path(get, path = "/api/v1/admin/providers", tag = "admin",
    responses((status = 200, description = "the providers", body = Vec<PrincipalView>)),
    security(("bearer" = ["operator"])))]
async fn list_providers(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<PrincipalView>>, AppError> {
    list_principals(&state, &who, Role::Provider).await
}

/// Get one provider.
#[utoipa::path(get, path = "/api/v1/admin/providers/{id}", tag = "admin",
    params(("id" = i64, Path, description = "the provider's id")),
    responses(
        (status = 200, description = "the provider", body = PrincipalView),
        (status = 404, description = "no such provider", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn get_provider(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<PrincipalView>, AppError> {
    let principal = find_principal(&state, &who, Role::Provider, &id).await?;
    Ok(Json(view(&state, principal).await?))
}

/// Issue another token for a provider (for rotation); shown once.
#[utoipa::path(post, path = "/api/v1/admin/providers/{id}/tokens", tag = "admin",
    params(("id" = i64, Path, description = "the provider's id")),
    responses(
        (status = 201, description = "the new token", body = TokenIssued),
        (status = 404, description = "no such provider", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn issue_provider_token(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TokenIssued>), AppError> {
    issue_token(&state, &who, Role::Provider, &id).await
}

/// List a provider's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/admin/providers/{id}/tokens", tag = "admin",
    params(("id" = i64, Path, description = "the provider's id")),
    responses(
        (status = 200, description = "the tokens", body = Vec<TokenInfo>),
        (status = 404, description = "no such provider", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn list_provider_tokens(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<TokenInfo>>, AppError> {
    list_tokens(&state, &who, Role::Provider, &id).await
}

/// Revoke one of a provider's tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/admin/providers/{id}/tokens/{tokenId}", tag = "admin",
    params(
        ("id" = i64, Path, description = "the provider's id"),
        ("tokenId" = i64, Path, description = "the token's id"),
    ),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "no such provider or token", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn revoke_provider_token(
    State(state): State<AppState>,
    who: Principal,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    revoke_token(&state, &who, Role::Provider, &id, &token_id).await
}
