//! End users, by e-mail: the operator creates profiles and adds or removes their vehicles.
//! A permit is activated once its e-mail has a profile with at least one vehicle.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, EndUser, PermitFilter};
use super::views::PermitView;
use crate::app::AppState;
use crate::domain::plate::normal_form;
use crate::domain::{Email, LicensePlate};
use crate::http::error::ErrorBody;
use crate::http::{AppError, FieldErrors, Json, Principal};
use crate::principals::Role;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_end_user, get_end_user))
        .routes(routes!(put_vehicle, delete_vehicle))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VehicleView {
    /// As sent.
    pub license_number: String,
    /// Upper case, letters and digits only.
    pub normalized: String,
    /// RFC 3339, UTC.
    pub added_at: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EndUserView {
    /// Lower case.
    pub email: String,
    pub created_at: String,
    pub vehicles: Vec<VehicleView>,
    /// Every permit of this e-mail that is not deleted, of any tenant.
    pub permits: Vec<PermitView>,
}

fn email(raw: &str) -> Result<Email, AppError> {
    Email::parse(raw).map_err(|m| FieldErrors::single("email", m))
}

async fn view(state: &AppState, user: EndUser) -> Result<EndUserView, AppError> {
    let filter = PermitFilter {
        email: Some(&user.email),
        ..Default::default()
    };
    let permits = store::list_permits(&state.store, &filter).await?;
    Ok(EndUserView {
        created_at: user.created_at.to_string(),
        vehicles: user
            .vehicles
            .into_iter()
            .map(|v| VehicleView {
                license_number: v.license_raw,
                normalized: v.license_norm,
                added_at: v.added_at.to_string(),
            })
            .collect(),
        permits: permits.into_iter().map(PermitView::from).collect(),
        email: user.email,
    })
}

async fn load(state: &AppState, email: &Email) -> Result<EndUserView, AppError> {
    let user = store::get_end_user(&state.store, email)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no end user {email}")))?;
    view(state, user).await
}

/// Create an end user's profile (idempotent: 201 when created, 200 when it existed).
#[utoipa::path(put, path = "/api/v1/admin/end-users/{email}", tag = "permits-admin",
    params(("email" = String, Path, description = "the end user's e-mail, case-insensitive")),
    responses(
        (status = 201, description = "created", body = EndUserView),
        (status = 200, description = "it existed", body = EndUserView),
        (status = 422, description = "not an e-mail address", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn put_end_user(
    State(state): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> Result<(StatusCode, Json<EndUserView>), AppError> {
    who.require(&[Role::Operator])?;
    let email = email(&raw)?;
    let created = store::ensure_end_user(&state.store, &email).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(load(&state, &email).await?)))
}

/// An end user's profile with its vehicles and permits.
#[utoipa::path(get, path = "/api/v1/admin/end-users/{email}", tag = "permits-admin",
    params(("email" = String, Path, description = "the end user's e-mail, case-insensitive")),
    responses(
        (status = 200, description = "the profile", body = EndUserView),
        (status = 404, description = "no such end user", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn get_end_user(
    State(state): State<AppState>,
    who: Principal,
    Path(raw): Path<String>,
) -> Result<Json<EndUserView>, AppError> {
    who.require(&[Role::Operator])?;
    let email = Email::parse(&raw).map_err(|_| AppError::NotFound(format!("no end user {raw}")))?;
    Ok(Json(load(&state, &email).await?))
}

/// Add a vehicle to an end user's profile (201 new, 200 already there); activates the
/// e-mail's permits.
#[utoipa::path(put, path = "/api/v1/admin/end-users/{email}/vehicles/{licenseNumber}", tag = "permits-admin",
    params(
        ("email" = String, Path, description = "the end user's e-mail"),
        ("licenseNumber" = String, Path, description = "the plate, as written"),
    ),
    responses(
        (status = 201, description = "added", body = EndUserView),
        (status = 200, description = "it was there", body = EndUserView),
        (status = 404, description = "no such end user", body = ErrorBody),
        (status = 422, description = "not an e-mail address or not a plate", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn put_vehicle(
    State(state): State<AppState>,
    who: Principal,
    Path((raw_email, raw_plate)): Path<(String, String)>,
) -> Result<(StatusCode, Json<EndUserView>), AppError> {
    who.require(&[Role::Operator])?;
    let email = email(&raw_email)?;
    let plate = LicensePlate::parse(&raw_plate)
        .map_err(|e| FieldErrors::single("licenseNumber", e.to_string()))?;
    let added = store::add_vehicle(&state.store, &email, &plate)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no end user {email}")))?;
    let status = if added {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(load(&state, &email).await?)))
}

/// Remove a vehicle from an end user's profile.
#[utoipa::path(delete, path = "/api/v1/admin/end-users/{email}/vehicles/{licenseNumber}", tag = "permits-admin",
    params(
        ("email" = String, Path, description = "the end user's e-mail"),
        ("licenseNumber" = String, Path, description = "the plate, matched in normal form"),
    ),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no such end user or vehicle", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn delete_vehicle(
    State(state): State<AppState>,
    who: Principal,
    Path((raw_email, raw_plate)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    who.require(&[Role::Operator])?;
    let not_found =
        || AppError::NotFound(format!("end user {raw_email} has no vehicle {raw_plate}"));
    let email = Email::parse(&raw_email).map_err(|_| not_found())?;
    if store::remove_vehicle(&state.store, &email, &normal_form(&raw_plate)).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
