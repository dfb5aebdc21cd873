//! Parking rights for many plates through real HTTP on both backends: batches, the valid
//! plates of a lot for offline handhelds, the check log and pseudonymisation.

mod common;

use std::time::Duration;

use common::rights::world;
use common::{Backend, TestServer, assert_error, assert_invalid};
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    batches_answer_up_to_1000_plates,
    valid_plates_for_offline_handhelds,
    the_pages_of_valid_plates_come_from_one_list,
    every_check_is_logged_and_plates_are_pseudonymised_later,
    a_busy_round_of_checks_is_listed_by_plate_before_and_after_indexing,
);

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

async fn the_pages_of_valid_plates_come_from_one_list(backend: Backend) {
    let w = world(backend, |_| {}).await;
    let now = jiff::Timestamp::now();
    let hour_ago = (now - jiff::SignedDuration::from_hours(1)).to_string();
    w.ticket("n-1", "NOW111", 12, &hour_ago, None).await;
    w.ticket("n-2", "NOW222", 12, &hour_ago, None).await;
    let list = "/api/v1/parking-rights/valid-plates?parkingLotId=12&perPage=1";
    let (status, first) = w.server.get(list, &w.officer).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(first["data"], json!(["NOW111"]));
    assert_eq!(first["meta"]["total"], 2);
    let at = first["at"].as_str().expect("the instant the list is for");
    // A third plate gets a right after the first page: the next page, asked for the same
    // instant, comes from the list the first one did.
    w.ticket("n-3", "NOW000", 12, &hour_ago, None).await;
    let same_at = format!("{list}&page=2&at={}", at.replace('+', "%2B"));
    let (status, second) = w.server.get(&same_at, &w.officer).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    assert_eq!(second["data"], json!(["NOW222"]));
    assert_eq!(second["meta"]["total"], 2);
    assert_eq!(second["at"], first["at"]);
    // Another instant is decided afresh and has the new plate.
    let later = (now + jiff::SignedDuration::from_mins(1)).to_string();
    let (status, fresh) = w
        .server
        .get(&format!("{list}&at={later}"), &w.officer)
        .await;
    assert_eq!(status, StatusCode::OK, "{fresh}");
    assert_eq!(fresh["data"], json!(["NOW000"]));
    assert_eq!(fresh["meta"]["total"], 3);
    assert_eq!(lists_decided(&w.server).await, 2);

    // Devices asking at once for the same list wait for one decision.
    let shift = (now + jiff::SignedDuration::from_mins(2)).to_string();
    let same = format!("{list}&at={shift}");
    let answers =
        futures_util::future::join_all((0..8).map(|_| w.server.get(&same, &w.officer))).await;
    for (status, page) in &answers {
        assert_eq!(*status, StatusCode::OK, "{page}");
        assert_eq!(page["meta"]["total"], 3, "{page}");
    }
    assert_eq!(lists_decided(&w.server).await, 3);
}

/// How many valid-plates lists the service has decided, from /metrics.
async fn lists_decided(server: &TestServer) -> u64 {
    server
        .metric("parkhub_valid_plate_lists_decided_total")
        .await
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
    // every filter at once: each value bound to its own condition
    let all = "/api/v1/admin/parking-right-checks?licenseNumber=NOW111&parkingLotId=12\
               &from=2000-01-01T00:00:00Z&to=2099-01-01T00:00:00Z";
    let (status, both) = w.server.get(all, &w.server.operator).await;
    assert_eq!(status, StatusCode::OK, "{both}");
    assert_eq!(both["meta"]["total"], 1, "{both}");
    assert_eq!(both["data"][0]["parkingLotId"], 12);
    let before = all.replace("to=2099", "to=2001");
    assert_eq!(
        w.server.get(&before, &w.server.operator).await.1["meta"]["total"],
        0
    );
    let other_lot = all.replace("parkingLotId=12", "parkingLotId=13");
    assert_eq!(
        w.server.get(&other_lot, &w.server.operator).await.1["meta"]["total"],
        0
    );
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

/// A batch of many checks is a busy round: on SQLite its rows wait for the plate index, and
/// the log lists them by plate all the same, in the same order before and after.
async fn a_busy_round_of_checks_is_listed_by_plate_before_and_after_indexing(backend: Backend) {
    let w = world(backend, |_| {}).await;
    w.ticket("t-busy", "BUSY001", 12, "2025-01-06T10:00:00Z", None)
        .await;
    let log = "/api/v1/admin/parking-right-checks?licenseNumber=BUSY001&perPage=100&page=2";
    for (round, at) in ["2025-01-06T11:00:00Z", "2025-01-06T11:30:00Z"]
        .into_iter()
        .enumerate()
    {
        // BUSY001 every fourth plate, 250 times in 1000
        let plates: Vec<String> = (0..1000)
            .map(|i| {
                if i % 4 == 0 {
                    "BUSY001".to_owned()
                } else {
                    format!("OTHER{i:04}")
                }
            })
            .collect();
        let (status, answer) = w
            .server
            .post(
                "/api/v1/parking-rights/check",
                &w.officer,
                &json!({"licenseNumbers": plates, "parkingLotId": 12, "at": at}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        let (status, listed) = w.server.get(log, &w.server.operator).await;
        assert_eq!(status, StatusCode::OK, "{listed}");
        assert_eq!(listed["meta"]["total"], 250 * (round + 1), "{listed}");
        let page = listed["data"].as_array().unwrap();
        assert_eq!(page.len(), 100);
        assert!(
            page.iter()
                .all(|c| c["licenseNumber"] == "BUSY001" && c["at"] == at && c["allowed"] == true),
            "{listed}"
        );
        let ids: Vec<i64> = page.iter().map(|c| c["id"].as_i64().unwrap()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
        // once nothing waits for the plate index, the same answer
        let started = std::time::Instant::now();
        while w.server.metric("parkhub_check_log_rows_to_index").await > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "the check log's rows were never indexed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, again) = w.server.get(log, &w.server.operator).await;
        assert_eq!(again, listed);
        let (_, other) = w
            .server
            .get(
                "/api/v1/admin/parking-right-checks?licenseNumber=OTHER0001",
                &w.server.operator,
            )
            .await;
        assert_eq!(other["meta"]["total"], round + 1);
    }
}
