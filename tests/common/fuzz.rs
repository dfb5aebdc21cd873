//! Strategies for fuzzing what comes from outside: arbitrary text and bytes, near misses of the
//! formats parkhub reads (date-times, clock times, plates, e-mails, ids), arbitrary JSON, and
//! valid request bodies with fields removed or replaced by anything. Used by
//! `tests/parsers_fuzz.rs` and `tests/http_fuzz.rs` (as a `#[path]` module).
//!
//! `PARKHUB_FUZZ_CASES` sets the number of cases of each property (default 256), so a long run
//! by hand is `PARKHUB_FUZZ_CASES=100000 cargo test --test parsers_fuzz`.
#![allow(dead_code)]

use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Map, Value};

pub fn cases() -> u32 {
    std::env::var("PARKHUB_FUZZ_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256)
}

pub fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 200,
        ..Config::default()
    }
}

/// Field names the service reads, so arbitrary objects hit real fields often.
pub const FIELDS: &[&str] = &[
    "eventType",
    "ticketId",
    "parkingLotId",
    "startDate",
    "endDate",
    "licenseNumber",
    "ticketCost",
    "amountInclVat",
    "vatRate",
    "currencyCode",
    "facilityNo",
    "carparkNo",
    "ticketNo",
    "ticketType",
    "time",
    "rateNo",
    "validCarparks",
    "validFrom",
    "validUntil",
    "referenceNo",
    "name",
    "parkingLotIds",
    "timeZone",
    "schedule",
    "days",
    "from",
    "to",
    "tenantId",
    "permitDefinitionId",
    "parkingSpacesCount",
    "permitCount",
    "email",
    "permit_allocation_id",
    "valid_from",
    "valid_to",
    "id",
    "zoneCode",
    "capacity",
    "graceMinutes",
    "freeMinutes",
    "periodMinutes",
    "pricePerPeriod",
    "bands",
    "maxPerDay",
    "default",
    "licenseNumbers",
    "at",
    "overlapSeconds",
    "Ack",
];

/// Text shaped like what parkhub parses, with something slightly off.
pub fn near_miss() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9+-]{0,6}-[0-9]{1,3}-[0-9]{1,3}[Tt ][0-9]{1,3}:[0-9]{1,3}(:[0-9]{1,3}(\\.[0-9]{0,12})?)?(Z|z|[+-][0-9]{1,4}(:[0-9]{0,3})?)?",
        "[0-9]{4}-[0-9]{2}-[0-9]{2}",
        "[0-9 ]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}[+-]\\PC{0,4}",
        "[0-9]{1,3}:[0-9]{1,3}",
        "(mon|tue|wed|thu|fri|sat|sun|MON|xyz|)",
        "[a-zA-Z0-9 åäöÅÄÖ\\-]{0,25}",
        "[a-z0-9.+]{0,10}@[a-z0-9.\\-]{0,10}",
        "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
        "(oldest|latest|[A-Za-z]{1,20}/[A-Za-z_]{1,20})",
        "-?[0-9]{1,25}(\\.[0-9]{0,5})?(e[0-9]{1,3})?",
    ]
}

/// Any text: printable, near misses, or arbitrary bytes read as UTF-8.
pub fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "\\PC{0,40}",
        "[a-z0-9\\x00 ]{1,12}",
        near_miss(),
        any::<String>(),
        prop::collection::vec(any::<u8>(), 0..48)
            .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(FIELDS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

/// Any JSON value, a few levels deep.
pub fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(4),
            Just(5),
            Just(12),
            Just(i64::MAX),
            Just(i64::MIN)
        ]
        .prop_map(Value::from),
        text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// `template` with some fields removed, replaced by anything, or added.
pub fn mutated(template: Value) -> impl Strategy<Value = Value> {
    let changes = prop::collection::vec((key(), prop::option::of(json())), 1..5);
    let pick = prop::collection::vec(any::<prop::sample::Index>(), 1..5);
    (changes, pick).prop_map(move |(changes, pick)| {
        let mut object: Map<String, Value> = template.as_object().cloned().unwrap_or_default();
        let existing: Vec<String> = object.keys().cloned().collect();
        for ((key, value), index) in changes.into_iter().zip(pick) {
            // mostly change a field the template has
            let key = if existing.is_empty() || index.index(3) == 0 {
                key
            } else {
                existing[index.index(existing.len())].clone()
            };
            match value {
                Some(value) => object.insert(key, value),
                None => object.remove(&key),
            };
        }
        Value::Object(object)
    })
}

/// Arbitrary JSON, or a mutation of one of the valid `templates`.
pub fn body(templates: Vec<Value>) -> BoxedStrategy<Value> {
    if templates.is_empty() {
        return json().boxed();
    }
    prop_oneof![
        1 => json(),
        3 => prop::sample::select(templates).prop_flat_map(mutated),
    ]
    .boxed()
}
