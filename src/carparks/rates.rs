//! Rates per car park: `PUT/GET/DELETE /api/v1/admin/parking-lots/{id}/rates[/{rateNo}]`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::tariff::{Band, BandSpec, Rate};
use crate::app::AppState;
use crate::domain::time::{parse_clock, render_clock, to_micros};
use crate::http::error::ErrorBody;
use crate::http::extract::path_id;
use crate::http::{AppError, FieldErrors, Json, Principal};
use crate::principals::Role;
use crate::store::{Param, Store, lookup};
use crate::tickets::event::CurrencyCode;
use crate::write_tx;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_rates))
        .routes(routes!(put_rate, delete_rate))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateInput {
    #[schema(example = "Standard", required = true, value_type = String)]
    pub name: Option<String>,
    /// ISO 4217, three upper-case letters.
    #[schema(example = "SEK", required = true, value_type = String, pattern = "^[A-Z]{3}$")]
    pub currency_code: Option<String>,
    /// The first minutes of every stay are free.
    #[schema(example = 15, required = true, value_type = i64, minimum = 0, maximum = 100000)]
    pub free_minutes: Option<i64>,
    #[schema(example = 60, required = true, value_type = i64, minimum = 1, maximum = 1440)]
    pub period_minutes: Option<i64>,
    /// Minor units per started period.
    #[schema(example = 2000, required = true, value_type = i64, minimum = 0, maximum = 100000000)]
    pub price_per_period: Option<i64>,
    /// Local times of day with their own period price; may cross midnight.
    pub bands: Option<Vec<BandSpec>>,
    /// Most a local calendar day costs, minor units.
    #[schema(example = 15000, minimum = 0, maximum = 1000000000)]
    pub max_per_day: Option<i64>,
    /// The car park's default rate (exactly one is).
    #[serde(rename = "default")]
    pub is_default: Option<bool>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateView {
    pub rate_no: i64,
    pub name: String,
    pub currency_code: String,
    pub free_minutes: i64,
    pub period_minutes: i64,
    pub price_per_period: i64,
    pub bands: Vec<BandSpec>,
    pub max_per_day: Option<i64>,
    #[serde(rename = "default")]
    pub is_default: bool,
}

impl From<&Rate> for RateView {
    fn from(r: &Rate) -> Self {
        Self {
            rate_no: r.rate_no,
            name: r.name.clone(),
            currency_code: r.currency_code.clone(),
            free_minutes: r.free_minutes,
            period_minutes: r.period_minutes,
            price_per_period: r.price_per_period,
            bands: r.bands.iter().map(band_spec).collect(),
            max_per_day: r.max_per_day,
            is_default: r.is_default,
        }
    }
}

fn band_spec(b: &Band) -> BandSpec {
    BandSpec {
        from: render_clock(b.from),
        to: render_clock(b.to),
        price_per_period: b.price_per_period,
    }
}

impl RateInput {
    /// A complete rate; every field but `bands`, `maxPerDay` and `default` is required.
    pub fn into_rate(self, rate_no: i64) -> Result<Rate, FieldErrors> {
        let mut errors = FieldErrors::new();
        let name = crate::principals::admin::check_name(self.name, &mut errors);
        let currency = match self.currency_code.as_deref() {
            None => {
                errors.add("currencyCode", "is required");
                None
            }
            Some(code) => CurrencyCode::parse(code)
                .map_err(|m| errors.add("currencyCode", m))
                .ok(),
        };
        let mut number =
            |value: Option<i64>, field: &str, range: std::ops::RangeInclusive<i64>| match value {
                None => {
                    errors.add(field, "is required");
                    0
                }
                Some(n) if !range.contains(&n) => {
                    errors.add(
                        field,
                        format!("must be between {} and {}", range.start(), range.end()),
                    );
                    0
                }
                Some(n) => n,
            };
        let free_minutes = number(self.free_minutes, "freeMinutes", 0..=100_000);
        let period_minutes = number(self.period_minutes, "periodMinutes", 1..=1440);
        let price_per_period = number(self.price_per_period, "pricePerPeriod", 0..=100_000_000);
        if self
            .max_per_day
            .is_some_and(|m| !(0..=1_000_000_000).contains(&m))
        {
            errors.add("maxPerDay", "must be between 0 and 1000000000");
        }
        let specs = self.bands.unwrap_or_default();
        if specs.len() > 24 {
            errors.add("bands", "must have at most 24 bands");
        }
        let mut bands = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let from = parse_clock(&spec.from, false);
            let to = parse_clock(&spec.to, true);
            if from.is_none() {
                errors.add(
                    &format!("bands[{i}].from"),
                    "must be a time HH:MM from 00:00 to 23:59",
                );
            }
            if to.is_none() {
                errors.add(
                    &format!("bands[{i}].to"),
                    "must be a time HH:MM from 00:00 to 24:00",
                );
            }
            if !(0..=100_000_000).contains(&spec.price_per_period) {
                errors.add(
                    &format!("bands[{i}].pricePerPeriod"),
                    "must be between 0 and 100000000",
                );
            }
            match (from, to) {
                (Some(f), Some(t)) if f == t => {
                    errors.add(&format!("bands[{i}].to"), "must differ from 'from'")
                }
                (Some(from), Some(to)) => bands.push(Band {
                    from,
                    to: to % 1440,
                    price_per_period: spec.price_per_period,
                }),
                _ => {}
            }
        }
        match currency {
            Some(currency) if errors.is_empty() => Ok(Rate {
                rate_no,
                name,
                currency_code: currency.as_str().to_owned(),
                free_minutes,
                period_minutes,
                price_per_period,
                bands,
                max_per_day: self.max_per_day,
                is_default: self.is_default.unwrap_or(false),
            }),
            _ => Err(errors),
        }
    }
}

