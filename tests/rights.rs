//! Parking rights through real HTTP on both backends: every kind of right, zones and grace.

mod common;

use common::rights::world;
use common::{Backend, assert_error, assert_invalid};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

backend_tests!(
    tickets_permits_and_stays_are_rights,
    only_rights_that_apply_count,
    zones_cover_all_their_lots,
    grace_allows_a_right_that_just_ended,
);

async fn tickets_permits_and_stays_are_rights(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.ticket(
        "t-1",
        "abc 123",
        12,
        "2025-01-06T10:00:00+01:00",
        Some("2025-01-06T12:00:00+01:00"),
    )
    .await;
    let answer = w
        .check("licenseNumber=ABC-123&parkingLotId=12&at=2025-01-06T11:00:00%2B01:00")
        .await;
    assert_eq!(
        answer,
        json!({"licenseNumber": "ABC123", "parkingLotId": 12, "zoneCode": 123, "parkingLotIds": [12],
               "at": "2025-01-06T11:00:00+01:00", "allowed": true, "grace": false,
               "validUntil": "2025-01-06T12:00:00+01:00",
               "rights": [{"kind": "ticket", "parkingLotId": 12, "provider": "easypark", "ticketId": "t-1",
                           "startDate": "2025-01-06T10:00:00+01:00", "endDate": "2025-01-06T12:00:00+01:00"}]})
    );
    // a permit's window in force, and when it ends (Tuesday 07:00 local)
    let permit_id = w.permit_for("driver@example.com", "PRM111").await;
    let answer = w
        .check("licenseNumber=PRM111&parkingLotId=12&at=2025-01-07T07:00:00%2B01:00")
        .await;
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["validUntil"], "2025-01-07T09:00:00+01:00");
    assert_eq!(
        answer["rights"],
        json!([{"kind": "permit", "parkingLotId": 12, "permit_id": permit_id, "permitDefinitionName": "Mornings",
                "validFrom": "2020-01-01T00:00:00+0100", "validTo": "2030-12-31T23:59:59+0100",
                "window": {"days": ["mon", "tue", "wed", "thu", "fri"], "from": "05:00", "to": "09:00"},
                "windowEndsAt": "2025-01-07T09:00:00+01:00"}])
    );
    assert_eq!(
        w.check("licenseNumber=PRM111&parkingLotId=12&at=2025-01-07T10:00:00%2B01:00")
            .await["allowed"],
        false
    );
    assert_eq!(
        w.check("licenseNumber=PRM111&parkingLotId=12&at=2025-01-11T07:00:00%2B01:00")
            .await["allowed"],
        false,
        "Saturday"
    );
    // an open car-park stay
    let (_, entry) = w.server
        .post("/api/v1/carparks/entries", &w.gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "STY222", "ticketType": 4, "time": "2025-01-06T08:00:00Z"}))
        .await;
    let answer = w
        .check("licenseNumber=sty222&parkingLotId=12&at=2025-01-06T10:00:00Z")
        .await;
    assert_eq!(
        (answer["allowed"].clone(), answer["validUntil"].clone()),
        (json!(true), Value::Null)
    );
    assert_eq!(
        answer["rights"],
        json!([{"kind": "transaction", "parkingLotId": 12, "transactionId": entry["transactionId"],
                "entryTime": "2025-01-06T09:00:00+01:00", "referenceNo": entry["referenceNo"]}])
    );
    // without a date: now; an open-ended ticket is valid with no end
    w.ticket("t-open", "OPN333", 12, "2024-01-01T00:00:00Z", None)
        .await;
    let answer = w.check("licenseNumber=OPN333&parkingLotId=12").await;
    assert_eq!(
        (answer["allowed"].clone(), answer["validUntil"].clone()),
        (json!(true), Value::Null)
    );
}

