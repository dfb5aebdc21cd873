//! Frictionless identifiers: a provider registers a plate (TicketType 4) or QR barcode (5) so
//! that the transactions of that vehicle are streamed to it. Modelled on the vendor's "multiple
//! use identifier". One identifier belongs to one provider for overlapping validity.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::Vehicle;
use crate::app::AppState;
use crate::domain::DateTimeInput;
use crate::domain::time::{from_micros, to_micros};
use crate::http::error::ErrorBody;
use crate::http::paging::{PageMeta, Paging};
use crate::http::{AppError, FieldErrors, Json, Principal, QueryMap};
use crate::principals::Role;
use crate::store::{Param, Store, lookup};
use crate::{read, write_tx};

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(put_identifier, list_identifiers))
        .routes(routes!(delete_identifier))
}

/// `PUT /api/v1/identifiers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentifierInput {
    /// The plate or the barcode text.
    #[schema(example = "ABC123")]
    pub ticket_no: Option<String>,
    /// 4 = licence plate, 5 = barcode.
    #[schema(example = 4)]
    pub ticket_type: Option<i64>,
    /// Lot ids; every lot this provider may use when absent.
    #[schema(example = json!([12]))]
    pub valid_carparks: Option<Vec<i64>>,
    /// ISO 8601 with an offset; open when absent.
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    /// The provider's reference, sent back in every event; generated when absent.
    pub reference_no: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IdentifierView {
    pub ticket_no: String,
    pub ticket_type: i64,
    pub valid_carparks: Option<Vec<i64>>,
    /// RFC 3339, UTC.
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    pub reference_no: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IdentifierPage {
    pub status: &'static str,
    pub data: Vec<IdentifierView>,
    pub meta: PageMeta,
}

/// A valid identifier claim.
#[derive(Debug, Clone)]
pub struct Claim {
    pub vehicle: Vehicle,
    pub valid_carparks: Option<Vec<i64>>,
    pub valid_from: Option<Timestamp>,
    pub valid_until: Option<Timestamp>,
    pub reference_no: String,
}

fn instant(text: Option<&str>, field: &str, errors: &mut FieldErrors) -> Option<Timestamp> {
    match DateTimeInput::parse(text?) {
        Ok(DateTimeInput::Absolute(ts)) => Some(ts),
        Ok(DateTimeInput::Local(_)) => {
            errors.add(field, "must have an offset or Z: an identifier may be valid in lots of several time zones");
            None
        }
        Err(m) => {
            errors.add(field, m);
            None
        }
    }
}

impl IdentifierInput {
    pub fn into_claim(self) -> Result<Claim, FieldErrors> {
        let mut errors = FieldErrors::new();
        let mut body = serde_json::Map::new();
        body.insert(
            "ticketNo".into(),
            self.ticket_no.map_or(Value::Null, Value::String),
        );
        body.insert(
            "ticketType".into(),
            self.ticket_type.map_or(Value::Null, Value::from),
        );
        let vehicle = Vehicle::from_json(&Value::Object(body), &mut errors);
        let valid_from = instant(self.valid_from.as_deref(), "validFrom", &mut errors);
        let valid_until = instant(self.valid_until.as_deref(), "validUntil", &mut errors);
        if let (Some(from), Some(until)) = (valid_from, valid_until)
            && until <= from
        {
            errors.add("validUntil", "must be after validFrom");
        }
        if let Some(lots) = &self.valid_carparks
            && (lots.is_empty() || lots.len() > 1000)
        {
            errors.add(
                "validCarparks",
                "must list 1 to 1000 lot ids (leave it out for every lot)",
            );
        }
        let reference_no = match self.reference_no.as_deref().map(str::trim) {
            None | Some("") => format!(
                "PH{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12].to_uppercase()
            ),
            Some(r) if r.chars().count() > 64 => {
                errors.add("referenceNo", "must be at most 64 characters");
                String::new()
            }
            Some(r) => r.to_owned(),
        };
        match vehicle {
            Some(vehicle) if errors.is_empty() => Ok(Claim {
                vehicle,
                valid_carparks: self.valid_carparks.map(|mut l| {
                    l.sort_unstable();
                    l.dedup();
                    l
                }),
                valid_from,
                valid_until,
                reference_no,
            }),
            _ => Err(errors),
        }
    }
}

/// Do two validity ranges (open ends unbounded) overlap?
pub fn overlaps(a: (Option<i64>, Option<i64>), b: (Option<i64>, Option<i64>)) -> bool {
    let (a_from, a_until) = (a.0.unwrap_or(i64::MIN), a.1.unwrap_or(i64::MAX));
    let (b_from, b_until) = (b.0.unwrap_or(i64::MIN), b.1.unwrap_or(i64::MAX));
    a_from < b_until && b_from < a_until
}

crate::lookup_row! {
    struct IdentifierRow {
        provider_id: i64,
        ticket_no: String,
        ticket_type: i64,
        valid_carparks: Option<String>,
        valid_from: Option<i64>,
        valid_until: Option<i64>,
        reference_no: String,
    }
}

impl IdentifierRow {
    fn lots(&self) -> Option<Vec<i64>> {
        self.valid_carparks
            .as_deref()
            .and_then(|t| serde_json::from_str(t).ok())
    }

    fn view(&self) -> IdentifierView {
        IdentifierView {
            ticket_no: self.ticket_no.clone(),
            ticket_type: self.ticket_type,
            valid_carparks: self.lots(),
            valid_from: self.valid_from.map(|t| from_micros(t).to_string()),
            valid_until: self.valid_until.map(|t| from_micros(t).to_string()),
            reference_no: self.reference_no.clone(),
        }
    }
}

/// The columns of an [`IdentifierRow`], in its order; a macro so statements can be put
/// together at compile time.
macro_rules! identifier_columns {
    () => {
        "provider_id, ticket_no, ticket_type, valid_carparks, valid_from, valid_until, reference_no"
    };
}
const COLUMNS: &str = identifier_columns!();

/// Stores the claim for `provider`: 409 when another provider holds the identifier for an
/// overlapping time. Claims of one identifier are serialised on its `identifier_keys` row.
async fn upsert(store: &Store, provider: i64, claim: &Claim) -> Result<bool, AppError> {
    let now = to_micros(Timestamp::now());
    let lots = claim
        .valid_carparks
        .as_ref()
        .map(|l| serde_json::to_string(l).unwrap_or_default());
    let range = (
        claim.valid_from.map(to_micros),
        claim.valid_until.map(to_micros),
    );
    Ok(write_tx!(store, |tx| {
        sqlx::query("INSERT INTO identifier_keys (ticket_type, ticket_key) VALUES ($1, $2) ON CONFLICT (ticket_type, ticket_key) DO NOTHING")
            .bind(claim.vehicle.ticket_type)
            .bind(&claim.vehicle.key)
            .execute(&mut *tx)
            .await?;
        sqlx::query("UPDATE identifier_keys SET claims = claims + 1 WHERE ticket_type = $1 AND ticket_key = $2")
            .bind(claim.vehicle.ticket_type)
            .bind(&claim.vehicle.key)
            .execute(&mut *tx)
            .await?;
        let others: Vec<IdentifierRow> = sqlx::query_as(&format!(
            "SELECT {COLUMNS} FROM identifiers WHERE ticket_type = $1 AND ticket_key = $2 AND provider_id <> $3"
        ))
        .bind(claim.vehicle.ticket_type)
        .bind(&claim.vehicle.key)
        .bind(provider)
        .fetch_all(&mut *tx)
        .await?;
        if others
            .iter()
            .any(|o| overlaps((o.valid_from, o.valid_until), range))
        {
            return Err(AppError::conflict(
                "identifier_taken",
                format!(
                    "{} is registered by another provider for an overlapping time",
                    claim.vehicle.ticket_no
                ),
            ));
        }
        let existed: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM identifiers WHERE provider_id = $1 AND ticket_type = $2 AND ticket_key = $3",
        )
        .bind(provider)
        .bind(claim.vehicle.ticket_type)
        .bind(&claim.vehicle.key)
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO identifiers (provider_id, ticket_type, ticket_no, ticket_key, valid_carparks, \
                 valid_from, valid_until, reference_no, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
             ON CONFLICT (provider_id, ticket_type, ticket_key) DO UPDATE SET \
                 ticket_no = excluded.ticket_no, valid_carparks = excluded.valid_carparks, \
                 valid_from = excluded.valid_from, valid_until = excluded.valid_until, \
                 reference_no = excluded.reference_no, updated_at = excluded.updated_at",
        )
        .bind(provider)
        .bind(claim.vehicle.ticket_type)
        .bind(&claim.vehicle.ticket_no)
        .bind(&claim.vehicle.key)
        .bind(&lots)
        .bind(range.0)
        .bind(range.1)
        .bind(&claim.reference_no)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        existed.is_none()
    }))
}

