//! The console's endpoints: per-lot figures, searches across principals, and occupancy over
//! the last hours. Operators and enforcement (permits, which name people: operators only).

use axum::extract::{Path, State};
use jiff::Timestamp;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{history, store};
use crate::app::AppState;
use crate::carparks::tariff::major_units;
use crate::domain::plate::normal_form;
use crate::domain::time::{from_micros, to_micros};
use crate::http::error::ErrorBody;
use crate::http::extract::path_id;
use crate::http::paging::{PageMeta, Paging};
use crate::http::{AppError, FieldErrors, Json, Principal, QueryMap};
use crate::principals::Role;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(overview))
        .routes(routes!(search_tickets))
        .routes(routes!(search_permits))
        .routes(routes!(search_transactions))
        .routes(routes!(occupancy_history))
}

const MAX_TEXT: usize = 100;

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LotOverview {
    pub parking_lot_id: i64,
    pub name: String,
    pub zone_code: i64,
    pub time_zone: String,
    pub capacity: Option<i64>,
    /// Vehicles with an open transaction.
    pub inside: i64,
    /// Active tickets whose time covers now.
    pub active_tickets: i64,
    /// Permits valid today for this lot (whether or not their schedule allows this minute).
    pub active_permits: i64,
    /// Capacity minus inside, never below 0; null when the capacity is unknown.
    pub free: Option<i64>,
}

/// Every lot with its figures now.
#[utoipa::path(get, path = "/api/v1/admin/overview", tag = "console",
    responses((status = 200, description = "per lot", body = Vec<LotOverview>)),
    security(("bearer" = ["operator", "enforcement"])))]
async fn overview(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<LotOverview>>, AppError> {
    who.require(&[Role::Operator, Role::Enforcement])?;
    let (lots, counts) = store::overview(&state.store, Timestamp::now()).await?;
    let counts: std::collections::HashMap<i64, (i64, i64, i64)> = counts
        .into_iter()
        .map(|(id, inside, tickets, permits)| (id, (inside, tickets, permits)))
        .collect();
    Ok(Json(
        lots.into_iter()
            .map(|lot| {
                let (inside, active_tickets, active_permits) =
                    counts.get(&lot.id).copied().unwrap_or_default();
                LotOverview {
                    parking_lot_id: lot.id,
                    name: lot.name,
                    zone_code: lot.zone_code,
                    time_zone: lot.time_zone,
                    capacity: lot.capacity,
                    inside,
                    active_tickets,
                    active_permits,
                    free: lot.capacity.map(|c| (c - inside).max(0)),
                }
            })
            .collect(),
    ))
}

/// A page of any kind of item.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub meta: PageMeta,
}

fn text(query: &QueryMap, name: &str, errors: &mut FieldErrors) -> Option<String> {
    let value = query.get(name)?.trim();
    if value.is_empty() {
        return None;
    }
    if value.chars().count() > MAX_TEXT {
        errors.add(name, format!("must be at most {MAX_TEXT} characters"));
        return None;
    }
    if value.contains('\0') {
        errors.add(name, "must not contain a NUL character");
        return None;
    }
    Some(value.to_owned())
}

fn instant(query: &QueryMap, name: &str, errors: &mut FieldErrors) -> Option<i64> {
    let value = query.get(name)?.trim();
    match value.parse::<Timestamp>() {
        Ok(at) => Some(to_micros(at)),
        Err(_) => {
            errors.add(
                name,
                "must be an RFC 3339 date-time with an offset, e.g. 2025-02-10T12:00:00+01:00",
            );
            None
        }
    }
}

/// The plate's normal form and the text as sent. Text without a letter or a digit has an
/// empty normal form, which no plate has: it can still match a barcode as sent.
fn plate(query: &QueryMap, errors: &mut FieldErrors) -> Option<(String, String)> {
    let raw = text(query, "licenseNumber", errors)?;
    Some((normal_form(&raw), raw))
}

