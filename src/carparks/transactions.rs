//! Entries and exits reported by equipment become transactions, priced on exit and streamed
//! as TransactionStarted / TransactionCompleted to the provider that registered the vehicle.

use axum::extract::State;
use axum::http::StatusCode;
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::store::{self, Exit, NewStay, Stay};
use super::tariff::{self, Rate};
use super::{PLATE, Vehicle, identifiers, rates};
use crate::app::AppState;
use crate::domain::DateTimeInput;
use crate::events::frames::{self, Completion, Identity};
use crate::http::error::ErrorBody;
use crate::http::{AppError, FieldErrors, Json, Principal, QueryMap};
use crate::lots::{Carpark, Lot};
use crate::permits::rules::covered_intervals;
use crate::principals::Role;

/// An exit sent again without a time within this long of the recorded one is a repeat.
const REPEAT_WINDOW: SignedDuration = SignedDuration::from_mins(5);

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(post_entry))
        .routes(routes!(post_exit))
        .routes(routes!(get_quote))
        .routes(routes!(get_occupancy))
}

/// The fields entries, exits and quotes share.
#[derive(Debug)]
struct Report {
    facility_no: i64,
    carpark_no: i64,
    vehicle: Vehicle,
    time: Option<DateTimeInput>,
    rate_no: Option<i64>,
}

fn int_field(body: &Value, field: &str, errors: &mut FieldErrors) -> Option<i64> {
    match body.get(field) {
        None | Some(Value::Null) => {
            errors.add(field, "is required");
            None
        }
        Some(v) => match v.as_i64() {
            Some(n) if n >= 0 => Some(n),
            _ => {
                errors.add(field, "must be a whole number, 0 or more");
                None
            }
        },
    }
}

impl Report {
    fn from_json(body: &Value) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        if !body.is_object() {
            errors.add("body", "must be a JSON object");
            return Err(errors);
        }
        let facility_no = int_field(body, "facilityNo", &mut errors);
        let carpark_no = int_field(body, "carparkNo", &mut errors);
        let vehicle = Vehicle::from_json(body, &mut errors);
        let time = match body.get("time") {
            None | Some(Value::Null) => None,
            Some(Value::String(t)) => DateTimeInput::parse(t)
                .map_err(|m| errors.add("time", m))
                .ok(),
            Some(_) => {
                errors.add("time", "must be an ISO 8601 date-time string");
                None
            }
        };
        let rate_no = match body.get("rateNo") {
            None | Some(Value::Null) => None,
            Some(v) => match v.as_i64() {
                Some(n) if n > 0 => Some(n),
                _ => {
                    errors.add("rateNo", "must be a whole number, 1 or more");
                    None
                }
            },
        };
        match (facility_no, carpark_no, vehicle) {
            (Some(facility_no), Some(carpark_no), Some(vehicle)) if errors.is_empty() => Ok(Self {
                facility_no,
                carpark_no,
                vehicle,
                time,
                rate_no,
            }),
            _ => Err(errors),
        }
    }

    fn from_query(query: &QueryMap) -> Result<Self, FieldErrors> {
        let mut body = serde_json::Map::new();
        for field in ["facilityNo", "carparkNo", "ticketType", "rateNo"] {
            if let Some(raw) = query.get(field) {
                let value = raw
                    .trim()
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or_else(|_| Value::String(raw.to_owned()));
                body.insert(field.to_owned(), value);
            }
        }
        if let Some(no) = query.get("ticketNo") {
            body.insert("ticketNo".into(), Value::String(no.to_owned()));
        }
        if let Some(at) = query.get("at") {
            body.insert("time".into(), Value::String(at.to_owned()));
        }
        Self::from_json(&Value::Object(body)).map_err(|errors| errors.renamed("time", "at"))
    }
}

/// The car park a report names, if the caller may report there.
async fn carpark(
    state: &AppState,
    who: &Principal,
    report: &Report,
) -> Result<(Lot, Carpark), AppError> {
    let lot =
        crate::lots::store::get_by_carpark(&state.store, report.facility_no, report.carpark_no)
            .await?
            .ok_or_else(|| {
                FieldErrors::single(
                    "carparkNo",
                    format!(
                        "no car park with facilityNo {} and carparkNo {}",
                        report.facility_no, report.carpark_no
                    ),
                )
            })?;
    if who.role == Role::Equipment
        && !crate::principals::store::may_use_lot(&state.store, who, lot.id).await?
    {
        return Err(AppError::Forbidden(format!(
            "this equipment may not report for car park {}/{}",
            report.facility_no, report.carpark_no
        )));
    }
    let carpark = lot.carpark.ok_or_else(|| {
        AppError::internal(anyhow::anyhow!("lot {} has no car park numbers", lot.id))
    })?;
    Ok((lot, carpark))
}

