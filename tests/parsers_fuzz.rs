//! Property tests ("fuzz") of every parser that reads outside text, through the library's public
//! API: arbitrary text, bytes and JSON, and valid inputs with something off, must give a clean
//! error or a value, never a panic; where a value can be written back out, it reads back the
//! same. `PARKHUB_FUZZ_CASES` sets the number of cases of each property (default 256).

#[path = "common/fuzz.rs"]
mod fuzz;

use fuzz::{body, config, json, near_miss, text};
use jiff::Timestamp;
use parkhub::carparks::Vehicle;
use parkhub::carparks::identifiers::IdentifierInput;
use parkhub::carparks::rates::RateInput;
use parkhub::domain::plate::normal_form;
use parkhub::domain::time::{parse_clock, render_clock};
use parkhub::domain::{DateTimeInput, Email, LicensePlate, TimeZoneName};
use parkhub::events::frames::{self, Identity};
use parkhub::http::FieldErrors;
use parkhub::lots::{Lot, LotInput};
use parkhub::permits::rules::parse_date;
use parkhub::permits::schedule::{Schedule, WindowSpec};
use parkhub::tickets::event::TicketEvent;
use proptest::prelude::*;
use serde_json::{Value, json};

const ZONES: &[&str] = &[
    "UTC",
    "Europe/Stockholm",
    "America/St_Johns",
    "Pacific/Chatham",
    "Asia/Kathmandu",
    "Australia/Lord_Howe",
];

fn zone() -> impl Strategy<Value = TimeZoneName> {
    prop::sample::select(ZONES).prop_map(|z| TimeZoneName::parse(z).unwrap())
}

/// From 0001-01-02 to 9999-12-30: every zone renders these with a four-digit year, the only
/// kind ISO 8601 input has. (Year 0000 input near midnight renders as year -001 in zones
/// west of it; left as is, nothing real happens then.)
const FOUR_DIGIT_YEARS: std::ops::RangeInclusive<i64> = -62_135_510_400..=253_402_128_000;

/// Renders an instant in `zone` and reads it back: the same second.
fn round_trip(at: Timestamp, zone: &TimeZoneName) -> Result<(), TestCaseError> {
    if !FOUR_DIGIT_YEARS.contains(&at.as_second()) {
        return Ok(());
    }
    for rendered in [zone.render(at), zone.render_compact(at)] {
        match DateTimeInput::parse(&rendered) {
            Ok(DateTimeInput::Absolute(back)) => {
                prop_assert_eq!(back.as_second(), at.as_second(), "{}", rendered)
            }
            other => prop_assert!(false, "{} read back as {:?}", rendered, other),
        }
    }
    Ok(())
}

fn no_empty_errors<T>(result: &Result<T, FieldErrors>) -> Result<(), TestCaseError> {
    if let Err(errors) = result {
        prop_assert!(!errors.is_empty(), "an error that names nothing");
    }
    Ok(())
}

fn ticket_templates() -> Vec<Value> {
    vec![
        json!({"eventType": "CreateOrUpdate", "ticketId": "t-1", "parkingLotId": 12,
               "startDate": "2025-02-10T12:00:00+01:00", "endDate": "2025-02-10T15:20:00+0100",
               "licenseNumber": "abc 123",
               "ticketCost": {"amountInclVat": 6100, "vatRate": 25, "currencyCode": "SEK"}}),
        json!({"eventType": "CreateOrUpdate", "ticketId": 7, "parkingLotId": 12,
               "startDate": "2025-03-30T02:30:00", "licenseNumber": "ABC123"}),
        json!({"eventType": "TicketCanceled", "ticketId": "t-1"}),
    ]
}