fn rfc3339(us: i64) -> String {
    from_micros(us).to_string()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketFound {
    pub provider_id: i64,
    pub provider_name: String,
    pub ticket_id: String,
    pub parking_lot_id: i64,
    /// The lot's time zone, to show its times locally.
    pub time_zone: String,
    pub license_number: String,
    /// RFC 3339, UTC.
    pub start_date: String,
    pub end_date: Option<String>,
    /// `active` or `canceled`.
    pub status: String,
    pub canceled_at: Option<String>,
}

/// Search every provider's tickets: by plate (normal form), provider, lot, and time (tickets
/// overlapping `from`..`to`); newest start first.
#[utoipa::path(get, path = "/api/v1/admin/tickets", tag = "console",
    params(
        ("licenseNumber" = Option<String>, Query, max_length = 100, pattern = r"^[^\u0000]*$", description = "any spelling"),
        ("providerId" = Option<i64>, Query, minimum = 1, description = "one provider's"),
        ("parkingLotId" = Option<i64>, Query, minimum = 1, description = "one lot's"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339: tickets ending after this"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339: tickets starting before this"),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1000000000, description = "default 1"),
        ("perPage" = Option<i64>, Query, minimum = 1, maximum = 500, description = "default 50"),
    ),
    responses(
        (status = 200, description = "one page", body = Page<TicketFound>),
        (status = 422, description = "invalid parameters", body = ErrorBody),
    ),
    security(("bearer" = ["operator", "enforcement"])))]
async fn search_tickets(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<Page<TicketFound>>, AppError> {
    who.require(&[Role::Operator, Role::Enforcement])?;
    let mut errors = FieldErrors::new();
    let q = store::TicketQuery {
        plate: plate(&query, &mut errors).map(|(norm, _)| norm),
        provider_id: query.int("providerId", 1..=i64::MAX, &mut errors),
        lot_id: query.int("parkingLotId", 1..=i64::MAX, &mut errors),
        from: instant(&query, "from", &mut errors),
        to: instant(&query, "to", &mut errors),
    };
    let paging = Paging::from_query(&query, &mut errors);
    errors.into_result()?;
    let (rows, total) = store::tickets(&state.store, &q, paging.per_page, paging.offset()).await?;
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|t| TicketFound {
                provider_id: t.provider_id,
                provider_name: t.provider_name,
                ticket_id: t.ticket_id,
                parking_lot_id: t.parking_lot_id,
                time_zone: t.time_zone,
                license_number: t.license_raw,
                start_date: rfc3339(t.start_at),
                end_date: t.end_at.map(rfc3339),
                status: t.status,
                canceled_at: t.canceled_at.map(rfc3339),
            })
            .collect(),
        meta: paging.meta(total),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermitFound {
    pub permit_id: String,
    pub email: String,
    pub allocation_id: String,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub definition_name: String,
    /// The definition's time zone.
    pub time_zone: String,
    /// The first and last day (local dates).
    pub valid_from: String,
    pub valid_to: String,
    pub activated: bool,
    pub activated_at: Option<String>,
}

/// Search permits that are not deleted: by e-mail, tenant, allocation; newest first.
#[utoipa::path(get, path = "/api/v1/admin/permits", tag = "console",
    params(
        ("email" = Option<String>, Query, max_length = 100, pattern = r"^[^\u0000]*$", description = "the holder's e-mail (any case)"),
        ("tenantId" = Option<i64>, Query, minimum = 1, description = "one tenant's"),
        ("allocationId" = Option<String>, Query, max_length = 100, pattern = r"^[^\u0000]*$", description = "one allocation's"),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1000000000, description = "default 1"),
        ("perPage" = Option<i64>, Query, minimum = 1, maximum = 500, description = "default 50"),
    ),
    responses(
        (status = 200, description = "one page", body = Page<PermitFound>),
        (status = 422, description = "invalid parameters", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn search_permits(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<Page<PermitFound>>, AppError> {
    who.require(&[Role::Operator])?;
    let mut errors = FieldErrors::new();
    let q = store::PermitQuery {
        email: text(&query, "email", &mut errors).map(|e| e.to_lowercase()),
        tenant_id: query.int("tenantId", 1..=i64::MAX, &mut errors),
        allocation_id: text(&query, "allocationId", &mut errors),
    };
    let paging = Paging::from_query(&query, &mut errors);
    errors.into_result()?;
    let (rows, total) = store::permits(&state.store, &q, paging.per_page, paging.offset()).await?;
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|p| PermitFound {
                permit_id: p.id,
                email: p.email,
                allocation_id: p.allocation_id,
                tenant_id: p.tenant_id,
                tenant_name: p.tenant_name,
                definition_name: p.definition_name,
                time_zone: p.time_zone,
                valid_from: p.valid_from,
                valid_to: p.valid_to,
                activated: p.activated_at.is_some(),
                activated_at: p.activated_at.map(rfc3339),
            })
            .collect(),
        meta: paging.meta(total),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionFound {
    pub transaction_id: i64,
    pub parking_lot_id: i64,
    /// The lot's time zone.
    pub time_zone: String,
    pub ticket_no: String,
    pub ticket_type: i64,
    /// The provider whose identifier it was, if any.
    pub provider_id: Option<i64>,
    pub reference_no: String,
    /// RFC 3339, UTC.
    pub entry_time: String,
    /// Null while the vehicle is inside.
    pub exit_time: Option<String>,
    pub duration_minutes: Option<i64>,
    pub amount: Option<f64>,
    pub currency_code: Option<String>,
}

/// Search stays at barrier car parks: by plate or barcode, lot, and time (stays overlapping
/// `from`..`to`); newest entry first.
#[utoipa::path(get, path = "/api/v1/admin/transactions", tag = "console",
    params(
        ("licenseNumber" = Option<String>, Query, max_length = 100, pattern = r"^[^\u0000]*$", description = "plate (any spelling) or barcode text"),
        ("parkingLotId" = Option<i64>, Query, minimum = 1, description = "one car park's"),
        ("from" = Option<String>, Query, format = DateTime, description = "RFC 3339: stays not ended before this"),
        ("to" = Option<String>, Query, format = DateTime, description = "RFC 3339: stays entered before this"),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1000000000, description = "default 1"),
        ("perPage" = Option<i64>, Query, minimum = 1, maximum = 500, description = "default 50"),
    ),
    responses(
        (status = 200, description = "one page", body = Page<TransactionFound>),
        (status = 422, description = "invalid parameters", body = ErrorBody),
    ),
    security(("bearer" = ["operator", "enforcement"])))]