crate::lookup_row! {
    struct RateRow {
        rate_no: i64,
        name: String,
        currency_code: String,
        free_minutes: i64,
        period_minutes: i64,
        price_per_period: i64,
        bands: String,
        max_per_day: Option<i64>,
        is_default: bool,
    }
}

impl RateRow {
    fn into_rate(self) -> Result<Rate, AppError> {
        let specs: Vec<BandSpec> = serde_json::from_str(&self.bands).map_err(AppError::internal)?;
        let bands = specs
            .iter()
            .filter_map(|s| {
                Some(Band {
                    from: parse_clock(&s.from, false)?,
                    to: parse_clock(&s.to, true)? % 1440,
                    price_per_period: s.price_per_period,
                })
            })
            .collect();
        Ok(Rate {
            rate_no: self.rate_no,
            name: self.name,
            currency_code: self.currency_code,
            free_minutes: self.free_minutes,
            period_minutes: self.period_minutes,
            price_per_period: self.price_per_period,
            bands,
            max_per_day: self.max_per_day,
            is_default: self.is_default,
        })
    }
}

/// A lot's rates by number; the default is the one marked so, else the lowest number.
pub async fn list(store: &Store, lot_id: i64) -> Result<Vec<Rate>, AppError> {
    // Every exit and quote asks: on SQLite it runs where it is asked.
    let rows: Vec<RateRow> = lookup::all(
        store,
        "SELECT rate_no, name, currency_code, free_minutes, period_minutes, price_per_period, \
                bands, max_per_day, is_default \
         FROM rates WHERE parking_lot_id = $1 ORDER BY rate_no",
        &[Param::Int(lot_id)],
    )
    .await?;
    let mut rates: Vec<Rate> = rows
        .into_iter()
        .map(RateRow::into_rate)
        .collect::<Result<_, _>>()?;
    if !rates.iter().any(|r| r.is_default)
        && let Some(first) = rates.first_mut()
    {
        first.is_default = true;
    }
    Ok(rates)
}

/// Stores a rate; a rate marked default takes that from the others. True when it is new.
pub async fn upsert(store: &Store, lot_id: i64, rate: &Rate) -> Result<bool, AppError> {
    let bands = serde_json::to_string(&rate.bands.iter().map(band_spec).collect::<Vec<_>>())
        .map_err(AppError::internal)?;
    let now = to_micros(Timestamp::now());
    Ok(write_tx!(store, |tx| {
        if rate.is_default {
            sqlx::query(
                "UPDATE rates SET is_default = FALSE WHERE parking_lot_id = $1 AND rate_no <> $2",
            )
            .bind(lot_id)
            .bind(rate.rate_no)
            .execute(&mut *tx)
            .await?;
        }
        let existed: Option<i64> = sqlx::query_scalar(
            "SELECT rate_no FROM rates WHERE parking_lot_id = $1 AND rate_no = $2",
        )
        .bind(lot_id)
        .bind(rate.rate_no)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO rates (parking_lot_id, rate_no, name, currency_code, free_minutes, period_minutes, \
                 price_per_period, bands, max_per_day, is_default, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (parking_lot_id, rate_no) DO UPDATE SET name = excluded.name, \
                 currency_code = excluded.currency_code, free_minutes = excluded.free_minutes, \
                 period_minutes = excluded.period_minutes, price_per_period = excluded.price_per_period, \
                 bands = excluded.bands, max_per_day = excluded.max_per_day, \
                 is_default = excluded.is_default, updated_at = excluded.updated_at",
        )
        .bind(lot_id)
        .bind(rate.rate_no)
        .bind(&rate.name)
        .bind(&rate.currency_code)
        .bind(rate.free_minutes)
        .bind(rate.period_minutes)
        .bind(rate.price_per_period)
        .bind(&bands)
        .bind(rate.max_per_day)
        .bind(rate.is_default)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        existed.is_none()
    }))
}

