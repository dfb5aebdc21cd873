//! Parking rights through real HTTP on both backends: every kind of right, zones, grace,
//! batches, valid plates, the check log and pseudonymisation.

mod common;

use std::time::Duration;

use common::{Backend, TestServer, assert_error, assert_invalid};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

backend_tests!(
    tickets_permits_and_stays_are_rights,
    only_rights_that_apply_count,
    zones_cover_all_their_lots,
    grace_allows_a_right_that_just_ended,
    batches_answer_up_to_1000_plates,
    valid_plates_for_offline_handhelds,
    every_check_is_logged_and_plates_are_pseudonymised_later,
);

struct World {
    server: TestServer,
    officer: String,
    provider: String,
    gate: String,
    tenant: String,
    allocation: String,
}

/// Lot 12 (zone 123, a car park 1/2), lot 14 (zone 123), lot 20 (zone 200); a provider, a gate,
/// an officer, and a tenant with a weekday 05:00-09:00 allocation for lot 12.
async fn world(backend: Backend, configure: impl FnOnce(&mut parkhub::ServeConfig)) -> World {
    let server = TestServer::start_with(backend, configure).await;
    server.carpark(12, 1, 2, 100).await;
    let (status, _) = server
        .patch(
            "/api/v1/admin/parking-lots/12",
            &server.operator,
            &json!({"zoneCode": 123}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.lot(14, 123, "Europe/Stockholm").await;
    server.lot(20, 200, "Europe/Stockholm").await;
    let (_, provider) = server.provider("easypark", None).await;
    let gate = server.equipment("gate", &[12]).await;
    let officer = server
        .token_for(parkhub::principals::Role::Enforcement, "officer-17")
        .await;
    let (_, tenant) = server
        .post(
            "/api/v1/admin/tenants",
            &server.operator,
            &json!({"name": "Acme"}),
        )
        .await;
    let (_, definition) = server
        .post("/api/v1/admin/permit-definitions", &server.operator,
              &json!({"name": "Mornings", "parkingLotIds": [12], "schedule": [{"days": ["mon","tue","wed","thu","fri"], "from": "05:00", "to": "09:00"}]}))
        .await;
    let (_, allocation) = server
        .post("/api/v1/admin/permit-allocations", &server.operator,
              &json!({"tenantId": tenant["id"], "permitDefinitionId": definition["id"], "parkingSpacesCount": 5, "permitCount": 5, "validFrom": "2020-01-01", "validTo": "2030-12-31"}))
        .await;
    World {
        officer,
        provider,
        gate,
        tenant: tenant["token"].as_str().unwrap().to_owned(),
        allocation: allocation["id"].as_str().unwrap().to_owned(),
        server,
    }
}

impl World {
    async fn ticket(&self, id: &str, plate: &str, lot: i64, start: &str, end: Option<&str>) {
        let body = json!({"eventType": "CreateOrUpdate", "ticketId": id, "parkingLotId": lot, "startDate": start, "endDate": end, "licenseNumber": plate});
        let (status, answer) = self
            .server
            .post("/api/v1/actions/tickets", &self.provider, &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    async fn permit_for(&self, email: &str, plate: &str) -> String {
        let (status, permit) = self
            .server
            .post("/permit/v3/end_user_permit", &self.tenant, &json!({"email": email, "permit_allocation_id": self.allocation, "valid_from": "2020-01-01"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{permit}");
        self.server
            .call(
                Method::PUT,
                &format!("/api/v1/admin/end-users/{email}"),
                Some(&self.server.operator),
                None,
            )
            .await;
        self.server
            .call(
                Method::PUT,
                &format!("/api/v1/admin/end-users/{email}/vehicles/{plate}"),
                Some(&self.server.operator),
                None,
            )
            .await;
        permit["permit_id"].as_str().unwrap().to_owned()
    }

    async fn check(&self, query: &str) -> Value {
        let (status, answer) = self
            .server
            .get(&format!("/api/v1/parking-rights?{query}"), &self.officer)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }
}

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

async fn batches_answer_up_to_1000_plates(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.ticket(
        "t-1",
        "ABC123",
        12,
        "2025-01-06T10:00:00Z",
        Some("2025-01-06T12:00:00Z"),
    )
    .await;
    let (status, answer) = w.server
        .post("/api/v1/parking-rights/check", &w.officer,
              &json!({"licenseNumbers": ["abc-123", "XYZ999", "ABC123"], "parkingLotId": 12, "at": "2025-01-06T11:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let allowed: Vec<(Value, Value)> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["licenseNumber"].clone(), r["allowed"].clone()))
        .collect();
    assert_eq!(
        allowed,
        [
            (json!("ABC123"), json!(true)),
            (json!("XYZ999"), json!(false)),
            (json!("ABC123"), json!(true))
        ]
    );
    let thousand: Vec<String> = (0..1000).map(|i| format!("P{i:05}")).collect();
    let (status, answer) = w
        .server
        .post(
            "/api/v1/parking-rights/check",
            &w.officer,
            &json!({"licenseNumbers": thousand, "zoneCode": 123, "at": "2025-01-06T11:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["results"].as_array().unwrap().len(), 1000);
    let too_many: Vec<String> = (0..1001).map(|i| format!("P{i:05}")).collect();
    let (status, body) = w
        .server
        .post(
            "/api/v1/parking-rights/check",
            &w.officer,
            &json!({"licenseNumbers": too_many, "parkingLotId": 12}),
        )
        .await;
    assert_invalid(status, &body, "licenseNumbers");
    let (status, body) = w
        .server
        .post(
            "/api/v1/parking-rights/check",
            &w.officer,
            &json!({"licenseNumbers": [], "parkingLotId": 12}),
        )
        .await;
    assert_invalid(status, &body, "licenseNumbers");
    let (status, body) = w
        .server
        .post(
            "/api/v1/parking-rights/check",
            &w.officer,
            &json!({"licenseNumbers": ["OK1", ""], "parkingLotId": 12}),
        )
        .await;
    assert_invalid(status, &body, "licenseNumbers[1]");
}

async fn valid_plates_for_offline_handhelds(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.ticket(
        "t-1",
        "ABC123",
        12,
        "2025-01-06T10:00:00Z",
        Some("2025-01-06T12:00:00Z"),
    )
    .await;
    w.ticket(
        "t-2",
        "OLD999",
        12,
        "2025-01-06T07:00:00Z",
        Some("2025-01-06T07:45:00Z"),
    )
    .await;
    w.ticket(
        "t-3",
        "GRC555",
        12,
        "2025-01-06T08:00:00Z",
        Some("2025-01-06T10:58:00Z"),
    )
    .await;
    w.ticket("t-4", "ZON444", 14, "2025-01-06T10:00:00Z", None)
        .await;
    w.permit_for("d@example.com", "PRM111").await;
    w.server.post("/api/v1/carparks/entries", &w.gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "STY222", "ticketType": 4, "time": "2025-01-06T09:30:00Z"})).await;
    // Monday 12:00 local = 11:00Z: the permit's window (05-09 local) is over
    let (status, page) = w
        .server
        .get(
            "/api/v1/parking-rights/valid-plates?parkingLotId=12&at=2025-01-06T11:00:00Z",
            &w.officer,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"], json!(["ABC123", "GRC555", "STY222"]));
    let (_, zone) = w.server.get("/api/v1/parking-rights/valid-plates?zoneCode=123&at=2025-01-06T11:00:00Z&perPage=2&page=2", &w.officer).await;
    assert_eq!(zone["data"], json!(["STY222", "ZON444"]));
    assert_eq!(zone["meta"]["total"], 4);
    let (_, morning) = w
        .server
        .get(
            "/api/v1/parking-rights/valid-plates?parkingLotId=12&at=2025-01-06T07:30:00Z",
            &w.officer,
        )
        .await;
    assert_eq!(morning["data"], json!(["OLD999", "PRM111"]));
}

async fn every_check_is_logged_and_plates_are_pseudonymised_later(backend: Backend) {
    let w = world(backend, |c| {
        c.plate_retention = Duration::from_secs(2);
        c.privacy_interval = Duration::from_millis(200);
    })
    .await;
    w.ticket(
        "t-old",
        "OLD999",
        12,
        "2020-01-06T10:00:00Z",
        Some("2020-01-06T12:00:00Z"),
    )
    .await;
    w.ticket("t-now", "NOW111", 12, "2025-01-06T10:00:00Z", None)
        .await;
    w.check("licenseNumber=NOW111&parkingLotId=12&at=2025-01-06T11:00:00Z")
        .await;
    w.server.post("/api/v1/parking-rights/check", &w.officer, &json!({"licenseNumbers": ["XYZ999", "NOW111"], "zoneCode": 123, "at": "2025-01-06T11:00:00Z"})).await;
    let (status, log) = w
        .server
        .get(
            "/api/v1/admin/parking-right-checks?licenseNumber=now-111",
            &w.server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{log}");
    assert_eq!(log["meta"]["total"], 2);
    let newest = &log["data"][0];
    assert_eq!(
        (
            newest["licenseNumber"].clone(),
            newest["zoneCode"].clone(),
            newest["allowed"].clone()
        ),
        (json!("NOW111"), json!(123), json!(true))
    );
    assert_eq!(
        (newest["principalName"].clone(), newest["kinds"].clone()),
        (json!("officer-17"), json!(["ticket"]))
    );
    assert_eq!(newest["at"], "2025-01-06T11:00:00Z");
    let (_, by_lot) = w
        .server
        .get(
            "/api/v1/admin/parking-right-checks?parkingLotId=12",
            &w.server.operator,
        )
        .await;
    assert_eq!(by_lot["meta"]["total"], 1);
    let (_, later) = w
        .server
        .get(
            "/api/v1/admin/parking-right-checks?from=2099-01-01T00:00:00Z",
            &w.server.operator,
        )
        .await;
    assert_eq!(later["meta"]["total"], 0);
    let (status, body) = w
        .server
        .get("/api/v1/admin/parking-right-checks", &w.officer)
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = w
        .server
        .get(
            "/api/v1/admin/parking-right-checks?from=yesterday",
            &w.server.operator,
        )
        .await;
    assert_invalid(status, &body, "from");

    // past the retention, plates become keyed hashes: in checks, in ended tickets
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let (_, log) = w
        .server
        .get("/api/v1/admin/parking-right-checks", &w.server.operator)
        .await;
    let plates: Vec<&str> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["licenseNumber"].as_str().unwrap())
        .collect();
    assert_eq!(plates.len(), 3);
    assert!(
        plates.iter().all(|p| p.starts_with('~') && p.len() == 33),
        "{plates:?}"
    );
    // newest first: NOW111 (batch), XYZ999 (batch), NOW111 (single)
    assert_eq!(
        plates[0], plates[2],
        "the same plate gets the same pseudonym: {plates:?}"
    );
    assert_ne!(plates[0], plates[1]);
    assert_eq!(
        w.server
            .get(
                "/api/v1/admin/parking-right-checks?licenseNumber=NOW111",
                &w.server.operator
            )
            .await
            .1["meta"]["total"],
        0
    );
    let (_, tickets) = w.server.get("/api/v1/actions/tickets", &w.provider).await;
    let by_id = |id: &str| {
        tickets["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["ticketId"] == id)
            .unwrap()["licenseNumber"]
            .clone()
    };
    assert!(by_id("t-old").as_str().unwrap().starts_with('~'));
    assert_eq!(
        by_id("t-now"),
        "NOW111",
        "a ticket still valid keeps its plate"
    );
}