async fn search_transactions(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<Page<TransactionFound>>, AppError> {
    who.require(&[Role::Operator, Role::Enforcement])?;
    let mut errors = FieldErrors::new();
    let q = store::TransactionQuery {
        vehicle: plate(&query, &mut errors),
        lot_id: query.int("parkingLotId", 1..=i64::MAX, &mut errors),
        from: instant(&query, "from", &mut errors),
        to: instant(&query, "to", &mut errors),
    };
    let paging = Paging::from_query(&query, &mut errors);
    errors.into_result()?;
    let (rows, total) =
        store::transactions(&state.store, &q, paging.per_page, paging.offset()).await?;
    Ok(Json(Page {
        data: rows
            .into_iter()
            .map(|t| TransactionFound {
                transaction_id: t.id,
                parking_lot_id: t.parking_lot_id,
                time_zone: t.time_zone,
                ticket_no: t.ticket_no,
                ticket_type: t.ticket_type,
                provider_id: t.provider_id,
                reference_no: t.reference_no,
                entry_time: rfc3339(t.entry_at),
                exit_time: t.exit_at.map(rfc3339),
                duration_minutes: t.duration_minutes,
                amount: t.amount_minor.map(major_units),
                currency_code: t.currency_code,
            })
            .collect(),
        meta: paging.meta(total),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OccupancyPoint {
    /// RFC 3339, UTC.
    pub at: String,
    pub inside: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OccupancyHistory {
    pub parking_lot_id: i64,
    pub time_zone: String,
    pub capacity: Option<i64>,
    /// Every whole hour of the period, then now; oldest first.
    pub points: Vec<OccupancyPoint>,
}

/// Vehicles inside a lot at every whole hour of the last `hours` (default 24, at most 168).
#[utoipa::path(get, path = "/api/v1/admin/parking-lots/{id}/occupancy", tag = "console",
    params(
        ("id" = i64, Path, description = "the lot's id"),
        ("hours" = Option<i64>, Query, minimum = 1, maximum = 168, description = "default 24"),
    ),
    responses(
        (status = 200, description = "the samples", body = OccupancyHistory),
        (status = 404, description = "no such lot", body = ErrorBody),
        (status = 422, description = "invalid hours", body = ErrorBody),
    ),
    security(("bearer" = ["operator", "enforcement"])))]
async fn occupancy_history(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
    query: QueryMap,
) -> Result<Json<OccupancyHistory>, AppError> {
    who.require(&[Role::Operator, Role::Enforcement])?;
    let lot_id = path_id(&id, "parking lot")?;
    let mut errors = FieldErrors::new();
    let hours = query.int("hours", 1..=168, &mut errors).unwrap_or(24);
    errors.into_result()?;
    let now = to_micros(Timestamp::now());
    let points = history::sample_points(now, hours);
    let since = points.first().copied().unwrap_or(now);
    let (capacity, time_zone, stays) = store::stays_between(&state.store, lot_id, since, now)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no parking lot with id '{id}'")))?;
    let inside = history::inside_at(&stays, &points);
    Ok(Json(OccupancyHistory {
        parking_lot_id: lot_id,
        time_zone,
        capacity,
        points: points
            .into_iter()
            .zip(inside)
            .map(|(at, inside)| OccupancyPoint {
                at: rfc3339(at),
                inside,
            })
            .collect(),
    }))
}
