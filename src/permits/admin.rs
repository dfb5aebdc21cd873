//! The operator's side of permits, under `/api/v1/admin`: tenants, permit definitions and
//! permit allocations.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::rules::Days;
use super::schedule::{Schedule, WindowSpec};
use super::store::{self, Allocation, AllocationChange, Definition, NewAllocation};
use crate::app::AppState;
use crate::domain::TimeZoneName;
use crate::http::error::ErrorBody;
use crate::http::extract::path_id;
use crate::http::{AppError, FieldErrors, Json, Principal, QueryMap};
use crate::principals::admin::{self as principal_admin, TokenIssued};
use crate::principals::store::TokenInfo;
use crate::principals::{Role, store as principals};

const MAX_COUNT: i64 = 1_000_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_tenant, list_tenants))
        .routes(routes!(get_tenant))
        .routes(routes!(issue_tenant_token, list_tenant_tokens))
        .routes(routes!(revoke_tenant_token))
        .routes(routes!(create_definition, list_definitions))
        .routes(routes!(get_definition))
        .routes(routes!(create_allocation, list_allocations))
        .routes(routes!(get_allocation, update_allocation))
}

// --- tenants ---------------------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TenantInput {
    #[schema(example = "Acme AB", required = true, value_type = String)]
    pub name: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantView {
    pub id: i64,
    pub name: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantCreated {
    pub id: i64,
    pub name: String,
    /// The tenant's bearer token; not stored and never shown again.
    pub token: String,
}

/// Create a tenant; answers with its first token, shown once.
#[utoipa::path(post, path = "/api/v1/admin/tenants", tag = "permits-admin",
    request_body = TenantInput,
    responses(
        (status = 201, description = "created", body = TenantCreated),
        (status = 409, description = "a tenant with this name exists", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn create_tenant(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<TenantInput>,
) -> Result<(StatusCode, Json<TenantCreated>), AppError> {
    who.require(&[Role::Operator])?;
    let mut errors = FieldErrors::new();
    let name = principal_admin::check_name(input.name, &mut errors);
    errors.into_result()?;
    let (tenant, _, token) = principals::create(&state.store, Role::Tenant, &name, None).await?;
    Ok((
        StatusCode::CREATED,
        Json(TenantCreated {
            id: tenant.id,
            name: tenant.name,
            token: token.secret,
        }),
    ))
}

/// List tenants (never with tokens).
#[utoipa::path(get, path = "/api/v1/admin/tenants", tag = "permits-admin",
    responses((status = 200, description = "the tenants", body = Vec<TenantView>)),
    security(("bearer" = ["operator"])))]
async fn list_tenants(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<TenantView>>, AppError> {
    who.require(&[Role::Operator])?;
    let tenants = principals::list(&state.store, Role::Tenant).await?;
    Ok(Json(
        tenants
            .into_iter()
            .map(|t| TenantView {
                id: t.id,
                name: t.name,
            })
            .collect(),
    ))
}

/// Get one tenant.
#[utoipa::path(get, path = "/api/v1/admin/tenants/{id}", tag = "permits-admin",
    params(("id" = i64, Path, description = "the tenant's id")),
    responses(
        (status = 200, description = "the tenant", body = TenantView),
        (status = 404, description = "no such tenant", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn get_tenant(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<TenantView>, AppError> {
    let tenant = principal_admin::find_principal(&state, &who, Role::Tenant, &id).await?;
    Ok(Json(TenantView {
        id: tenant.id,
        name: tenant.name,
    }))
}

/// Issue another token for a tenant; shown once.
#[utoipa::path(post, path = "/api/v1/admin/tenants/{id}/tokens", tag = "permits-admin",
    params(("id" = i64, Path, description = "the tenant's id")),
    responses(
        (status = 201, description = "the new token", body = TokenIssued),
        (status = 404, description = "no such tenant", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn issue_tenant_token(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<TokenIssued>), AppError> {
    principal_admin::issue_token(&state, &who, Role::Tenant, &id).await
}

/// List a tenant's tokens (never their secrets).
#[utoipa::path(get, path = "/api/v1/admin/tenants/{id}/tokens", tag = "permits-admin",
    params(("id" = i64, Path, description = "the tenant's id")),
    responses(
        (status = 200, description = "the tokens", body = Vec<TokenInfo>),
        (status = 404, description = "no such tenant", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn list_tenant_tokens(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<TokenInfo>>, AppError> {
    principal_admin::list_tokens(&state, &who, Role::Tenant, &id).await
}

/// Revoke one of a tenant's tokens; it stops working at once.
#[utoipa::path(delete, path = "/api/v1/admin/tenants/{id}/tokens/{tokenId}", tag = "permits-admin",
    params(
        ("id" = i64, Path, description = "the tenant's id"),
        ("tokenId" = i64, Path, description = "the token's id"),
    ),
    responses(
        (status = 204, description = "revoked"),
        (status = 404, description = "no such tenant or token", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn revoke_tenant_token(
    State(state): State<AppState>,
    who: Principal,
    Path((id, token_id)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    principal_admin::revoke_token(&state, &who, Role::Tenant, &id, &token_id).await
}

// --- permit definitions ----------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinitionInput {
    #[schema(example = "Free parking from 5 to 9")]
    pub name: Option<String>,
    #[schema(example = json!([12, 14]))]
    pub parking_lot_ids: Option<Vec<i64>>,
    /// IANA name; defaults to the time zone of the first lot.
    #[schema(example = "Europe/Stockholm")]
    pub time_zone: Option<String>,
    /// Weekly windows; absent or empty means all day, every day.
    pub schedule: Option<Vec<WindowSpec>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefinitionView {
    pub id: i64,
    pub name: String,
    pub parking_lot_ids: Vec<i64>,
    pub time_zone: String,
    /// Empty: all day, every day.
    pub schedule: Vec<WindowSpec>,
}

impl From<Definition> for DefinitionView {
    fn from(d: Definition) -> Self {
        Self {
            id: d.id,
            name: d.name,
            parking_lot_ids: d.lots,
            time_zone: d.time_zone.name().to_owned(),
            schedule: d.schedule.to_specs(),
        }
    }
}

/// Create a permit definition: which lots, at which times.
#[utoipa::path(post, path = "/api/v1/admin/permit-definitions", tag = "permits-admin",
    request_body = DefinitionInput,
    responses(
        (status = 201, description = "created", body = DefinitionView),
        (status = 422, description = "invalid fields, unknown lots, bad days or times", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn create_definition(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<DefinitionInput>,
) -> Result<(StatusCode, Json<DefinitionView>), AppError> {
    who.require(&[Role::Operator])?;
    let mut errors = FieldErrors::new();
    let name = principal_admin::check_name(input.name, &mut errors);
    let mut lots = input.parking_lot_ids.unwrap_or_default();
    lots.dedup();
    if lots.is_empty() {
        errors.add("parkingLotIds", "must name at least one parking lot");
    } else if lots.len() > 1000 {
        errors.add("parkingLotIds", "must name at most 1000 parking lots");
    }
    let schedule = Schedule::parse(input.schedule.as_deref().unwrap_or_default())
        .map_err(|e| errors.extend(e))
        .ok();
    let explicit_zone = input.time_zone.as_deref().map(|tz| {
        TimeZoneName::parse(tz)
            .map_err(|m| errors.add("timeZone", m))
            .ok()
    });
    errors.into_result()?;
    let Some(schedule) = schedule else {
        return Err(AppError::internal(anyhow::anyhow!(
            "validated schedule missing"
        )));
    };
    let zone = match explicit_zone.flatten() {
        Some(zone) => zone,
        None => crate::lots::store::get(&state.store, lots[0])
            .await?
            .map(|lot| lot.time_zone)
            .ok_or_else(|| {
                FieldErrors::single(
                    "parkingLotIds",
                    format!("has unknown parking lot ids: {}", lots[0]),
                )
            })?,
    };
    let id = store::insert_definition(&state.store, &name, &zone, &schedule, &lots).await?;
    let definition = store::get_definition(&state.store, id)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("definition {id} vanished")))?;
    Ok((StatusCode::CREATED, Json(definition.into())))
}

/// List permit definitions.
#[utoipa::path(get, path = "/api/v1/admin/permit-definitions", tag = "permits-admin",
    responses((status = 200, description = "the definitions", body = Vec<DefinitionView>)),
    security(("bearer" = ["operator"])))]
async fn list_definitions(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<DefinitionView>>, AppError> {
    who.require(&[Role::Operator])?;
    let definitions = store::list_definitions(&state.store).await?;
    Ok(Json(
        definitions.into_iter().map(DefinitionView::from).collect(),
    ))
}

/// Get one permit definition.
#[utoipa::path(get, path = "/api/v1/admin/permit-definitions/{id}", tag = "permits-admin",
    params(("id" = i64, Path, description = "the definition's id")),
    responses(
        (status = 200, description = "the definition", body = DefinitionView),
        (status = 404, description = "no such definition", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn get_definition(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<DefinitionView>, AppError> {
    who.require(&[Role::Operator])?;
    let not_found = || AppError::NotFound(format!("no permit definition with id '{id}'"));
    let numeric = path_id(&id, "permit definition").map_err(|_| not_found())?;
    let definition = store::get_definition(&state.store, numeric)
        .await?
        .ok_or_else(not_found)?;
    Ok(Json(definition.into()))
}

// --- permit allocations ----------------------------------------------------------------------

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationInput {
    pub tenant_id: Option<i64>,
    pub permit_definition_id: Option<i64>,
    #[schema(example = 50)]
    pub parking_spaces_count: Option<i64>,
    #[schema(example = 25)]
    pub permit_count: Option<i64>,
    /// `YYYY-MM-DD`, a local date in the definition's time zone.
    #[schema(example = "2018-06-19")]
    pub valid_from: Option<String>,
    #[schema(example = "2028-01-13")]
    pub valid_to: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationView {
    pub id: String,
    pub tenant_id: i64,
    pub permit_definition_id: i64,
    pub permit_definition_name: String,
    pub parking_spaces_count: i64,
    pub permit_count: i64,
    /// Permits not deleted and not yet ended, now.
    pub issued_permit_count: i64,
    pub valid_from: String,
    pub valid_to: String,
}

impl From<Allocation> for AllocationView {
    fn from(a: Allocation) -> Self {
        Self {
            id: a.id,
            tenant_id: a.tenant_id,
            permit_definition_id: a.definition_id,
            permit_definition_name: a.definition_name,
            parking_spaces_count: a.parking_spaces_count,
            permit_count: a.permit_count,
            issued_permit_count: a.issued_count,
            valid_from: a.days.from.to_string(),
            valid_to: a.days.to.to_string(),
        }
    }
}

fn count(value: Option<i64>, field: &str, required: bool, errors: &mut FieldErrors) -> Option<i64> {
    match value {
        None if required => {
            errors.add(field, "is required");
            None
        }
        Some(n) if !(0..=MAX_COUNT).contains(&n) => {
            errors.add(field, format!("must be between 0 and {MAX_COUNT}"));
            None
        }
        other => other,
    }
}

fn day(
    value: Option<&str>,
    field: &str,
    required: bool,
    errors: &mut FieldErrors,
) -> Option<jiff::civil::Date> {
    match value {
        None if required => {
            errors.add(field, "is required");
            None
        }
        None => None,
        Some(text) => match (text.len(), text.parse::<jiff::civil::Date>()) {
            (10, Ok(date)) => Some(date),
            _ => {
                errors.add(field, "must be a date YYYY-MM-DD");
                None
            }
        },
    }
}

/// Grant a tenant a quota of a permit definition.
#[utoipa::path(post, path = "/api/v1/admin/permit-allocations", tag = "permits-admin",
    request_body = AllocationInput,
    responses(
        (status = 201, description = "created", body = AllocationView),
        (status = 422, description = "invalid fields, unknown tenant or definition", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn create_allocation(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<AllocationInput>,
) -> Result<(StatusCode, Json<AllocationView>), AppError> {
    who.require(&[Role::Operator])?;
    let mut errors = FieldErrors::new();
    let tenant_id = input.tenant_id.or_else(|| {
        errors.add("tenantId", "is required");
        None
    });
    let definition_id = input.permit_definition_id.or_else(|| {
        errors.add("permitDefinitionId", "is required");
        None
    });
    let spaces = count(
        input.parking_spaces_count,
        "parkingSpacesCount",
        true,
        &mut errors,
    );
    let permits = count(input.permit_count, "permitCount", true, &mut errors);
    let from = day(input.valid_from.as_deref(), "validFrom", true, &mut errors);
    let to = day(input.valid_to.as_deref(), "validTo", true, &mut errors);
    if let (Some(from), Some(to)) = (from, to)
        && to < from
    {
        errors.add("validTo", "must not be before validFrom");
    }
    errors.into_result()?;
    let (Some(tenant_id), Some(definition_id), Some(spaces), Some(permits), Some(from), Some(to)) =
        (tenant_id, definition_id, spaces, permits, from, to)
    else {
        return Err(AppError::internal(anyhow::anyhow!(
            "validated fields missing"
        )));
    };
    let new = NewAllocation {
        tenant_id,
        definition_id,
        parking_spaces_count: spaces,
        permit_count: permits,
        days: Days { from, to },
    };
    let id = store::insert_allocation(&state.store, &new).await?;
    let allocation = store::get_allocation(&state.store, &id, None)
        .await?
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("allocation {id} vanished")))?;
    Ok((StatusCode::CREATED, Json(allocation.into())))
}

/// List permit allocations, with their live issued counts.
#[utoipa::path(get, path = "/api/v1/admin/permit-allocations", tag = "permits-admin",
    params(("tenantId" = Option<i64>, Query, minimum = 1, description = "only this tenant's")),
    responses(
        (status = 200, description = "the allocations", body = Vec<AllocationView>),
        (status = 422, description = "tenantId is not a number", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn list_allocations(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<Vec<AllocationView>>, AppError> {
    who.require(&[Role::Operator])?;
    let mut errors = FieldErrors::new();
    let tenant = query.int("tenantId", 1..=i64::MAX, &mut errors);
    errors.into_result()?;
    let allocations = store::list_allocations(&state.store, tenant).await?;
    Ok(Json(
        allocations.into_iter().map(AllocationView::from).collect(),
    ))
}

/// Get one permit allocation.
#[utoipa::path(get, path = "/api/v1/admin/permit-allocations/{id}", tag = "permits-admin",
    params(("id" = String, Path, description = "the allocation's id")),
    responses(
        (status = 200, description = "the allocation", body = AllocationView),
        (status = 404, description = "no such allocation", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn get_allocation(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<AllocationView>, AppError> {
    who.require(&[Role::Operator])?;
    let allocation = store::get_allocation(&state.store, &id, None)
        .await?
        .ok_or_else(|| allocation_not_found(&id))?;
    Ok(Json(allocation.into()))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AllocationUpdate {
    pub parking_spaces_count: Option<i64>,
    pub permit_count: Option<i64>,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

/// Change an allocation's counts and dates, never below what is issued.
#[utoipa::path(patch, path = "/api/v1/admin/permit-allocations/{id}", tag = "permits-admin",
    params(("id" = String, Path, description = "the allocation's id")),
    request_body = AllocationUpdate,
    responses(
        (status = 200, description = "the updated allocation", body = AllocationView),
        (status = 404, description = "no such allocation", body = ErrorBody),
        (status = 409, description = "below what is issued", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn update_allocation(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(input): Json<AllocationUpdate>,
) -> Result<Json<AllocationView>, AppError> {
    who.require(&[Role::Operator])?;
    let mut errors = FieldErrors::new();
    let change = AllocationChange {
        parking_spaces_count: count(
            input.parking_spaces_count,
            "parkingSpacesCount",
            false,
            &mut errors,
        ),
        permit_count: count(input.permit_count, "permitCount", false, &mut errors),
        valid_from: day(input.valid_from.as_deref(), "validFrom", false, &mut errors),
        valid_to: day(input.valid_to.as_deref(), "validTo", false, &mut errors),
    };
    errors.into_result()?;
    store::update_allocation(&state.store, &id, &change)
        .await?
        .ok_or_else(|| allocation_not_found(&id))?;
    let allocation = store::get_allocation(&state.store, &id, None)
        .await?
        .ok_or_else(|| allocation_not_found(&id))?;
    Ok(Json(allocation.into()))
}

fn allocation_not_found(id: &str) -> AppError {
    AppError::NotFound(format!("no permit allocation with id '{id}'"))
}
