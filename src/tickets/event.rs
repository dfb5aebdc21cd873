//! A ticket event as a provider sends it, parsed once at the edge: after [`TicketEvent::parse`]
//! and [`TicketData::resolve`] the code holds only valid tickets.

use jiff::Timestamp;
use serde_json::{Map, Value};

use crate::domain::{DateTimeInput, LicensePlate};
use crate::http::FieldErrors;
use crate::lots::Lot;

const MAX_TICKET_ID_CHARS: usize = 255;

/// The provider's own identifier of a ticket; sent as a JSON string or integer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketId(String);

impl TicketId {
    pub fn parse(value: &Value) -> Result<Self, String> {
        match value {
            Value::String(s) if s.trim().is_empty() => Err("must not be blank".into()),
            Value::String(s) if s.chars().count() > MAX_TICKET_ID_CHARS => {
                Err(format!("must be at most {MAX_TICKET_ID_CHARS} characters"))
            }
            Value::String(s) => Ok(Self(s.clone())),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Self(n.to_string())),
            _ => Err("must be a string or an integer".into()),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Three upper-case letters, e.g. `SEK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrencyCode(String);

impl CurrencyCode {
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.len() == 3 && text.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(text.to_owned()))
        } else {
            Err("must be three upper-case letters, e.g. SEK".into())
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketCost {
    /// Minor units (öre, cents).
    pub amount_incl_vat: i64,
    /// Percent, 0 to 100.
    pub vat_rate: i64,
    pub currency: CurrencyCode,
}

/// A CreateOrUpdate as sent: its times may still be local times of the lot.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketData {
    pub ticket_id: TicketId,
    pub parking_lot_id: i64,
    pub start: DateTimeInput,
    pub end: Option<DateTimeInput>,
    pub plate: LicensePlate,
    pub cost: Option<TicketCost>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TicketEvent {
    CreateOrUpdate(TicketData),
    Canceled(TicketId),
}

/// A ticket ready to store: every instant resolved, every rule checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidTicket {
    pub ticket_id: TicketId,
    pub parking_lot_id: i64,
    pub start: Timestamp,
    pub end: Option<Timestamp>,
    pub plate: LicensePlate,
    pub cost: Option<TicketCost>,
}

impl TicketEvent {
    /// Checks the body's shape and every field that can be checked without the database;
    /// all problems are reported at once.
    pub fn parse(body: &Value) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let Some(obj) = body.as_object() else {
            errors.add("body", "must be a JSON object");
            return Err(errors);
        };
        let ticket_id = required(obj, "ticketId", &mut errors).and_then(|v| {
            TicketId::parse(v)
                .map_err(|m| errors.add("ticketId", m))
                .ok()
        });
        let event_type = required(obj, "eventType", &mut errors).and_then(|v| match v.as_str() {
            Some(t @ ("CreateOrUpdate" | "TicketCanceled")) => Some(t),
            _ => {
                errors.add("eventType", "must be CreateOrUpdate or TicketCanceled");
                None
            }
        });
        match event_type {
            Some("TicketCanceled") => match ticket_id {
                Some(id) if errors.is_empty() => Ok(Self::Canceled(id)),
                _ => Err(errors),
            },
            Some(_) => {
                let data = parse_data(obj, ticket_id, &mut errors);
                match data {
                    Some(data) if errors.is_empty() => Ok(Self::CreateOrUpdate(data)),
                    _ => Err(errors),
                }
            }
            None => Err(errors),
        }
    }
}

fn required<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    errors: &mut FieldErrors,
) -> Option<&'a Value> {
    match obj.get(field) {
        None | Some(Value::Null) => {
            errors.add(field, "is required");
            None
        }
        Some(v) => Some(v),
    }
}

fn optional<'a>(obj: &'a Map<String, Value>, field: &str) -> Option<&'a Value> {
    obj.get(field).filter(|v| !v.is_null())
}

fn date_time(value: &Value, field: &str, errors: &mut FieldErrors) -> Option<DateTimeInput> {
    let Some(text) = value.as_str() else {
        errors.add(field, "must be a string with an ISO 8601 date-time");
        return None;
    };
    DateTimeInput::parse(text)
        .map_err(|m| errors.add(field, m))
        .ok()
}

fn integer(
    value: &Value,
    field: &str,
    range: std::ops::RangeInclusive<i64>,
    errors: &mut FieldErrors,
) -> Option<i64> {
    match value.as_i64() {
        Some(n) if range.contains(&n) => Some(n),
        Some(_) if *range.end() == i64::MAX => {
            errors.add(field, format!("must be {} or more", range.start()));
            None
        }
        Some(_) => {
            errors.add(
                field,
                format!("must be between {} and {}", range.start(), range.end()),
            );
            None
        }
        None => {
            errors.add(field, "must be an integer");
            None
        }
    }
}

fn parse_data(
    obj: &Map<String, Value>,
    ticket_id: Option<TicketId>,
    errors: &mut FieldErrors,
) -> Option<TicketData> {
    let parking_lot_id = required(obj, "parkingLotId", errors)
        .and_then(|v| integer(v, "parkingLotId", 1..=crate::lots::MAX_LOT_ID, errors));
    let start = required(obj, "startDate", errors).and_then(|v| date_time(v, "startDate", errors));
    let end = optional(obj, "endDate").map(|v| date_time(v, "endDate", errors));
    let plate = required(obj, "licenseNumber", errors).and_then(|v| match v.as_str() {
        Some(text) => LicensePlate::parse(text)
            .map_err(|e| errors.add("licenseNumber", e.to_string()))
            .ok(),
        None => {
            errors.add("licenseNumber", "must be a string");
            None
        }
    });
    let cost = optional(obj, "ticketCost").map(|v| parse_cost(v, errors));
    Some(TicketData {
        ticket_id: ticket_id?,
        parking_lot_id: parking_lot_id?,
        start: start?,
        end: match end {
            None => None,
            Some(parsed) => Some(parsed?),
        },
        plate: plate?,
        cost: match cost {
            None => None,
            Some(parsed) => Some(parsed?),
        },
    })
}

fn parse_cost(value: &Value, errors: &mut FieldErrors) -> Option<TicketCost> {
    let Some(obj) = value.as_object() else {
        errors.add(
            "ticketCost",
            "must be an object with amountInclVat, vatRate and currencyCode",
        );
        return None;
    };
    let mut nested = |field: &str| {
        let name = format!("ticketCost.{field}");
        match obj.get(field) {
            None | Some(Value::Null) => {
                errors.add(&name, "is required");
                None
            }
            Some(v) => Some((name, v)),
        }
    };
    let amount = nested("amountInclVat");
    let vat = nested("vatRate");
    let currency = nested("currencyCode");
    let amount = amount.and_then(|(name, v)| integer(v, &name, 0..=i64::MAX, errors));
    let vat = vat.and_then(|(name, v)| integer(v, &name, 0..=100, errors));
    let currency = currency.and_then(|(name, v)| match v.as_str() {
        Some(text) => CurrencyCode::parse(text)
            .map_err(|m| errors.add(&name, m))
            .ok(),
        None => {
            errors.add(&name, "must be a string");
            None
        }
    });
    Some(TicketCost {
        amount_incl_vat: amount?,
        vat_rate: vat?,
        currency: currency?,
    })
}

impl TicketData {
    /// Reads local times in the lot's time zone and checks that the end is not before the start.
    pub fn resolve(self, lot: &Lot) -> Result<ValidTicket, FieldErrors> {
        let mut errors = FieldErrors::new();
        let start = self
            .start
            .resolve(&lot.time_zone)
            .map_err(|e| errors.add("startDate", e.to_string()))
            .ok();
        let end = match self.end {
            None => Some(None),
            Some(end) => end
                .resolve(&lot.time_zone)
                .map(Some)
                .map_err(|e| errors.add("endDate", e.to_string()))
                .ok(),
        };
        if let (Some(start), Some(Some(end))) = (start, end)
            && end < start
        {
            errors.add("endDate", "must not be before startDate");
        }
        match (start, end) {
            (Some(start), Some(end)) if errors.is_empty() => Ok(ValidTicket {
                ticket_id: self.ticket_id,
                parking_lot_id: self.parking_lot_id,
                start,
                end,
                plate: self.plate,
                cost: self.cost,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TimeZoneName;
    use serde_json::json;

    fn lot() -> Lot {
        Lot {
            id: 12,
            name: "Falun centrum".into(),
            zone_code: 123,
            time_zone: TimeZoneName::stockholm(),
            carpark: None,
            grace_minutes: 5,
        }
    }

    fn seed_example() -> Value {
        json!({
            "eventType": "CreateOrUpdate",
            "ticketId": "01985f6f-eafd-7203-b14b-aad5c6c1e253",
            "parkingLotId": 12,
            "startDate": "2023-10-01T12:00:00Z",
            "endDate": "2023-10-01T12:00:00Z",
            "licenseNumber": "ABC123",
            "ticketCost": {"amountInclVat": 12000, "vatRate": 25, "currencyCode": "SEK"}
        })
    }

    fn errors_of(body: Value) -> FieldErrors {
        TicketEvent::parse(&body).unwrap_err()
    }

    #[test]
    fn the_seed_example_is_a_valid_ticket() {
        let TicketEvent::CreateOrUpdate(data) = TicketEvent::parse(&seed_example()).unwrap() else {
            panic!("not a CreateOrUpdate");
        };
        let ticket = data.resolve(&lot()).unwrap();
        assert_eq!(
            ticket.ticket_id.as_str(),
            "01985f6f-eafd-7203-b14b-aad5c6c1e253"
        );
        assert_eq!(ticket.start, ticket.end.unwrap());
        assert_eq!(ticket.cost.unwrap().amount_incl_vat, 12000);
    }

    #[test]
    fn cancel_needs_only_the_ticket_id_and_numbers_are_ids_too() {
        let event =
            TicketEvent::parse(&json!({"eventType": "TicketCanceled", "ticketId": 42})).unwrap();
        assert_eq!(event, TicketEvent::Canceled(TicketId("42".into())));
    }

    #[test]
    fn every_missing_field_is_named() {
        let errors = errors_of(json!({"eventType": "CreateOrUpdate"}));
        for field in ["ticketId", "parkingLotId", "startDate", "licenseNumber"] {
            assert!(errors.contains(field), "{field} not in {errors:?}");
        }
        assert!(!errors.contains("endDate"));
        assert!(errors_of(json!({})).contains("eventType"));
        assert!(errors_of(json!([1])).contains("body"));
    }

    #[test]
    fn wrong_types_and_values_are_named() {
        let cases = [
            ("eventType", json!("Delete")),
            ("ticketId", json!(1.5)),
            ("ticketId", json!("   ")),
            ("ticketId", json!({"a": 1})),
            ("parkingLotId", json!("12")),
            ("parkingLotId", json!(0)),
            ("startDate", json!("tomorrow")),
            ("startDate", json!(1696161600)),
            ("endDate", json!("2023-10-01")),
            ("licenseNumber", json!("")),
            ("licenseNumber", json!("ABCDEFGHIJKLMNOPQRSTU")),
            ("licenseNumber", json!(123)),
            ("ticketCost", json!("12000 SEK")),
        ];
        for (field, value) in cases {
            let mut body = seed_example();
            body[field] = value.clone();
            let errors = errors_of(body);
            assert!(errors.contains(field), "{field}={value}: {errors:?}");
        }
    }

    #[test]
    fn ticket_cost_fields_are_checked() {
        let cases = [
            ("amountInclVat", json!(-1)),
            ("amountInclVat", json!(12.5)),
            ("amountInclVat", Value::Null),
            ("vatRate", json!(101)),
            ("vatRate", json!(-1)),
            ("currencyCode", json!("sek")),
            ("currencyCode", json!("SEKK")),
            ("currencyCode", json!(752)),
        ];
        for (field, value) in cases {
            let mut body = seed_example();
            body["ticketCost"][field] = value.clone();
            let errors = errors_of(body);
            assert!(
                errors.contains(&format!("ticketCost.{field}")),
                "{field}={value}: {errors:?}"
            );
        }
    }

    #[test]
    fn absent_or_null_end_and_cost_are_fine() {
        let mut body = seed_example();
        body["endDate"] = Value::Null;
        body.as_object_mut().unwrap().remove("ticketCost");
        let TicketEvent::CreateOrUpdate(data) = TicketEvent::parse(&body).unwrap() else {
            panic!()
        };
        let ticket = data.resolve(&lot()).unwrap();
        assert_eq!((ticket.end, ticket.cost), (None, None));
    }

    #[test]
    fn end_before_start_and_local_times_in_the_gap_are_rejected() {
        let mut body = seed_example();
        body["endDate"] = json!("2023-10-01T11:59:59Z");
        let TicketEvent::CreateOrUpdate(data) = TicketEvent::parse(&body).unwrap() else {
            panic!()
        };
        assert!(data.resolve(&lot()).unwrap_err().contains("endDate"));

        let mut body = seed_example();
        body["startDate"] = json!("2024-03-31T02:30:00");
        body["endDate"] = json!("2024-03-31T04:00:00");
        let TicketEvent::CreateOrUpdate(data) = TicketEvent::parse(&body).unwrap() else {
            panic!()
        };
        let errors = data.resolve(&lot()).unwrap_err();
        assert!(
            errors.contains("startDate") && !errors.contains("endDate"),
            "{errors:?}"
        );
    }

    #[test]
    fn local_times_are_read_in_the_lots_zone() {
        let mut body = seed_example();
        body["startDate"] = json!("2025-02-10T12:00:00");
        body["endDate"] = json!("2025-02-10T15:20:00+0100");
        let TicketEvent::CreateOrUpdate(data) = TicketEvent::parse(&body).unwrap() else {
            panic!()
        };
        let ticket = data.resolve(&lot()).unwrap();
        assert_eq!(ticket.start.to_string(), "2025-02-10T11:00:00Z");
        assert_eq!(ticket.end.unwrap().to_string(), "2025-02-10T14:20:00Z");
    }
}