fn lot(zone: TimeZoneName) -> Lot {
    Lot {
        id: 12,
        name: "Lot".into(),
        zone_code: 123,
        time_zone: zone,
        carpark: None,
        grace_minutes: 5,
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn date_times_parse_cleanly_and_round_trip(s in text(), zone in zone()) {
        match DateTimeInput::parse(&s) {
            Ok(DateTimeInput::Absolute(at)) => round_trip(at, &zone)?,
            Ok(local @ DateTimeInput::Local(_)) => {
                if let Ok(at) = local.resolve(&zone) {
                    round_trip(at, &zone)?;
                }
            }
            Err(message) => prop_assert!(!message.is_empty()),
        }
    }

    #[test]
    fn any_instant_renders_and_reads_back(seconds in FOUR_DIGIT_YEARS, zone in zone()) {
        round_trip(Timestamp::from_second(seconds).unwrap(), &zone)?;
    }

    #[test]
    fn dates_clocks_and_zones_parse_cleanly(s in text(), zone in zone()) {
        let _ = parse_date(&s, &zone);
        let _ = TimeZoneName::parse(&s);
        for allow_24 in [false, true] {
            if let Some(minute) = parse_clock(&s, allow_24) {
                prop_assert!(minute <= 1440);
                prop_assert_eq!(parse_clock(&render_clock(minute), allow_24), Some(minute));
            }
        }
    }

    #[test]
    fn plates_and_emails_parse_cleanly_and_are_stable(s in text()) {
        let normal = normal_form(&s);
        prop_assert_eq!(normal_form(&normal), normal.clone());
        if let Ok(plate) = LicensePlate::parse(&s) {
            prop_assert_eq!(plate.raw(), s.as_str());
            prop_assert_eq!(plate.normal(), normal.as_str());
            let again = LicensePlate::parse(plate.normal()).expect("a normal form is a plate");
            prop_assert_eq!(again.normal(), plate.normal());
        }
        if let Ok(email) = Email::parse(&s) {
            prop_assert_eq!(Email::parse(email.as_str()).map(|e| e.as_str().to_owned()), Ok(email.as_str().to_owned()));
        }
    }

    #[test]
    fn ticket_events_parse_cleanly(value in body(ticket_templates()), zone in zone()) {
        let parsed = TicketEvent::parse(&value);
        no_empty_errors(&parsed)?;
        if let Ok(TicketEvent::CreateOrUpdate(data)) = parsed {
            let resolved = data.resolve(&lot(zone));
            no_empty_errors(&resolved)?;
            if let Ok(ticket) = resolved {
                prop_assert!(ticket.end.is_none_or(|end| end >= ticket.start));
            }
        }
    }

    #[test]
    fn schedules_parse_cleanly_and_round_trip(
        specs in prop::collection::vec(
            (prop::collection::vec(prop_oneof![near_miss(), text()], 0..4), near_miss(), near_miss()),
            0..6,
        )
    ) {
        let specs: Vec<WindowSpec> = specs
            .into_iter()
            .map(|(days, from, to)| WindowSpec { days, from, to })
            .collect();
        let parsed = Schedule::parse(&specs);
        no_empty_errors(&parsed)?;
        if let Ok(schedule) = parsed {
            prop_assert_eq!(Schedule::parse(&schedule.to_specs()), Ok(schedule));
        }
    }

    #[test]
    fn schedules_from_any_json_parse_cleanly(value in json()) {
        if let Ok(specs) = serde_json::from_value::<Vec<WindowSpec>>(value) {
            no_empty_errors(&Schedule::parse(&specs))?;
        }
    }

    #[test]
    fn equipment_reports_and_identifiers_parse_cleanly(value in body(vec![
        json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "ABC123", "ticketType": 4, "time": "2026-11-26T08:00:00+01:00"}),
        json!({"ticketNo": "QR-1", "ticketType": 5, "validCarparks": [12], "validFrom": "2026-01-01T00:00:00Z",
               "validUntil": "2026-02-01T00:00:00Z", "referenceNo": "R1"}),
    ])) {
        let mut errors = FieldErrors::new();
        let vehicle = Vehicle::from_json(&value, &mut errors);
        prop_assert!(vehicle.is_some() || !errors.is_empty());
        if let Ok(input) = serde_json::from_value::<IdentifierInput>(value) {
            no_empty_errors(&input.into_claim())?;
        }
    }

    #[test]
    fn lots_and_rates_parse_cleanly(value in body(vec![
        json!({"id": 12, "name": "Lot", "zoneCode": 123, "timeZone": "Europe/Stockholm",
               "facilityNo": 1, "carparkNo": 2, "capacity": 100, "graceMinutes": 5}),
        json!({"name": "Day", "currencyCode": "SEK", "freeMinutes": 15, "periodMinutes": 60,
               "pricePerPeriod": 2000, "maxPerDay": 15000, "default": true,
               "bands": [{"from": "08:00", "to": "18:00", "pricePerPeriod": 3000}]}),
    ]), rate_no in -2i64..1_000_001) {
        if let Ok(input) = serde_json::from_value::<LotInput>(value.clone()) {
            no_empty_errors(&input.into_new())?;
        }
        if let Ok(input) = serde_json::from_value::<RateInput>(value) {
            no_empty_errors(&input.into_rate(rate_no))?;
        }
    }

    #[test]
    fn event_frames_carry_any_text_as_json(
        ticket_no in text(), reference_no in text(), event_id in text(), message in text(),
        seconds in 0i64..253_402_207_200,
    ) {
        let who = Identity { facility_no: 1, carpark_no: 2, ticket_no: ticket_no.clone(), ticket_type: 4, reference_no: reference_no.clone() };
        let at = Timestamp::from_second(seconds).unwrap();
        let frame: Value = serde_json::from_str(&frames::transaction_started(&who, at, &event_id)).unwrap();
        prop_assert_eq!(&frame["TicketNo"], &json!(ticket_no));
        prop_assert_eq!(&frame["ReferenceNo"], &json!(reference_no));
        prop_assert_eq!(&frame["EventID"], &json!(event_id));
        let start = frame["StartTime"].as_str().unwrap().parse::<Timestamp>().unwrap();
        prop_assert_eq!(start, at);
        let error: Value = serde_json::from_str(&frames::error("unknown_ack", &message)).unwrap();
        prop_assert_eq!(&error["Message"], &json!(message));
    }
}