fn resolve_time(report: &Report, lot: &Lot) -> Result<Option<Timestamp>, AppError> {
    report
        .time
        .map(|t| t.resolve(&lot.time_zone))
        .transpose()
        .map_err(|e| FieldErrors::single("time", e.to_string()))
}

fn identity(
    carpark: &Carpark,
    stay_ticket_no: &str,
    ticket_type: i64,
    reference_no: &str,
) -> Identity {
    Identity {
        facility_no: carpark.facility_no,
        carpark_no: carpark.carpark_no,
        ticket_no: stay_ticket_no.to_owned(),
        ticket_type,
        reference_no: reference_no.to_owned(),
    }
}

/// What an entry or exit answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TransactionResult {
    pub transaction_id: i64,
    /// The EventID of the TransactionStarted (entry) or TransactionCompleted (exit) event.
    pub event_id: String,
    pub reference_no: String,
    /// Exits only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_no: Option<i64>,
    /// Exits only: whole minutes, rounded up.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parking_duration: Option<i64>,
    /// Exits only: major units, as the seed's `Amount`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub currency_code: Option<String>,
}

/// A new EventID: a UUID that begins with the time it was made (version 7), so the outbox's
/// unique index on it grows at its end, where a random one (version 4) put every event on a
/// page of its own in each commit.
fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

fn entry_result(stay: &Stay) -> TransactionResult {
    TransactionResult {
        transaction_id: stay.id,
        event_id: stay.entry_event_id.clone(),
        reference_no: stay.reference_no.clone(),
        rate_no: None,
        parking_duration: None,
        amount: None,
        currency_code: None,
    }
}

fn exit_result(stay: &Stay, exit: &Exit) -> TransactionResult {
    TransactionResult {
        transaction_id: stay.id,
        event_id: exit.event_id.clone(),
        reference_no: stay.reference_no.clone(),
        rate_no: Some(exit.rate_no),
        parking_duration: Some(exit.duration_minutes),
        amount: Some(tariff::major_units(exit.amount_minor)),
        currency_code: Some(exit.currency_code.clone()),
    }
}

/// A vehicle entered a car park.
#[utoipa::path(post, path = "/api/v1/carparks/entries", tag = "carparks",
    request_body = super::report_schema::EntryBody,
    responses(
        (status = 201, description = "recorded; TransactionStarted is queued", body = TransactionResult),
        (status = 200, description = "the same entry again: the first result, nothing created", body = TransactionResult),
        (status = 403, description = "not equipment of this car park", body = ErrorBody),
        (status = 409, description = "the vehicle is inside already (another entry)", body = ErrorBody),
        (status = 422, description = "invalid fields or unknown car park", body = ErrorBody),
    ),
    security(("bearer" = ["equipment"])))]
async fn post_entry(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<TransactionResult>), AppError> {
    who.require(&[Role::Equipment])?;
    let report = Report::from_json(&body).map_err(AppError::Validation)?;
    let (lot, carpark) = carpark(&state, &who, &report).await?;
    let at = resolve_time(&report, &lot)?.unwrap_or_else(Timestamp::now);
    if let Some(answer) = answered_before(&state, &lot, &report, at).await? {
        return Ok(answer);
    }
    let owner = identifiers::owner_at(&state.store, &report.vehicle, lot.id, at).await?;
    let reference_no = owner.as_ref().map(|(_, r)| r.clone()).unwrap_or_else(|| {
        format!(
            "PH{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12].to_uppercase()
        )
    });
    let event_id = new_event_id();
    let payload = frames::transaction_started(
        &identity(
            &carpark,
            &report.vehicle.ticket_no,
            report.vehicle.ticket_type,
            &reference_no,
        ),
        at,
        &event_id,
    );
    let new = NewStay {
        lot_id: lot.id,
        vehicle: &report.vehicle,
        provider_id: owner.map(|(p, _)| p),
        reference_no: &reference_no,
        entry_at: at,
        event_id: &event_id,
        payload: &payload,
    };
    match store::insert_entry(&state.store, &state.events, &new).await {
        Ok(id) => {
            let result = TransactionResult {
                transaction_id: id,
                event_id,
                reference_no,
                rate_no: None,
                parking_duration: None,
                amount: None,
                currency_code: None,
            };
            Ok((StatusCode::CREATED, Json(result)))
        }
        // Another instance recorded an entry of this vehicle at the same moment.
        Err(AppError::Conflict { .. }) => match answered_before(&state, &lot, &report, at).await? {
            Some(answer) => Ok(answer),
            None => Err(AppError::conflict(
                "transaction_conflict",
                "a concurrent report changed this vehicle's stay; send it again",
            )),
        },
        Err(err) => Err(err),
    }
}