/// The provider whose identifier matches this vehicle at `at` for `lot`, with its reference.
/// An identifier without `validCarparks` applies where its provider may act.
pub async fn owner_at(
    store: &Store,
    vehicle: &Vehicle,
    lot: i64,
    at: Timestamp,
) -> Result<Option<(i64, String)>, AppError> {
    const SQL: &str = concat!(
        "SELECT ",
        identifier_columns!(),
        " FROM identifiers WHERE ticket_type = $1 AND ticket_key = $2 ORDER BY id"
    );
    let rows: Vec<IdentifierRow> = lookup::all(
        store,
        SQL,
        &[Param::Int(vehicle.ticket_type), Param::Text(&vehicle.key)],
    )
    .await?;
    let at = to_micros(at);
    for row in rows {
        if !overlaps((row.valid_from, row.valid_until), (Some(at), Some(at + 1))) {
            continue;
        }
        let applies = match row.lots() {
            Some(lots) => lots.contains(&lot),
            None => {
                match crate::principals::store::get(store, Role::Provider, row.provider_id).await? {
                    Some(provider) => {
                        crate::principals::store::may_use_lot(store, &provider, lot).await?
                    }
                    None => false,
                }
            }
        };
        if applies {
            return Ok(Some((row.provider_id, row.reference_no)));
        }
    }
    Ok(None)
}

