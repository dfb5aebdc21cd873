//! Short-time tickets: mobile-payment providers push CreateOrUpdate and TicketCanceled events
//! and list their own tickets, exactly as the short-time tickets seed describes.

pub mod event;
pub mod store;

use axum::extract::State;
use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::event::TicketEvent;
use self::store::{Canceled, StoredTicket, TicketFilter, Upserted};
use crate::app::AppState;
use crate::domain::plate::normal_form;
use crate::http::error::ErrorBody;
use crate::http::paging::{PageMeta, Paging};
use crate::http::{AppError, FieldErrors, Json, Principal, QueryMap};
use crate::principals::Role;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(post_ticket_event, list_tickets))
}

/// The body of `POST /api/v1/actions/tickets` (documentation of the seed's contract; the
/// handler checks every field itself so each problem is named).
#[derive(utoipa::ToSchema)]
#[schema(example = json!({
    "eventType": "CreateOrUpdate",
    "ticketId": "01985f6f-eafd-7203-b14b-aad5c6c1e253",
    "parkingLotId": 12,
    "startDate": "2023-10-01T12:00:00Z",
    "endDate": "2023-10-01T12:00:00Z",
    "licenseNumber": "ABC123",
    "ticketCost": {"amountInclVat": 12000, "vatRate": 25, "currencyCode": "SEK"}
}))]
#[allow(dead_code)]
struct TicketEventBody {
    /// `CreateOrUpdate` or `TicketCanceled`.
    #[schema(rename = "eventType")]
    event_type: String,
    /// The provider's own id of the ticket: a string or an integer.
    #[schema(rename = "ticketId", value_type = Object)]
    ticket_id: Value,
    /// Required for CreateOrUpdate.
    #[schema(rename = "parkingLotId")]
    parking_lot_id: Option<i64>,
    /// ISO 8601 with `Z`, `+01:00` or `+0100`; without an offset, read in the lot's time zone.
    #[schema(rename = "startDate")]
    start_date: Option<String>,
    /// Optional: an open-ended ticket lasts until canceled.
    #[schema(rename = "endDate")]
    end_date: Option<String>,
    /// At most 20 characters.
    #[schema(rename = "licenseNumber")]
    license_number: Option<String>,
    #[schema(rename = "ticketCost")]
    ticket_cost: Option<TicketCostView>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketCostView {
    /// Minor units (öre, cents), VAT included.
    pub amount_incl_vat: i64,
    /// Percent, 0 to 100.
    pub vat_rate: i64,
    #[schema(example = "SEK")]
    pub currency_code: String,
}

/// A ticket as the provider lists it; dates in the lot's local time with its offset.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TicketView {
    pub zone_code: i64,
    pub parking_lot_id: i64,
    /// As sent.
    pub license_number: String,
    pub ticket_id: String,
    #[schema(example = "2025-02-10T12:00:00+01:00")]
    pub start_date: String,
    /// Null for an open-ended ticket.
    pub end_date: Option<String>,
    pub ticket_cost: Option<TicketCostView>,
    /// Unix seconds.
    pub created_at: i64,
    /// Unix seconds.
    pub updated_at: i64,
    /// `active` or `canceled`.
    pub status: &'static str,
    /// Unix seconds; null unless canceled.
    pub canceled_at: Option<i64>,
}