/// An entry's answer when the stays already say it: the same entry sent again gets the first
/// result (200); a vehicle inside already gets a 409.
async fn answered_before(
    state: &AppState,
    lot: &Lot,
    report: &Report,
    at: Timestamp,
) -> Result<Option<(StatusCode, Json<TransactionResult>)>, AppError> {
    let before = store::before_entry(&state.store, lot.id, &report.vehicle, at).await?;
    match (before.same, before.open) {
        (Some(stay), _) => Ok(Some((StatusCode::OK, Json(entry_result(&stay))))),
        (None, Some(open)) => Err(inside_already(&open)),
        (None, None) => Ok(None),
    }
}

fn inside_already(open: &Stay) -> AppError {
    AppError::conflict(
        "vehicle_inside",
        format!(
            "{} is inside this car park already: transaction {} since {}",
            open.ticket_no, open.id, open.entry_at
        ),
    )
}

/// The rate asked for, else the car park's default.
fn pick_rate(rates: Vec<Rate>, rate_no: Option<i64>, lot: &Lot) -> Result<Rate, AppError> {
    match rate_no {
        Some(n) => rates.into_iter().find(|r| r.rate_no == n).ok_or_else(|| {
            FieldErrors::single("rateNo", format!("car park {} has no rate {n}", lot.id))
        }),
        None => rates.into_iter().find(|r| r.is_default).ok_or_else(|| {
            FieldErrors::single(
                "rateNo",
                format!("car park {} has no rate: the operator must set one", lot.id),
            )
        }),
    }
}

/// What leaving at `at` costs: minutes with a permit for this lot are free.
async fn price_stay(
    state: &AppState,
    lot: &Lot,
    stay: &Stay,
    at: Timestamp,
    rate: &Rate,
) -> Result<tariff::Price, AppError> {
    let covered = if stay.ticket_type == PLATE {
        let plate = crate::domain::plate::normal_form(&stay.ticket_no);
        let held =
            crate::permits::store::held_by_plate(&state.store, &plate, lot.id, stay.entry_at, at)
                .await?;
        let covers: Vec<_> = held.iter().map(|p| p.cover()).collect();
        covered_intervals(&covers, lot.id, stay.entry_at, at)
    } else {
        Vec::new()
    };
    Ok(tariff::price(
        stay.entry_at,
        at,
        rate,
        &lot.time_zone,
        &covered,
    ))
}

/// A vehicle left a car park: the stay is priced and closed.
#[utoipa::path(post, path = "/api/v1/carparks/exits", tag = "carparks",
    request_body = super::report_schema::ExitBody,
    responses(
        (status = 201, description = "priced and closed; TransactionCompleted is queued", body = TransactionResult),
        (status = 200, description = "the same exit again: the same result", body = TransactionResult),
        (status = 403, description = "not equipment of this car park", body = ErrorBody),
        (status = 404, description = "no open transaction of this vehicle here", body = ErrorBody),
        (status = 422, description = "invalid fields, exit before entry, no such rate", body = ErrorBody),
    ),
    security(("bearer" = ["equipment"])))]
async fn post_exit(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<TransactionResult>), AppError> {
    who.require(&[Role::Equipment])?;
    let report = Report::from_json(&body).map_err(AppError::Validation)?;
    let (lot, carpark) = carpark(&state, &who, &report).await?;
    let requested = resolve_time(&report, &lot)?;
    let Some(stay) = store::open(&state.store, lot.id, &report.vehicle).await? else {
        return repeated_exit(&state, &lot, &report, requested).await;
    };
    let at = requested.unwrap_or_else(Timestamp::now);
    if at < stay.entry_at {
        return Err(FieldErrors::single(
            "time",
            format!("must not be before the entry at {}", stay.entry_at),
        ));
    }
    let rate = pick_rate(
        rates::list(&state.store, lot.id).await?,
        report.rate_no,
        &lot,
    )?;
    let price = price_stay(&state, &lot, &stay, at, &rate).await?;
    let exit = Exit {
        at,
        event_id: new_event_id(),
        rate_no: rate.rate_no,
        duration_minutes: price.duration_minutes,
        amount_minor: price.amount_minor,
        currency_code: rate.currency_code.clone(),
    };
    let payload = frames::transaction_completed(
        &identity(
            &carpark,
            &stay.ticket_no,
            stay.ticket_type,
            &stay.reference_no,
        ),
        &Completion {
            at,
            rate_no: exit.rate_no,
            duration_minutes: exit.duration_minutes,
            amount: tariff::major_units(exit.amount_minor),
        },
        &exit.event_id,
    );
    match store::close(&state.store, &state.events, &stay, &exit, &payload).await? {
        Some(_) => Ok((StatusCode::CREATED, Json(exit_result(&stay, &exit)))),
        None => repeated_exit(&state, &lot, &report, requested).await,
    }
}