/// Register or update one of the caller's identifiers (201 new, 200 updated).
#[utoipa::path(put, path = "/api/v1/identifiers", tag = "carparks",
    request_body = IdentifierInput,
    responses(
        (status = 201, description = "registered", body = IdentifierView),
        (status = 200, description = "updated", body = IdentifierView),
        (status = 403, description = "not a provider, or a lot it may not use", body = ErrorBody),
        (status = 409, description = "another provider holds it for an overlapping time", body = ErrorBody),
        (status = 422, description = "invalid fields", body = ErrorBody),
    ),
    security(("bearer" = ["provider"])))]
async fn put_identifier(
    State(state): State<AppState>,
    who: Principal,
    Json(input): Json<IdentifierInput>,
) -> Result<(StatusCode, Json<IdentifierView>), AppError> {
    who.require(&[Role::Provider])?;
    let claim = input.into_claim().map_err(AppError::Validation)?;
    if let Some(lots) = &claim.valid_carparks {
        for lot in lots {
            if crate::lots::store::get(&state.store, *lot).await?.is_none() {
                return Err(FieldErrors::single(
                    "validCarparks",
                    format!("has an unknown lot id: {lot}"),
                ));
            }
            if !crate::principals::store::may_use_lot(&state.store, &who, *lot).await? {
                return Err(AppError::Forbidden(format!(
                    "this provider may not act at lot {lot}"
                )));
            }
        }
    }
    let created = upsert(&state.store, who.id, &claim).await?;
    let view = IdentifierView {
        ticket_no: claim.vehicle.ticket_no,
        ticket_type: claim.vehicle.ticket_type,
        valid_carparks: claim.valid_carparks,
        valid_from: claim.valid_from.map(|t| t.to_string()),
        valid_until: claim.valid_until.map(|t| t.to_string()),
        reference_no: claim.reference_no,
    };
    Ok((
        if created {
            StatusCode::CREATED
        } else {
            StatusCode::OK
        },
        Json(view),
    ))
}

