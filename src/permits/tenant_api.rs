//! The tenant side, exactly as the permit seed describes it: `/permit/v3/...`, snake_case.
//! A tenant sees and changes only its own allocations and permits; anything else, like an id
//! that does not exist, is the same 404.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, PermitFilter, PermitRequest};
use super::views::{PermitView, TenantAllocationView};
use crate::app::AppState;
use crate::domain::Email;
use crate::http::error::ErrorBody;
use crate::http::{AppError, FieldErrors, Json, Principal, QueryMap};
use crate::principals::Role;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(tenant_permit_allocations))
        .routes(routes!(tenant_issued_permits))
        .routes(routes!(create_permit))
        .routes(routes!(get_permit, update_permit, delete_permit))
}

fn permit_not_found(id: &str) -> AppError {
    AppError::NotFound(format!("no permit with id '{id}'"))
}

fn allocation_not_found(id: &str) -> AppError {
    AppError::NotFound(format!("no permit allocation with id '{id}'"))
}

/// The caller's permit allocations.
#[utoipa::path(get, path = "/permit/v3/tenant_permit_allocations", tag = "permits",
    responses(
        (status = 200, description = "the tenant's allocations", body = Vec<TenantAllocationView>),
        (status = 401, description = "missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "not a tenant", body = ErrorBody),
    ),
    security(("bearer" = ["tenant"])))]