/// No open stay: the same exit sent again gets the first answer; anything else is a 404.
async fn repeated_exit(
    state: &AppState,
    lot: &Lot,
    report: &Report,
    requested: Option<Timestamp>,
) -> Result<(StatusCode, Json<TransactionResult>), AppError> {
    let last = store::last_closed(&state.store, lot.id, &report.vehicle).await?;
    if let Some(stay) = last
        && let Some(exit) = &stay.exit
    {
        let same = match requested {
            Some(at) => at == exit.at,
            None => Timestamp::now().duration_since(exit.at) <= REPEAT_WINDOW,
        };
        if same {
            return Ok((StatusCode::OK, Json(exit_result(&stay, exit))));
        }
    }
    Err(AppError::NotFound(format!(
        "{} has no open transaction in car park {}/{}",
        report.vehicle.ticket_no, report.facility_no, report.carpark_no
    )))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quote {
    pub transaction_id: i64,
    pub reference_no: String,
    /// RFC 3339, UTC.
    pub entry_time: String,
    pub exit_time: String,
    pub rate_no: i64,
    pub parking_duration: i64,
    pub amount: f64,
    pub currency_code: String,
}

/// What leaving at `at` (default now) would cost, without closing anything.
#[utoipa::path(get, path = "/api/v1/carparks/quote", tag = "carparks",
    params(
        ("facilityNo" = i64, Query, minimum = 0, description = "the car park's facility number"),
        ("carparkNo" = i64, Query, minimum = 0, description = "the car park's number"),
        ("ticketNo" = String, Query, description = "plate or barcode text"),
        ("ticketType" = i64, Query, minimum = 4, maximum = 5, description = "4 or 5"),
        ("at" = Option<String>, Query, description = "ISO 8601; default now"),
        ("rateNo" = Option<i64>, Query, minimum = 1, description = "default: the car park's default rate"),
    ),
    responses(
        (status = 200, description = "the price", body = Quote),
        (status = 404, description = "no open transaction", body = ErrorBody),
        (status = 422, description = "invalid parameters", body = ErrorBody),
    ),
    security(("bearer" = ["equipment", "operator", "enforcement"])))]
async fn get_quote(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<Quote>, AppError> {
    who.require(&[Role::Equipment, Role::Operator, Role::Enforcement])?;
    let report = Report::from_query(&query).map_err(AppError::Validation)?;
    let (lot, _) = carpark(&state, &who, &report).await?;
    let at = resolve_time(&report, &lot)
        .map_err(|e| match e {
            AppError::Validation(errors) => AppError::Validation(errors.renamed("time", "at")),
            other => other,
        })?
        .unwrap_or_else(Timestamp::now);
    let stay = store::open(&state.store, lot.id, &report.vehicle)
        .await?
        .ok_or_else(|| {
            AppError::NotFound(format!(
                "{} has no open transaction here",
                report.vehicle.ticket_no
            ))
        })?;
    if at < stay.entry_at {
        return Err(FieldErrors::single(
            "at",
            format!("must not be before the entry at {}", stay.entry_at),
        ));
    }
    let rate = pick_rate(
        rates::list(&state.store, lot.id).await?,
        report.rate_no,
        &lot,
    )?;
    let price = price_stay(&state, &lot, &stay, at, &rate).await?;
    Ok(Json(Quote {
        transaction_id: stay.id,
        reference_no: stay.reference_no,
        entry_time: stay.entry_at.to_string(),
        exit_time: at.to_string(),
        rate_no: rate.rate_no,
        parking_duration: price.duration_minutes,
        amount: tariff::major_units(price.amount_minor),
        currency_code: rate.currency_code,
    }))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Occupancy {
    pub parking_lot_id: i64,
    pub name: String,
    pub facility_no: i64,
    pub carpark_no: i64,
    pub capacity: Option<i64>,
    /// Vehicles with an open transaction.
    pub inside: i64,
    /// Capacity minus inside, never below 0; null when the capacity is unknown.
    pub free: Option<i64>,
}

/// Every barrier car park: capacity, vehicles inside, free spaces.
#[utoipa::path(get, path = "/api/v1/carparks/occupancy", tag = "carparks",
    responses((status = 200, description = "per car park", body = Vec<Occupancy>)),
    security(("bearer" = ["operator", "enforcement"])))]
async fn get_occupancy(
    State(state): State<AppState>,
    who: Principal,
) -> Result<Json<Vec<Occupancy>>, AppError> {
    who.require(&[Role::Operator, Role::Enforcement])?;
    let rows = store::occupancy(&state.store).await?;
    Ok(Json(
        rows.into_iter()
            .map(|r| Occupancy {
                parking_lot_id: r.id,
                name: r.name,
                facility_no: r.facility_no,
                carpark_no: r.carpark_no,
                capacity: r.capacity,
                inside: r.inside,
                free: r.capacity.map(|c| (c - r.inside).max(0)),
            })
            .collect(),
    ))
}
