//! The enforcement endpoints: one plate, a batch of plates, the plates with a right (for
//! handhelds that must work offline), and the operator's check log.

use std::collections::BTreeSet;

use axum::extract::State;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::gather::{self, RightView};
use super::log::{self, Check, CheckFilter, CheckView};
use super::snapshot::{self, PlateList};
use crate::app::AppState;
use crate::domain::plate::normal_form;
use crate::domain::time::to_micros;
use crate::domain::{DateTimeInput, LicensePlate};
use crate::http::error::ErrorBody;
use crate::http::paging::{PageMeta, Paging};
use crate::http::{AppError, FieldErrors, Json, Principal, QueryMap};
use crate::lots::Lot;
use crate::principals::Role;

/// Most plates in one batch check.
pub const MAX_BATCH: usize = 1000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(check_one))
        .routes(routes!(check_batch))
        .routes(routes!(valid_plates))
        .routes(routes!(list_checks))
}

/// Where a question is asked: one lot, or every lot with a zone code.
#[derive(Debug, Clone, Copy)]
enum Place {
    Lot(i64),
    Zone(i64),
}

fn place(parking_lot_id: Option<i64>, zone_code: Option<i64>) -> Result<Place, FieldErrors> {
    match (parking_lot_id, zone_code) {
        (Some(lot), None) => Ok(Place::Lot(lot)),
        (None, Some(zone)) => Ok(Place::Zone(zone)),
        (Some(_), Some(_)) => Err(one("zoneCode", "give parkingLotId or zoneCode, not both")),
        (None, None) => Err(one("parkingLotId", "is required (or zoneCode)")),
    }
}

fn one(field: &str, message: &str) -> FieldErrors {
    let mut errors = FieldErrors::new();
    errors.add(field, message);
    errors
}

async fn lots_of(state: &AppState, place: Place) -> Result<Vec<Lot>, AppError> {
    match place {
        Place::Lot(id) => match crate::lots::store::get(&state.store, id).await? {
            Some(lot) => Ok(vec![lot]),
            None => Err(FieldErrors::single(
                "parkingLotId",
                format!("no parking lot with id {id}"),
            )),
        },
        Place::Zone(zone) => {
            let lots = crate::lots::store::by_zone(&state.store, zone).await?;
            if lots.is_empty() {
                Err(FieldErrors::single(
                    "zoneCode",
                    format!("no parking lot has zone code {zone}"),
                ))
            } else {
                Ok(lots)
            }
        }
    }
}

/// `at` as sent (a local time is read in the first lot's zone), else now.
fn instant(at: Option<&str>, lots: &[Lot]) -> Result<Timestamp, AppError> {
    let Some(text) = at else {
        return Ok(Timestamp::now());
    };
    let input = DateTimeInput::parse(text).map_err(|m| FieldErrors::single("at", m))?;
    let zone = &lots[0].time_zone;
    input
        .resolve(zone)
        .map_err(|e| FieldErrors::single("at", e.to_string()))
}

/// The answer for one plate.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RightsAnswer {
    /// Normal form.
    pub license_number: String,
    /// The lot asked about; null when a zone was asked about.
    pub parking_lot_id: Option<i64>,
    pub zone_code: i64,
    /// The lots considered (the zone's lots).
    pub parking_lot_ids: Vec<i64>,
    /// The instant, in the (first) lot's local time.
    pub at: String,
    pub allowed: bool,
    /// Allowed only because a right ended less than the lot's grace minutes ago.
    pub grace: bool,
    /// When the best current right ends (in grace: when the grace ends); null if open-ended.
    pub valid_until: Option<String>,
    pub rights: Vec<RightView>,
}

fn kind(right: &RightView) -> &'static str {
    match right {
        RightView::Ticket { .. } => "ticket",
        RightView::Permit { .. } => "permit",
        RightView::Transaction { .. } => "transaction",
    }
}

async fn answer(
    state: &AppState,
    plate: &str,
    place: Place,
    lots: &[Lot],
    at: Timestamp,
) -> Result<RightsAnswer, AppError> {
    let (verdict, rights) = gather::answer(&state.store, plate, lots, at).await?;
    let zone = &lots[0].time_zone;
    Ok(RightsAnswer {
        license_number: plate.to_owned(),
        parking_lot_id: match place {
            Place::Lot(id) => Some(id),
            Place::Zone(_) => None,
        },
        zone_code: lots[0].zone_code,
        parking_lot_ids: lots.iter().map(|l| l.id).collect(),
        at: zone.render(at),
        allowed: verdict.allowed,
        grace: verdict.grace,
        valid_until: verdict.valid_until.map(|u| zone.render(u)),
        rights,
    })
}

fn check_of<'a>(answer: &'a RightsAnswer, place: Place, at: Timestamp) -> Check<'a> {
    let mut kinds: Vec<&str> = answer.rights.iter().map(kind).collect();
    kinds.dedup();
    Check {
        plate: &answer.license_number,
        parking_lot_id: answer.parking_lot_id,
        zone_code: matches!(place, Place::Zone(_)).then_some(answer.zone_code),
        at,
        allowed: answer.allowed,
        grace: answer.grace,
        kinds: kinds.join(","),
    }
}