async fn only_rights_that_apply_count(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.ticket(
        "t-1",
        "ABC123",
        12,
        "2025-01-06T10:00:00Z",
        Some("2025-01-06T12:00:00Z"),
    )
    .await;
    let at = "at=2025-01-06T11:00:00Z";
    assert_eq!(
        w.check(&format!("licenseNumber=XYZ999&parkingLotId=12&{at}"))
            .await,
        json!({
        "licenseNumber": "XYZ999", "parkingLotId": 12, "zoneCode": 123, "parkingLotIds": [12],
        "at": "2025-01-06T12:00:00+01:00", "allowed": false, "grace": false, "validUntil": null, "rights": []})
    );
    assert_eq!(
        w.check(&format!("licenseNumber=ABC123&parkingLotId=14&{at}"))
            .await["allowed"],
        false,
        "another lot"
    );
    assert_eq!(
        w.check("licenseNumber=ABC123&parkingLotId=12&at=2025-01-06T09:59:59Z")
            .await["allowed"],
        false,
        "before"
    );
    // canceled tickets do not count
    let (status, _) = w
        .server
        .post(
            "/api/v1/actions/tickets",
            &w.provider,
            &json!({"eventType": "TicketCanceled", "ticketId": "t-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        w.check(&format!("licenseNumber=ABC123&parkingLotId=12&{at}"))
            .await["allowed"],
        false
    );
    // a permit counts only while the plate is on the holder's profile, and until it is deleted
    let permit = w.permit_for("d@example.com", "PRM111").await;
    let monday = "licenseNumber=PRM111&parkingLotId=12&at=2025-01-06T06:00:00Z";
    assert_eq!(w.check(monday).await["allowed"], true);
    w.server
        .delete(
            "/api/v1/admin/end-users/d@example.com/vehicles/PRM111",
            &w.server.operator,
        )
        .await;
    assert_eq!(w.check(monday).await["allowed"], false);
    w.server
        .call(
            Method::PUT,
            "/api/v1/admin/end-users/d@example.com/vehicles/PRM111",
            Some(&w.server.operator),
            None,
        )
        .await;
    assert_eq!(w.check(monday).await["allowed"], true);
    w.server
        .delete(&format!("/permit/v3/end_user_permit/{permit}"), &w.tenant)
        .await;
    assert_eq!(w.check(monday).await["allowed"], false);
    // bad questions
    for (query, field) in [
        ("parkingLotId=12", "licenseNumber"),
        ("licenseNumber=---&parkingLotId=12", "licenseNumber"),
        ("licenseNumber=ABC123", "parkingLotId"),
        (
            "licenseNumber=ABC123&parkingLotId=12&zoneCode=123",
            "zoneCode",
        ),
        ("licenseNumber=ABC123&parkingLotId=99", "parkingLotId"),
        ("licenseNumber=ABC123&zoneCode=999", "zoneCode"),
        ("licenseNumber=ABC123&parkingLotId=12&at=tomorrow", "at"),
        (
            "licenseNumber=ABC123&parkingLotId=12&at=2025-03-30T02:30:00",
            "at",
        ),
    ] {
        let (status, body) = w
            .server
            .get(&format!("/api/v1/parking-rights?{query}"), &w.officer)
            .await;
        assert_invalid(status, &body, field);
    }
    for token in [&w.provider, &w.gate, &w.tenant] {
        let (status, body) = w
            .server
            .get(
                "/api/v1/parking-rights?licenseNumber=ABC123&parkingLotId=12",
                token,
            )
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
    }
    assert_eq!(
        w.server
            .get(
                "/api/v1/parking-rights?licenseNumber=ABC123&parkingLotId=12",
                &w.server.operator
            )
            .await
            .0,
        StatusCode::OK
    );
}

async fn zones_cover_all_their_lots(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.ticket(
        "t-14",
        "ABC123",
        14,
        "2025-01-06T10:00:00Z",
        Some("2025-01-06T12:00:00Z"),
    )
    .await;
    let answer = w
        .check("licenseNumber=ABC123&zoneCode=123&at=2025-01-06T11:00:00Z")
        .await;
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["parkingLotId"], Value::Null);
    assert_eq!(answer["parkingLotIds"], json!([12, 14]));
    assert_eq!(answer["rights"][0]["parkingLotId"], 14);
    assert_eq!(
        w.check("licenseNumber=ABC123&zoneCode=200&at=2025-01-06T11:00:00Z")
            .await["allowed"],
        false
    );
}

async fn grace_allows_a_right_that_just_ended(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.ticket(
        "t-1",
        "ABC123",
        12,
        "2025-01-06T10:00:00Z",
        Some("2025-01-06T12:00:00Z"),
    )
    .await;
    let within = w
        .check("licenseNumber=ABC123&parkingLotId=12&at=2025-01-06T12:04:59Z")
        .await;
    assert_eq!(
        (within["allowed"].clone(), within["grace"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(within["validUntil"], "2025-01-06T13:05:00+01:00");
    assert_eq!(within["rights"][0]["endedAt"], "2025-01-06T13:00:00+01:00");
    let after = w
        .check("licenseNumber=ABC123&parkingLotId=12&at=2025-01-06T12:05:00Z")
        .await;
    assert_eq!(
        (after["allowed"].clone(), after["rights"].clone()),
        (json!(false), json!([]))
    );
    // a permit window that just closed (Monday 09:02 local), and a stay that just ended
    w.permit_for("d@example.com", "PRM111").await;
    let answer = w
        .check("licenseNumber=PRM111&parkingLotId=12&at=2025-01-06T09:02:00%2B01:00")
        .await;
    assert_eq!(
        (answer["allowed"].clone(), answer["grace"].clone()),
        (json!(true), json!(true)),
        "{answer}"
    );
    w.server.post("/api/v1/carparks/entries", &w.gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "STY222", "ticketType": 4, "time": "2025-01-06T08:00:00Z"})).await;
    w.server.post("/api/v1/carparks/exits", &w.gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "STY222", "ticketType": 4, "time": "2025-01-06T09:00:00Z"})).await;
    assert_eq!(
        w.check("licenseNumber=STY222&parkingLotId=12&at=2025-01-06T09:03:00Z")
            .await["grace"],
        true
    );
    // the operator sets the grace per lot
    let (status, lot) = w
        .server
        .patch(
            "/api/v1/admin/parking-lots/12",
            &w.server.operator,
            &json!({"graceMinutes": 0}),
        )
        .await;
    assert_eq!(
        (status, lot["graceMinutes"].clone()),
        (StatusCode::OK, json!(0))
    );
    assert_eq!(
        w.check("licenseNumber=ABC123&parkingLotId=12&at=2025-01-06T12:00:01Z")
            .await["allowed"],
        false
    );
    let (status, body) = w
        .server
        .patch(
            "/api/v1/admin/parking-lots/12",
            &w.server.operator,
            &json!({"graceMinutes": -1}),
        )
        .await;
    assert_invalid(status, &body, "graceMinutes");
}