/// The caller's identifiers, 50 a page.
#[utoipa::path(get, path = "/api/v1/identifiers", tag = "carparks",
    params(
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1000000000, description = "1 or more"),
        ("perPage" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1 to 500; default 50"),
    ),
    responses(
        (status = 200, description = "one page", body = IdentifierPage),
        (status = 422, description = "invalid page", body = ErrorBody),
    ),
    security(("bearer" = ["provider"])))]
async fn list_identifiers(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<IdentifierPage>, AppError> {
    who.require(&[Role::Provider])?;
    let mut errors = FieldErrors::new();
    let paging = Paging::from_query(&query, &mut errors);
    errors.into_result()?;
    let (rows, total): (Vec<IdentifierRow>, i64) = read!(&state.store, |db| {
        let rows = sqlx::query_as(&format!("SELECT {COLUMNS} FROM identifiers WHERE provider_id = $1 ORDER BY id LIMIT $2 OFFSET $3"))
            .bind(who.id)
            .bind(paging.per_page)
            .bind(paging.offset())
            .fetch_all(db)
            .await?;
        let total = sqlx::query_scalar("SELECT COUNT(*) FROM identifiers WHERE provider_id = $1")
            .bind(who.id)
            .fetch_one(db)
            .await?;
        (rows, total)
    });
    Ok(Json(IdentifierPage {
        status: "ok",
        data: rows.iter().map(IdentifierRow::view).collect(),
        meta: paging.meta(total),
    }))
}

/// Remove one of the caller's identifiers; later transactions of it are no longer streamed.
#[utoipa::path(delete, path = "/api/v1/identifiers/{ticketType}/{ticketNo}", tag = "carparks",
    params(
        ("ticketType" = i64, Path, description = "4 or 5"),
        ("ticketNo" = String, Path, description = "the plate (any spelling) or barcode text"),
    ),
    responses(
        (status = 204, description = "removed"),
        (status = 404, description = "no such identifier of this provider", body = ErrorBody),
    ),
    security(("bearer" = ["provider"])))]
async fn delete_identifier(
    State(state): State<AppState>,
    who: Principal,
    Path((ticket_type, ticket_no)): Path<(String, String)>,
) -> Result<StatusCode, AppError> {
    who.require(&[Role::Provider])?;
    let not_found = || {
        AppError::NotFound(format!(
            "this provider has no identifier {ticket_type}/{ticket_no}"
        ))
    };
    let vehicle = ticket_type
        .parse::<i64>()
        .ok()
        .and_then(|t| Vehicle::parse(&ticket_no, t).ok())
        .ok_or_else(not_found)?;
    let removed = write_tx!(&state.store, |tx| {
        sqlx::query("DELETE FROM identifiers WHERE provider_id = $1 AND ticket_type = $2 AND ticket_key = $3")
            .bind(who.id)
            .bind(vehicle.ticket_type)
            .bind(&vehicle.key)
            .execute(&mut *tx)
            .await?
            .rows_affected()
    });
    if removed == 1 {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_found())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_ends_overlap_everything_they_reach() {
        assert!(overlaps((None, None), (Some(5), Some(6))));
        assert!(overlaps((Some(0), Some(10)), (Some(9), None)));
        assert!(
            !overlaps((Some(0), Some(10)), (Some(10), None)),
            "until is exclusive"
        );
        assert!(!overlaps((None, Some(5)), (Some(5), Some(7))));
    }

    #[test]
    fn claims_need_a_valid_vehicle_and_offsets() {
        let input = |no: &str, t: i64, from: Option<&str>| IdentifierInput {
            ticket_no: Some(no.into()),
            ticket_type: Some(t),
            valid_carparks: None,
            valid_from: from.map(str::to_owned),
            valid_until: None,
            reference_no: None,
        };
        let claim = input("abc 123", 4, Some("2025-01-01T00:00:00Z"))
            .into_claim()
            .unwrap();
        assert_eq!(claim.vehicle.key, "ABC123");
        assert!(claim.reference_no.starts_with("PH"));
        assert!(
            input("abc", 9, None)
                .into_claim()
                .unwrap_err()
                .contains("ticketType")
        );
        assert!(
            input("abc", 4, Some("2025-01-01T00:00:00"))
                .into_claim()
                .unwrap_err()
                .contains("validFrom")
        );
    }
}
