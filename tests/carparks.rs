//! Barrier car parks through real HTTP on both backends: car park numbers, rates, equipment,
//! identifiers, entries, exits, quotes, occupancy and pricing with permits.

mod common;

use common::{Backend, TestServer, assert_error, assert_invalid};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

backend_tests!(
    lots_become_car_parks_with_unique_numbers,
    rates_are_set_listed_and_deleted,
    identifiers_belong_to_one_provider_at_a_time,
    entries_and_exits_make_priced_transactions,
    equipment_reports_only_for_its_car_parks,
    permits_make_minutes_free,
    occupancy_counts_vehicles_inside,
);

const ENTRIES: &str = "/api/v1/carparks/entries";
const EXITS: &str = "/api/v1/carparks/exits";

fn report(ticket_no: &str, time: &str) -> Value {
    json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": ticket_no, "ticketType": 4, "time": time})
}

async fn lots_become_car_parks_with_unique_numbers(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 400).await;
    let (_, lot) = server
        .get("/api/v1/admin/parking-lots/12", &server.operator)
        .await;
    assert_eq!(
        (
            lot["facilityNo"].clone(),
            lot["carparkNo"].clone(),
            lot["capacity"].clone()
        ),
        (json!(1), json!(2), json!(400))
    );
    let (status, body) = server
        .post(
            "/api/v1/admin/parking-lots",
            &server.operator,
            &json!({"id": 13, "name": "x", "zoneCode": 1, "facilityNo": 1, "carparkNo": 2}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert!(
        body["message"].as_str().unwrap().contains("facilityNo"),
        "{body}"
    );
    let (status, body) = server
        .post(
            "/api/v1/admin/parking-lots",
            &server.operator,
            &json!({"id": 13, "name": "x", "zoneCode": 1, "carparkNo": 2}),
        )
        .await;
    assert_invalid(status, &body, "facilityNo");
    let (status, lot) = server
        .patch(
            "/api/v1/admin/parking-lots/12",
            &server.operator,
            &json!({"capacity": 350}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (lot["facilityNo"].clone(), lot["capacity"].clone()),
        (json!(1), json!(350))
    );
    // a plain lot shows no car park fields
    server.lot(20, 200, "Europe/Stockholm").await;
    let (_, plain) = server
        .get("/api/v1/admin/parking-lots/20", &server.operator)
        .await;
    assert!(plain.get("facilityNo").is_none(), "{plain}");
}

async fn rates_are_set_listed_and_deleted(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 400).await;
    let url = "/api/v1/admin/parking-lots/12/rates";
    let evening = json!({"name": "Evening", "currencyCode": "SEK", "freeMinutes": 0, "periodMinutes": 30,
                         "pricePerPeriod": 1500, "bands": [{"from": "18:00", "to": "08:00", "pricePerPeriod": 500}],
                         "maxPerDay": 10000, "default": true});
    let (status, rate) = server
        .call(
            Method::PUT,
            &format!("{url}/2"),
            Some(&server.operator),
            Some(&evening),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rate}");
    assert_eq!(
        rate["bands"],
        json!([{"from": "18:00", "to": "08:00", "pricePerPeriod": 500}])
    );
    assert_eq!(rate["default"], true);
    let (_, rates) = server.get(url, &server.operator).await;
    assert_eq!(
        rates
            .as_array()
            .unwrap()
            .iter()
            .map(|r| (
                r["rateNo"].as_i64().unwrap(),
                r["default"].as_bool().unwrap()
            ))
            .collect::<Vec<_>>(),
        [(1, false), (2, true)]
    );
    let (status, _) = server
        .call(
            Method::PUT,
            &format!("{url}/2"),
            Some(&server.operator),
            Some(&evening),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "replacing answers 200");
    for (field, change) in [
        ("currencyCode", json!({"currencyCode": "kr"})),
        ("periodMinutes", json!({"periodMinutes": 0})),
        ("pricePerPeriod", json!({"pricePerPeriod": -1})),
        (
            "bands[0].from",
            json!({"bands": [{"from": "25:00", "to": "08:00", "pricePerPeriod": 1}]}),
        ),
        ("name", json!({"name": null})),
    ] {
        let mut body = evening.clone();
        for (k, v) in change.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = server
            .call(
                Method::PUT,
                &format!("{url}/3"),
                Some(&server.operator),
                Some(&body),
            )
            .await;
        assert_invalid(status, &answer, field);
    }
    let (status, answer) = server
        .call(
            Method::PUT,
            &format!("{url}/0"),
            Some(&server.operator),
            Some(&evening),
        )
        .await;
    assert_invalid(status, &answer, "rateNo");
    assert_eq!(
        server.delete(&format!("{url}/2"), &server.operator).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = server.delete(&format!("{url}/2"), &server.operator).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (_, rates) = server.get(url, &server.operator).await;
    assert_eq!(rates.as_array().unwrap().len(), 1);
    assert_eq!(
        rates[0]["default"], true,
        "the remaining rate is the default"
    );
    let (status, body) = server
        .get("/api/v1/admin/parking-lots/99/rates", &server.operator)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

async fn identifiers_belong_to_one_provider_at_a_time(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 400).await;
    let (_, a) = server.provider("a", None).await;
    let (_, b) = server.provider("b", None).await;
    let put = |token: &str, body: Value| {
        let token = token.to_owned();
        let server = &server;
        async move {
            server
                .call(
                    Method::PUT,
                    "/api/v1/identifiers",
                    Some(&token),
                    Some(&body),
                )
                .await
        }
    };
    let (status, created) = put(&a, json!({"ticketNo": "abc 123", "ticketType": 4, "validCarparks": [12], "referenceNo": "A-1"})).await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["referenceNo"], "A-1");
    let (status, _) = put(
        &a,
        json!({"ticketNo": "ABC-123", "ticketType": 4, "referenceNo": "A-2"}),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same plate in another spelling is the same identifier"
    );
    let (status, body) = put(&b, json!({"ticketNo": "ABC123", "ticketType": 4})).await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert_eq!(body["error_id"], "identifier_taken");
    // a barcode is another identifier; generated reference numbers
    let (status, qr) = put(&b, json!({"ticketNo": "QR-77", "ticketType": 5, "validFrom": "2025-01-01T00:00:00Z", "validUntil": "2025-02-01T00:00:00Z"})).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(qr["referenceNo"].as_str().unwrap().len() >= 6);
    // a's claim on the same barcode for a later, non-overlapping period is fine
    let (status, _) = put(
        &a,
        json!({"ticketNo": "QR-77", "ticketType": 5, "validFrom": "2025-02-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    for (field, body) in [
        ("ticketType", json!({"ticketNo": "X1", "ticketType": 3})),
        ("ticketNo", json!({"ticketType": 4})),
        (
            "validFrom",
            json!({"ticketNo": "X1", "ticketType": 4, "validFrom": "2025-01-01T00:00:00"}),
        ),
        (
            "validUntil",
            json!({"ticketNo": "X1", "ticketType": 4, "validFrom": "2025-01-02T00:00:00Z", "validUntil": "2025-01-01T00:00:00Z"}),
        ),
        (
            "validCarparks",
            json!({"ticketNo": "X1", "ticketType": 4, "validCarparks": [99]}),
        ),
    ] {
        let (status, answer) = put(&a, body).await;
        assert_invalid(status, &answer, field);
    }
    let (status, page) = server.get("/api/v1/identifiers?perPage=1&page=2", &a).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["meta"]["total"], 2);
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    let (_, theirs) = server.get("/api/v1/identifiers", &b).await;
    assert_eq!(theirs["meta"]["total"], 1, "b sees only its own");
    assert_eq!(
        server.delete("/api/v1/identifiers/4/abc-123", &a).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = server.delete("/api/v1/identifiers/4/abc-123", &a).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server.delete("/api/v1/identifiers/5/QR-77", &b).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // once a let go, b may have the plate
    assert_eq!(
        put(&b, json!({"ticketNo": "ABC123", "ticketType": 4}))
            .await
            .0,
        StatusCode::CREATED
    );
    let (status, body) = server
        .call(
            Method::PUT,
            "/api/v1/identifiers",
            Some(&server.operator),
            Some(&json!({"ticketNo": "X", "ticketType": 4})),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
}

async fn entries_and_exits_make_priced_transactions(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 400).await;
    let equipment = server.equipment("gate-1", &[12]).await;
    let (_, provider) = server.provider("easypark", None).await;
    server
        .call(
            Method::PUT,
            "/api/v1/identifiers",
            Some(&provider),
            Some(&json!({"ticketNo": "ABC123", "ticketType": 4, "referenceNo": "EP-9"})),
        )
        .await;

    // Monday 10:00 local
    let (status, entry) = server
        .post(
            ENTRIES,
            &equipment,
            &report("abc-123", "2025-01-06T10:00:00+01:00"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{entry}");
    assert_eq!(entry["referenceNo"], "EP-9");
    assert!(entry["transactionId"].is_i64() && entry["eventId"].is_string());
    let (status, again) = server
        .post(
            ENTRIES,
            &equipment,
            &report("ABC123", "2025-01-06T09:00:00Z"),
        )
        .await;
    assert_eq!(
        (status, again),
        (StatusCode::OK, entry.clone()),
        "the same entry again creates nothing"
    );
    let (status, body) = server
        .post(
            ENTRIES,
            &equipment,
            &report("ABC123", "2025-01-06T10:30:00+01:00"),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains(&entry["transactionId"].to_string()),
        "names it: {body}"
    );

    // quote at 11:16 local: 76 minutes, 61 chargeable -> two started hours
    let (status, quote) = server
        .get("/api/v1/carparks/quote?facilityNo=1&carparkNo=2&ticketNo=ABC123&ticketType=4&at=2025-01-06T11:16:00%2B01:00", &server.operator)
        .await;
    assert_eq!(status, StatusCode::OK, "{quote}");
    assert_eq!(
        (
            quote["parkingDuration"].clone(),
            quote["amount"].clone(),
            quote["currencyCode"].clone()
        ),
        (json!(76), json!(40.0), json!("SEK"))
    );
    let (status, body) = server
        .post(
            EXITS,
            &equipment,
            &report("ABC123", "2025-01-06T09:59:00+01:00"),
        )
        .await;
    assert_invalid(status, &body, "time");
    let (status, exit) = server
        .post(
            EXITS,
            &equipment,
            &report("ABC123", "2025-01-06T11:16:00+01:00"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{exit}");
    assert_eq!(exit["transactionId"], entry["transactionId"]);
    assert_eq!(
        (
            exit["rateNo"].clone(),
            exit["parkingDuration"].clone(),
            exit["amount"].clone(),
            exit["currencyCode"].clone()
        ),
        (json!(1), json!(76), json!(40.0), json!("SEK"))
    );
    assert_ne!(exit["eventId"], entry["eventId"]);
    let (status, again) = server
        .post(
            EXITS,
            &equipment,
            &report("ABC123", "2025-01-06T11:16:00+01:00"),
        )
        .await;
    assert_eq!(
        (status, again),
        (StatusCode::OK, exit.clone()),
        "the same exit again"
    );
    let (status, body) = server
        .post(
            EXITS,
            &equipment,
            &report("ABC123", "2025-01-06T12:00:00+01:00"),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server
        .get(
            "/api/v1/carparks/quote?facilityNo=1&carparkNo=2&ticketNo=ABC123&ticketType=4",
            &server.operator,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // the vehicle may come back; an explicit rate that does not exist is named
    let (status, _) = server
        .post(
            ENTRIES,
            &equipment,
            &report("ABC123", "2025-01-06T13:00:00+01:00"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut bad_rate = report("ABC123", "2025-01-06T13:10:00+01:00");
    bad_rate["rateNo"] = json!(9);
    let (status, body) = server.post(EXITS, &equipment, &bad_rate).await;
    assert_invalid(status, &body, "rateNo");
    let (status, free) = server
        .post(
            EXITS,
            &equipment,
            &report("ABC123", "2025-01-06T13:10:00+01:00"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        (free["parkingDuration"].clone(), free["amount"].clone()),
        (json!(10), json!(0.0))
    );
    // a barcode that nobody registered still makes a transaction, with a generated reference
    let qr = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "QR:unknown", "ticketType": 5});
    let (status, anonymous) = server.post(ENTRIES, &equipment, &qr).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(anonymous["referenceNo"].as_str().unwrap().starts_with("PH"));
    for (field, body) in [
        (
            "carparkNo",
            json!({"facilityNo": 1, "carparkNo": 9, "ticketNo": "A1", "ticketType": 4}),
        ),
        (
            "facilityNo",
            json!({"carparkNo": 2, "ticketNo": "A1", "ticketType": 4}),
        ),
        (
            "ticketType",
            json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "A1", "ticketType": 6}),
        ),
        (
            "ticketNo",
            json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "", "ticketType": 4}),
        ),
        (
            "time",
            json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "A1", "ticketType": 4, "time": "soon"}),
        ),
        (
            "time",
            json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "A1", "ticketType": 4, "time": "2025-03-30T02:30:00"}),
        ),
    ] {
        let (status, answer) = server.post(ENTRIES, &equipment, &body).await;
        assert_invalid(status, &answer, field);
    }
}

async fn equipment_reports_only_for_its_car_parks(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 400).await;
    server.carpark(14, 1, 4, 100).await;
    let gate = server.equipment("gate-14", &[14]).await;
    let (status, body) = server
        .post(ENTRIES, &gate, &report("ABC123", "2025-01-06T10:00:00Z"))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let mut at_14 = report("ABC123", "2025-01-06T10:00:00Z");
    at_14["carparkNo"] = json!(4);
    assert_eq!(
        server.post(ENTRIES, &gate, &at_14).await.0,
        StatusCode::CREATED
    );
    let (_, provider) = server.provider("p", None).await;
    for token in [&provider, &server.operator] {
        let (status, body) = server.post(ENTRIES, token, &at_14).await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
    }
    let (_, listed) = server
        .get("/api/v1/admin/equipment", &server.operator)
        .await;
    assert_eq!(listed[0]["parkingLotIds"], json!([14]));
}

async fn permits_make_minutes_free(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 400).await;
    let equipment = server.equipment("gate", &[12]).await;
    // a weekday 05:00-09:00 permit for the plate at lot 12
    let (tenant, allocation) = common::permits::mornings_at_lot_12(&server).await;
    common::permits::permit_with_vehicle(
        &server,
        &tenant,
        &allocation,
        "driver@example.com",
        "ABC123",
    )
    .await;

    // Monday 04:00 to 10:00 local: 15 free minutes, 04:15-05:00 and 09:00-10:00 chargeable
    // (105 minutes: two started hours), 05:00-09:00 under the permit
    server
        .post(
            ENTRIES,
            &equipment,
            &report("ABC123", "2025-01-06T04:00:00+01:00"),
        )
        .await;
    let (_, exit) = server
        .post(
            EXITS,
            &equipment,
            &report("ABC123", "2025-01-06T10:00:00+01:00"),
        )
        .await;
    assert_eq!(
        (exit["parkingDuration"].clone(), exit["amount"].clone()),
        (json!(360), json!(40.0)),
        "{exit}"
    );
    // within the window only: free
    server
        .post(
            ENTRIES,
            &equipment,
            &report("ABC123", "2025-01-07T05:30:00+01:00"),
        )
        .await;
    let (_, exit) = server
        .post(
            EXITS,
            &equipment,
            &report("ABC123", "2025-01-07T08:30:00+01:00"),
        )
        .await;
    assert_eq!(exit["amount"], json!(0.0), "{exit}");
    // another vehicle pays the full price
    server
        .post(
            ENTRIES,
            &equipment,
            &report("XYZ999", "2025-01-07T05:30:00+01:00"),
        )
        .await;
    let (_, exit) = server
        .post(
            EXITS,
            &equipment,
            &report("XYZ999", "2025-01-07T08:30:00+01:00"),
        )
        .await;
    assert_eq!(exit["amount"], json!(60.0), "{exit}");
}

async fn occupancy_counts_vehicles_inside(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 2).await;
    let equipment = server.equipment("gate", &[12]).await;
    for plate in ["AAA111", "BBB222", "CCC333"] {
        server
            .post(ENTRIES, &equipment, &report(plate, "2025-01-06T10:00:00Z"))
            .await;
    }
    server
        .post(EXITS, &equipment, &report("BBB222", "2025-01-06T11:00:00Z"))
        .await;
    let enforcement = server
        .token_for(parkhub::principals::Role::Enforcement, "officer")
        .await;
    let (status, occupancy) = server.get("/api/v1/carparks/occupancy", &enforcement).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        occupancy,
        json!([{"parkingLotId": 12, "name": "Car park 12", "facilityNo": 1, "carparkNo": 2, "capacity": 2, "inside": 2, "free": 0}])
    );
    let (status, body) = server.get("/api/v1/carparks/occupancy", &equipment).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
}
