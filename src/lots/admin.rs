//! `/api/v1/admin/parking-lots`: the operator sets up lots.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{LotInput, LotView, store};
use crate::app::AppState;
use crate::http::error::ErrorBody;
use crate::http::extract::path_id;
use crate::http::{AppError, Json, Principal};
use crate::principals::Role;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_lot, list_lots))
        .routes(routes!(get_lot, update_lot))
}

/// Create a parking lot.
#[utoipa::path(post, path = "/api/v1/admin/parking-lots", tag = "admin",
    request_body = LotInput,
    responses(
        (status = 201, description = "created", body = LotView),
        (status = 409, description = "a lot with this id exists", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn create_lot(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<LotInput>,
) -> Result<(StatusCode, Json<LotView>), AppError> {
    who.require(&[Role::Operator])?;
    let lot = input.into_new().map_err(AppError::Validation)?;
    store::insert(&state.store, &lot).await?;
    Ok((StatusCode::CREATED, Json(LotView::from(&lot))))
}

/// List every parking lot.
#[utoipa::path(get, path = "/api/v1/admin/parking-lots", tag = "admin",
    responses((status = 200, description = "the lots, by id", body = Vec<LotView>)),
    security(("bearer" = ["operator"])))]
async fn list_lots(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<LotView>>, AppError> {
    who.require(&[Role::Operator])?;
    let lots = store::list(&state.store).await?;
    Ok(Json(lots.iter().map(LotView::from).collect()))
}

/// Get one parking lot.
#[utoipa::path(get, path = "/api/v1/admin/parking-lots/{id}", tag = "admin",
    params(("id" = i64, Path, description = "the lot's id")),
    responses(
        (status = 200, description = "the lot", body = LotView),
        (status = 404, description = "no such lot", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn get_lot(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<LotView>, AppError> {
    who.require(&[Role::Operator])?;
    let lot = find(&state, &id).await?;
    Ok(Json(LotView::from(&lot)))
}

/// Change a lot's name, zone code or time zone (fields absent from the body stay).
#[utoipa::path(patch, path = "/api/v1/admin/parking-lots/{id}", tag = "admin",
    params(("id" = i64, Path, description = "the lot's id")),
    request_body = LotInput,
    responses(
        (status = 200, description = "the updated lot", body = LotView),
        (status = 404, description = "no such lot", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn update_lot(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    Json(input): Json<LotInput>,
) -> Result<Json<LotView>, AppError> {
    who.require(&[Role::Operator])?;
    let mut lot = find(&state, &id).await?;
    input.apply_to(&mut lot).map_err(AppError::Validation)?;
    if !store::update(&state.store, &lot).await? {
        return Err(not_found(&id));
    }
    Ok(Json(LotView::from(&lot)))
}

async fn find(state: &AppState, raw_id: &str) -> Result<super::Lot, AppError> {
    let id = path_id(raw_id, "parking lot")?;
    store::get(&state.store, id)
        .await?
        .ok_or_else(|| not_found(raw_id))
}

fn not_found(raw_id: &str) -> AppError {
    AppError::NotFound(format!("no parking lot with id '{raw_id}'"))
}