async fn remove(store: &Store, lot_id: i64, rate_no: i64) -> Result<bool, AppError> {
    Ok(write_tx!(store, |tx| {
        sqlx::query("DELETE FROM rates WHERE parking_lot_id = $1 AND rate_no = $2")
            .bind(lot_id)
            .bind(rate_no)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            == 1
    }))
}

async fn lot_id(state: &AppState, raw: &str) -> Result<i64, AppError> {
    let not_found = || AppError::NotFound(format!("no parking lot with id '{raw}'"));
    let id = path_id(raw, "parking lot").map_err(|_| not_found())?;
    crate::lots::store::get(&state.store, id)
        .await?
        .ok_or_else(not_found)?;
    Ok(id)
}

fn rate_no(raw: &str) -> Result<i64, AppError> {
    match raw.parse::<i64>() {
        Ok(n) if (1..=999_999).contains(&n) => Ok(n),
        _ => Err(FieldErrors::single(
            "rateNo",
            "must be a whole number from 1 to 999999",
        )),
    }
}

/// The lot's rates.
#[utoipa::path(get, path = "/api/v1/admin/parking-lots/{id}/rates", tag = "carparks",
    params(("id" = i64, Path, description = "the lot's id")),
    responses(
        (status = 200, description = "the rates", body = Vec<RateView>),
        (status = 404, description = "no such lot", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn list_rates(
    State(state): State<AppState>,
    who: Principal,
    Path(id): Path<String>,
) -> Result<Json<Vec<RateView>>, AppError> {
    who.require(&[Role::Operator])?;
    let lot = lot_id(&state, &id).await?;
    Ok(Json(
        list(&state.store, lot)
            .await?
            .iter()
            .map(RateView::from)
            .collect(),
    ))
}

/// Create or replace a rate (201 new, 200 replaced).
#[utoipa::path(put, path = "/api/v1/admin/parking-lots/{id}/rates/{rateNo}", tag = "carparks",
    params(
        ("id" = i64, Path, description = "the lot's id"),
        ("rateNo" = i64, Path, minimum = 1, maximum = 999999, description = "the rate's number, 1 to 999999"),
    ),
    request_body = RateInput,
    responses(
        (status = 201, description = "created", body = RateView),
        (status = 200, description = "replaced", body = RateView),
        (status = 404, description = "no such lot", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn put_rate(
    State(state): State<AppState>,
    who: Principal,
    Path((id, raw_rate)): Path<(String, String)>,
    Json(input): Json<RateInput>,
) -> Result<(StatusCode, Json<RateView>), AppError> {
    who.require(&[Role::Operator])?;
    let lot = lot_id(&state, &id).await?;
    let rate = input
        .into_rate(rate_no(&raw_rate)?)
        .map_err(AppError::Validation)?;
    let created = upsert(&state.store, lot, &rate).await?;
    let stored = list(&state.store, lot)
        .await?
        .into_iter()
        .find(|r| r.rate_no == rate.rate_no)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("rate vanished")))?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(RateView::from(&stored))))
}

/// Delete a rate.
#[utoipa::path(delete, path = "/api/v1/admin/parking-lots/{id}/rates/{rateNo}", tag = "carparks",
    params(
        ("id" = i64, Path, description = "the lot's id"),
        ("rateNo" = i64, Path, description = "the rate's number"),
    ),
    responses(
        (status = 204, description = "deleted"),
        (status = 404, description = "no such lot or rate", body = ErrorBody),
    ),
    security(("bearer" = ["operator"])))]
async fn delete_rate(
    State(state): State<AppState>,
    who: Principal,
    Path((id, raw_rate)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    who.require(&[Role::Operator])?;
    let lot = lot_id(&state, &id).await?;
    let not_found = || AppError::NotFound(format!("lot {lot} has no rate '{raw_rate}'"));
    let number = rate_no(&raw_rate).map_err(|_| not_found())?;
    if remove(&state.store, lot, number).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}
