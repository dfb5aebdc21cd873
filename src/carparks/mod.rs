//! Barrier car parks: rates, equipment, frictionless identifiers, and the entries and exits
//! that become priced transactions with TransactionStarted / TransactionCompleted events.

pub mod equipment;
pub mod identifiers;
pub mod rates;
mod report_schema;
pub mod store;
pub mod tariff;
pub mod transactions;

use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;
use crate::domain::LicensePlate;
use crate::http::FieldErrors;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(rates::routes())
        .merge(equipment::routes())
        .merge(identifiers::routes())
        .merge(transactions::routes())
}

pub const PLATE: i64 = 4;
pub const BARCODE: i64 = 5;
const MAX_BARCODE_CHARS: usize = 255;

/// What equipment reads at the barrier: a licence plate (TicketType 4) or a QR barcode (5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vehicle {
    pub ticket_type: i64,
    /// As read.
    pub ticket_no: String,
    /// What it is matched by: the plate's normal form, or the barcode text.
    pub key: String,
}

impl Vehicle {
    pub fn parse(ticket_no: &str, ticket_type: i64) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let key = match ticket_type {
            PLATE => LicensePlate::parse(ticket_no)
                .map(|p| p.normal().to_owned())
                .map_err(|e| errors.add("ticketNo", e.to_string()))
                .ok(),
            BARCODE => {
                let text = ticket_no.trim();
                if text.is_empty() || text.chars().count() > MAX_BARCODE_CHARS {
                    errors.add(
                        "ticketNo",
                        format!("must be 1 to {MAX_BARCODE_CHARS} characters of barcode text"),
                    );
                    None
                } else {
                    Some(text.to_owned())
                }
            }
            _ => {
                errors.add("ticketType", "must be 4 (licence plate) or 5 (barcode)");
                None
            }
        };
        match key {
            Some(key) if errors.is_empty() => Ok(Self {
                ticket_type,
                ticket_no: ticket_no.to_owned(),
                key,
            }),
            _ => Err(errors),
        }
    }

    /// From a JSON body's `ticketNo` and `ticketType`, naming what is wrong.
    pub fn from_json(body: &Value, errors: &mut FieldErrors) -> Option<Self> {
        let ticket_no = match body.get("ticketNo") {
            None | Some(Value::Null) => {
                errors.add("ticketNo", "is required");
                None
            }
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => {
                errors.add("ticketNo", "must be a string");
                None
            }
        };
        let ticket_type = match body.get("ticketType") {
            None | Some(Value::Null) => {
                errors.add("ticketType", "is required");
                None
            }
            Some(v) => match v.as_i64() {
                Some(t) => Some(t),
                None => {
                    errors.add("ticketType", "must be 4 (licence plate) or 5 (barcode)");
                    None
                }
            },
        };
        match Vehicle::parse(&ticket_no?, ticket_type?) {
            Ok(vehicle) => Some(vehicle),
            Err(more) => {
                errors.extend(more);
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plates_match_in_normal_form_and_barcodes_as_text() {
        assert_eq!(Vehicle::parse("abc-123", PLATE).unwrap().key, "ABC123");
        assert_eq!(
            Vehicle::parse("abc-123", PLATE).unwrap().ticket_no,
            "abc-123"
        );
        assert_eq!(Vehicle::parse(" QR:xyz ", BARCODE).unwrap().key, "QR:xyz");
        assert!(
            Vehicle::parse("ABC123", 3)
                .unwrap_err()
                .contains("ticketType")
        );
        assert!(Vehicle::parse("", PLATE).unwrap_err().contains("ticketNo"));
        assert!(
            Vehicle::parse(" ", BARCODE)
                .unwrap_err()
                .contains("ticketNo")
        );
    }
}