impl From<StoredTicket> for TicketView {
    fn from(t: StoredTicket) -> Self {
        Self {
            zone_code: t.zone_code,
            parking_lot_id: t.parking_lot_id,
            license_number: t.license_raw,
            ticket_id: t.ticket_id,
            start_date: t.time_zone.render(t.start),
            end_date: t.end.map(|end| t.time_zone.render(end)),
            ticket_cost: t.cost.map(|(amount, vat, currency)| TicketCostView {
                amount_incl_vat: amount,
                vat_rate: vat,
                currency_code: currency,
            }),
            created_at: t.created_at.as_second(),
            updated_at: t.updated_at.as_second(),
            status: if t.canceled_at.is_some() {
                "canceled"
            } else {
                "active"
            },
            canceled_at: t.canceled_at.map(|at| at.as_second()),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TicketPage {
    /// Always `ok`.
    pub status: &'static str,
    pub data: Vec<TicketView>,
    pub meta: PageMeta,
}

/// Create, update or cancel one of the caller's tickets.
#[utoipa::path(post, path = "/api/v1/actions/tickets", tag = "tickets",
    request_body = TicketEventBody,
    responses(
        (status = 200, description = "stored; the body is always `[]`", body = Vec<String>),
        (status = 400, description = "not JSON", body = ErrorBody),
        (status = 401, description = "missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "not a provider, or a lot this provider may not use", body = ErrorBody),
        (status = 404, description = "TicketCanceled for a ticket this provider never sent", body = ErrorBody),
        (status = 409, description = "CreateOrUpdate of a canceled ticket", body = ErrorBody),
        (status = 413, description = "body over 1 MiB", body = ErrorBody),
        (status = 415, description = "not application/json", body = ErrorBody),
        (status = 422, description = "invalid fields, each named", body = ErrorBody),
    ),
    security(("bearer" = ["provider"])))]
async fn post_ticket_event(
    State(state): State<AppState>,
    who: Principal,
    Json(body): Json<Value>,
) -> Result<Json<[(); 0]>, AppError> {
    who.require(&[Role::Provider])?;
    match TicketEvent::parse(&body).map_err(AppError::Validation)? {
        TicketEvent::CreateOrUpdate(data) => {
            let lot = crate::lots::store::get(&state.store, data.parking_lot_id)
                .await?
                .ok_or_else(|| {
                    FieldErrors::single(
                        "parkingLotId",
                        format!("no parking lot with id {}", data.parking_lot_id),
                    )
                })?;
            if !crate::principals::store::may_use_lot(&state.store, &who, lot.id).await? {
                return Err(AppError::Forbidden(format!(
                    "this provider may not sell tickets for parking lot {}",
                    lot.id
                )));
            }
            let ticket = data.resolve(&lot).map_err(AppError::Validation)?;
            match store::upsert(&state.store, who.id, &ticket).await? {
                Upserted::Stored => Ok(Json([])),
                Upserted::AlreadyCanceled => Err(AppError::conflict(
                    "ticket_canceled",
                    format!(
                        "ticket '{}' was canceled and stays canceled; send a new ticketId",
                        ticket.ticket_id.as_str()
                    ),
                )),
            }
        }
        TicketEvent::Canceled(ticket_id) => {
            match store::cancel(&state.store, who.id, ticket_id.as_str()).await? {
                Canceled::Canceled | Canceled::WasCanceled => Ok(Json([])),
                Canceled::NotFound => Err(AppError::NotFound(format!(
                    "this provider has no ticket '{}'",
                    ticket_id.as_str()
                ))),
            }
        }
    }
}

/// List the caller's tickets, oldest first, 50 a page.
#[utoipa::path(get, path = "/api/v1/actions/tickets", tag = "tickets",
    params(
        ("page" = Option<i64>, Query, minimum = 1, maximum = 1000000000, description = "1 or more; default 1"),
        ("perPage" = Option<i64>, Query, minimum = 1, maximum = 500, description = "1 to 500; default 50"),
        ("licenseNumber" = Option<String>, Query, description = "matched in plate normal form"),
        ("parkingLotId" = Option<i64>, Query, minimum = 1, maximum = 2147483647, description = "only this lot's tickets"),
        ("updatedSince" = Option<i64>, Query, minimum = 0, maximum = 253402300799.0, description = "unix seconds: only tickets updated at or after"),
    ),
    responses(
        (status = 200, description = "one page", body = TicketPage),
        (status = 401, description = "missing, malformed, unknown or revoked token", body = ErrorBody),
        (status = 403, description = "not a provider", body = ErrorBody),
        (status = 422, description = "a query parameter is invalid", body = ErrorBody),
    ),
    security(("bearer" = ["provider"])))]
async fn list_tickets(
    State(state): State<AppState>,
    who: Principal,
    query: QueryMap,
) -> Result<Json<TicketPage>, AppError> {
    who.require(&[Role::Provider])?;
    let mut errors = FieldErrors::new();
    let paging = Paging::from_query(&query, &mut errors);
    let parking_lot_id = query.int("parkingLotId", 1..=crate::lots::MAX_LOT_ID, &mut errors);
    let updated_since = query
        .int("updatedSince", 0..=253_402_300_799, &mut errors)
        .and_then(|s| Timestamp::from_second(s).ok());
    let license_norm = query.get("licenseNumber").map(normal_form);
    errors.into_result()?;
    let filter = TicketFilter {
        license_norm,
        parking_lot_id,
        updated_since,
    };
    let (tickets, total) = store::list(
        &state.store,
        who.id,
        &filter,
        paging.per_page,
        paging.offset(),
    )
    .await?;
    Ok(Json(TicketPage {
        status: "ok",
        data: tickets.into_iter().map(TicketView::from).collect(),
        meta: paging.meta(total),
    }))
}
