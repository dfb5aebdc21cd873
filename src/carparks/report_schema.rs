//! The documented shapes of the equipment's entry and exit bodies. They exist for the OpenAPI
//! document only: `transactions::Report::from_json` reads the bodies, naming every field that
//! is wrong.

#![allow(dead_code)]

/// The body of `POST /api/v1/carparks/entries`.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "ABC123", "ticketType": 4}))]
#[serde(rename_all = "camelCase")]
pub struct EntryBody {
    #[schema(minimum = 0)]
    facility_no: i64,
    #[schema(minimum = 0)]
    carpark_no: i64,
    /// The plate (ticketType 4) or the barcode text (5).
    #[schema(min_length = 1)]
    ticket_no: String,
    /// 4: licence plate, 5: barcode.
    #[schema(minimum = 4, maximum = 5)]
    ticket_type: i64,
    /// ISO 8601; no offset means the lot's local time; default now.
    time: Option<String>,
}

/// The body of `POST /api/v1/carparks/exits`: an entry's fields and the rate to price by.
#[derive(utoipa::ToSchema)]
#[schema(example = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "ABC123", "ticketType": 4, "rateNo": 1}))]
#[serde(rename_all = "camelCase")]
pub struct ExitBody {
    #[serde(flatten)]
    entry: EntryBody,
    /// Default: the car park's default rate.
    #[schema(minimum = 1)]
    rate_no: Option<i64>,
}