fn plate(text: &str, field: &str) -> Result<String, FieldErrors> {
    LicensePlate::parse(text)
        .map(|p| p.normal().to_owned())
        .map_err(|e| one(field, &e.to_string()))
}

/// May this vehicle park here now (or at `at`)?
#[utoipa::path(get, path = "/api/v1/parking-rights", tag = "rights",
    params(
        ("licenseNumber" = String, Query, min_length = 1, max_length = 20, description = "the plate, any spelling"),
        ("parkingLotId" = Option<i64>, Query, minimum = 1, description = "the lot (or zoneCode)"),
        ("zoneCode" = Option<i64>, Query, minimum = 0, description = "every lot with this zone code (or parkingLotId)"),
        ("at" = Option<String>, Query, description = "ISO 8601; default now"),
    ),
    responses(
        (status = 200, description = "the answer, with every right that applies", body = RightsAnswer),
        (status = 403, description = "not enforcement or operator", body = ErrorBody),
        (status = 422, description = "invalid or missing parameters", body = ErrorBody),
    ),
    security(("bearer" = ["enforcement", "operator"])))]
async fn check_one(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<RightsAnswer>, AppError> {
    who.require(&[Role::Enforcement, Role::Operator])?;
    let mut errors = FieldErrors::new();
    let lot = query.int("parkingLotId", 1..=i64::MAX, &mut errors);
    let zone = query.int("zoneCode", 0..=i64::MAX, &mut errors);
    let plate = match query.get("licenseNumber") {
        None => {
            errors.add("licenseNumber", "is required");
            None
        }
        Some(text) => plate(text, "licenseNumber")
            .map_err(|e| errors.extend(e))
            .ok(),
    };
    let place = place(lot, zone).map_err(|e| errors.extend(e)).ok();
    errors.into_result()?;
    let (Some(plate), Some(place)) = (plate, place) else {
        return Err(AppError::internal(anyhow::anyhow!(
            "validated parameters missing"
        )));
    };
    let lots = lots_of(&state, place).await?;
    let at = instant(query.get("at"), &lots)?;
    let answer = answer(&state, &plate, place, &lots, at).await?;
    state
        .check_log
        .record(who.id, &[check_of(&answer, place, at)])
        .await?;
    Ok(Json(answer))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchInput {
    /// 1 to 1000 plates.
    #[schema(required = true, value_type = Vec<String>, min_items = 1, max_items = 1000)]
    pub license_numbers: Option<Vec<String>>,
    pub parking_lot_id: Option<i64>,
    pub zone_code: Option<i64>,
    /// ISO 8601; default now.
    pub at: Option<String>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatchAnswer {
    /// One answer per plate, in the order sent.
    pub results: Vec<RightsAnswer>,
}

/// The same answer for up to 1000 plates at one lot or zone and one instant.
#[utoipa::path(post, path = "/api/v1/parking-rights/check", tag = "rights",
    request_body = BatchInput,
    responses(
        (status = 200, description = "an answer per plate", body = BatchAnswer),
        (status = 403, description = "not enforcement or operator", body = ErrorBody),
        (status = 422, description = "invalid fields, or more than 1000 plates", body = ErrorBody),
    ),
    security(("bearer" = ["enforcement", "operator"])))]
async fn check_batch(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<BatchInput>,
) -> Result<Json<BatchAnswer>, AppError> {
    who.require(&[Role::Enforcement, Role::Operator])?;
    let mut errors = FieldErrors::new();
    let raw = input.license_numbers.unwrap_or_default();
    if raw.is_empty() {
        errors.add("licenseNumbers", "must list at least one plate");
    } else if raw.len() > MAX_BATCH {
        errors.add(
            "licenseNumbers",
            format!("must list at most {MAX_BATCH} plates"),
        );
    }
    let mut plates = Vec::new();
    if raw.len() <= MAX_BATCH {
        for (i, text) in raw.iter().enumerate() {
            match plate(text, &format!("licenseNumbers[{i}]")) {
                Ok(p) => plates.push(p),
                Err(e) => errors.extend(e),
            }
        }
    }
    let place = place(input.parking_lot_id, input.zone_code)
        .map_err(|e| errors.extend(e))
        .ok();
    errors.into_result()?;
    let Some(place) = place else {
        return Err(AppError::internal(anyhow::anyhow!(
            "validated place missing"
        )));
    };
    let lots = lots_of(&state, place).await?;
    let at = instant(input.at.as_deref(), &lots)?;
    let mut results = Vec::with_capacity(plates.len());
    for plate in &plates {
        results.push(answer(&state, plate, place, &lots, at).await?);
    }
    let checks: Vec<Check> = results.iter().map(|a| check_of(a, place, at)).collect();
    state.check_log.record(who.id, &checks).await?;
    Ok(Json(BatchAnswer { results }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PlatePage {
    pub status: &'static str,
    /// The instant, in the (first) lot's local time.
    pub at: String,
    /// Plates in normal form, sorted.
    pub data: Vec<String>,
    pub meta: PageMeta,
}

/// Every plate with a right (grace included) at a lot or zone at `at`, paged, for handheld
/// devices that must keep working offline. `at` defaults to now, to the second; the list for
/// a place and instant is decided once and kept for a minute, so the pages asked with the
/// `at` the first page answered all come from one list.
#[utoipa::path(get, path = "/api/v1/parking-rights/valid-plates", tag = "rights",
    params(
        ("parkingLotId" = Option<i64>, Query, minimum = 1, description = "the lot (or zoneCode)"),
        ("zoneCode" = Option<i64>, Query, minimum = 0, description = "every lot with this zone code"),
        ("at" = Option<String>, Query, description = "ISO 8601; default now (to the second). Ask the next pages with the `at` the first one answered: they come from the same list"),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1000000000, description = "1 or more"),
        ("perPage" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1 to 500; default 50"),
    ),
    responses(
        (status = 200, description = "one page of plates", body = PlatePage),
        (status = 422, description = "invalid parameters", body = ErrorBody),
    ),
    security(("bearer" = ["enforcement", "operator"])))]
async fn valid_plates(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<PlatePage>, AppError> {
    who.require(&[Role::Enforcement, Role::Operator])?;
    let mut errors = FieldErrors::new();
    let lot = query.int("parkingLotId", 1..=i64::MAX, &mut errors);
    let zone = query.int("zoneCode", 0..=i64::MAX, &mut errors);
    let paging = Paging::from_query(&query, &mut errors);
    let place = place(lot, zone).map_err(|e| errors.extend(e)).ok();
    errors.into_result()?;
    let Some(place) = place else {
        return Err(AppError::internal(anyhow::anyhow!(
            "validated place missing"
        )));
    };
    let lots = lots_of(&state, place).await?;
    let at = match query.get("at") {
        Some(text) => instant(Some(text), &lots)?,
        None => snapshot::this_second(Timestamp::now()),
    };
    let key = match place {
        Place::Lot(id) => (false, id, to_micros(at)),
        Place::Zone(zone) => (true, zone, to_micros(at)),
    };
    let list = state
        .plate_lists
        .get_or_decide(key, || async {
            state.metrics.plate_list_decided();
            let mut plates = BTreeSet::new();
            for lot in &lots {
                let grace = SignedDuration::from_mins(lot.grace_minutes);
                plates.extend(gather::allowed_at_lot(&state.store, lot, at, grace).await?);
            }
            Ok(PlateList::from_sorted(plates.iter().map(String::as_str)))
        })
        .await?;
    let total = list.len() as i64;
    let data = list.page(paging.offset() as usize, paging.per_page as usize);
    Ok(Json(PlatePage {
        status: "ok",
        at: lots[0].time_zone.render(at),
        data,
        meta: paging.meta(total),
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckPage {
    pub status: &'static str,
    pub data: Vec<CheckView>,
    pub meta: PageMeta,
}

/// The log of parking-right checks, newest first.
#[utoipa::path(get, path = "/api/v1/admin/parking-right-checks", tag = "rights",
    params(
        ("licenseNumber" = Option<String>, Query, description = "matched in normal form"),
        ("parkingLotId" = Option<i64>, Query, minimum = 1, description = "checks of this lot"),
        ("from" = Option<String>, Query, description = "checked at or after (ISO 8601 with offset)"),
        ("to" = Option<String>, Query, description = "checked before"),
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1000000000, description = "1 or more"),
        ("perPage" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1 to 500; default 50"),
    ),
    responses(
        (status = 200, description = "one page of checks", body = CheckPage),
        (status = 403, description = "not the operator", body = ErrorBody),
        (status = 422, description = "invalid parameters", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn list_checks(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<CheckPage>, AppError> {
    who.require(&[Role::Operator])?;
    let mut errors = FieldErrors::new();
    let paging = Paging::from_query(&query, &mut errors);
    let parking_lot_id = query.int("parkingLotId", 1..=i64::MAX, &mut errors);
    let mut time = |field: &str| match query.get(field).map(DateTimeInput::parse) {
        None => None,
        Some(Ok(DateTimeInput::Absolute(ts))) => Some(ts),
        Some(_) => {
            errors.add(field, "must be an ISO 8601 date-time with an offset or Z");
            None
        }
    };
    let (from, to) = (time("from"), time("to"));
    errors.into_result()?;
    let filter = CheckFilter {
        plate: query.get("licenseNumber").map(normal_form),
        parking_lot_id,
        from,
        to,
    };
    // every check this instance answered is listed
    state.check_log.sync().await?;
    let (data, total) = log::list(&state.store, &filter, paging.per_page, paging.offset()).await?;
    Ok(Json(CheckPage {
        status: "ok",
        data,
        meta: paging.meta(total),
    }))
}