async fn tenant_permit_allocations(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<TenantAllocationView>>, AppError> {
    who.require(&[Role::Tenant])?;
    let allocations = store::list_allocations(&state.store, Some(who.id)).await?;
    Ok(Json(
        allocations
            .into_iter()
            .map(TenantAllocationView::from)
            .collect(),
    ))
}

/// The caller's permits, optionally of one allocation.
#[utoipa::path(get, path = "/permit/v3/tenant_issued_permits", tag = "permits",
    params(("permit_allocation_id" = Option<String>, Query, description = "only this allocation's permits")),
    responses(
        (status = 200, description = "the tenant's permits", body = Vec<PermitView>),
        (status = 403, description = "not a tenant", body = ErrorBody),
        (status = 404, description = "no such allocation of this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["tenant"])))]
async fn tenant_issued_permits(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<Vec<PermitView>>, AppError> {
    who.require(&[Role::Tenant])?;
    let allocation = query.get("permit_allocation_id");
    if let Some(id) = allocation
        && store::get_allocation(&state.store, id, Some(who.id))
            .await?
            .is_none()
    {
        return Err(allocation_not_found(id));
    }
    let filter = PermitFilter {
        tenant_id: Some(who.id),
        allocation_id: allocation,
        email: None,
    };
    let permits = store::list_permits(&state.store, &filter).await?;
    Ok(Json(permits.into_iter().map(PermitView::from).collect()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PermitInput {
    #[schema(example = "client@autopay.io", required = true, value_type = String)]
    pub email: Option<String>,
    #[schema(required = true, value_type = String, min_length = 1)]
    pub permit_allocation_id: Option<String>,
    /// `YYYY-MM-DD` or a date-time; default today (or the allocation's start, if later).
    #[schema(example = "2025-06-01")]
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD` or a date-time; default the allocation's end.
    #[schema(example = "2025-12-31")]
    pub valid_to: Option<String>,
}

/// Give a permit to an end user from one of the caller's allocations.
#[utoipa::path(post, path = "/permit/v3/end_user_permit", tag = "permits",
    request_body = PermitInput,
    responses(
        (status = 201, description = "the permit", body = PermitView),
        (status = 403, description = "not a tenant", body = ErrorBody),
        (status = 404, description = "no such allocation of this tenant", body = ErrorBody),
        (status = 409, description = "quota exceeded, or the e-mail already holds a permit of it then", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["tenant"])))]
async fn create_permit(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<PermitInput>,
) -> Result<(StatusCode, Json<PermitView>), AppError> {
    who.require(&[Role::Tenant])?;
    let mut errors = FieldErrors::new();
    let email = match input.email.as_deref() {
        None => {
            errors.add("email", "is required");
            None
        }
        Some(text) => Email::parse(text).map_err(|m| errors.add("email", m)).ok(),
    };
    let allocation_id = match input.permit_allocation_id.as_deref().map(str::trim) {
        None | Some("") => {
            errors.add("permit_allocation_id", "is required");
            None
        }
        Some(id) => Some(id.to_owned()),
    };
    errors.into_result()?;
    let (Some(email), Some(allocation_id)) = (email, allocation_id) else {
        return Err(AppError::internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    let request = PermitRequest {
        email,
        valid_from: input.valid_from,
        valid_to: input.valid_to,
    };
    let permit = store::create_permit(&state.store, who.id, &allocation_id, &request)
        .await?
        .ok_or_else(|| allocation_not_found(&allocation_id))?;
    Ok((StatusCode::CREATED, Json(permit.into())))
}

/// One of the caller's permits.
#[utoipa::path(get, path = "/permit/v3/end_user_permit/{permit_id}", tag = "permits",
    params(("permit_id" = String, Path, description = "the permit's id")),
    responses(
        (status = 200, description = "the permit", body = PermitView),
        (status = 403, description = "not a tenant", body = ErrorBody),
        (status = 404, description = "no such permit of this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["tenant"])))]
async fn get_permit(
    State(state): State<AppState>,
    who: Principal,
    Path(permit_id): Path<String>,
) -> Result<Json<PermitView>, AppError> {
    who.require(&[Role::Tenant])?;
    let permit = store::get_permit(&state.store, who.id, &permit_id)
        .await?
        .ok_or_else(|| permit_not_found(&permit_id))?;
    Ok(Json(permit.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct PermitUpdate {
    /// `YYYY-MM-DD`: the same date as before, today or a future date; unchanged when absent.
    pub valid_from: Option<String>,
    /// `YYYY-MM-DD`; unchanged when absent.
    pub valid_to: Option<String>,
}

/// Change the validity of one of the caller's permits.
#[utoipa::path(put, path = "/permit/v3/end_user_permit/{permit_id}", tag = "permits",
    params(("permit_id" = String, Path, description = "the permit's id")),
    request_body = PermitUpdate,
    responses(
        (status = 200, description = "the permit", body = PermitView),
        (status = 403, description = "not a tenant", body = ErrorBody),
        (status = 404, description = "no such permit of this tenant", body = ErrorBody),
        (status = 409, description = "quota exceeded, or overlapping another permit of the e-mail", body = ErrorBody),
        (status = 422, description = "invalid dates", body = ErrorBody),
    ),
    security(("bearer" = ["tenant"])))]
async fn update_permit(
    State(state): State<AppState>,
    who: Principal,
    Path(permit_id): Path<String>,
    Json(input): Json<PermitUpdate>,
) -> Result<Json<PermitView>, AppError> {
    who.require(&[Role::Tenant])?;
    let permit = store::update_permit(
        &state.store,
        who.id,
        &permit_id,
        input.valid_from.as_deref(),
        input.valid_to.as_deref(),
    )
    .await?
    .ok_or_else(|| permit_not_found(&permit_id))?;
    Ok(Json(permit.into()))
}

/// Withdraw one of the caller's permits; it stops counting at once.
#[utoipa::path(delete, path = "/permit/v3/end_user_permit/{permit_id}", tag = "permits",
    params(("permit_id" = String, Path, description = "the permit's id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 403, description = "not a tenant", body = ErrorBody),
        (status = 404, description = "no such permit of this tenant", body = ErrorBody),
    ),
    security(("bearer" = ["tenant"])))]
async fn delete_permit(
    State(state): State<AppState>,
    who: Principal,
    Path(permit_id): Path<String>,
) -> Result<StatusCode, AppError> {
    who.require(&[Role::Tenant])?;
    if store::delete_permit(&state.store, who.id, &permit_id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(permit_not_found(&permit_id))
    }
}
