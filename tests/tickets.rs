//! The short-time tickets API, through real HTTP, on SQLite and PostgreSQL.

mod common;

use common::tickets::{TICKETS, list, push, seed_ticket, setup};
use common::{Backend, assert_error, assert_invalid};
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    seed_example_is_stored_and_listed_in_local_time,
    create_or_update_replaces_every_field_but_created_at,
    ticket_ids_may_be_numbers_and_are_per_provider,
    providers_never_see_each_others_tickets,
    canceled_tickets_stay_canceled,
    cancel_of_an_unknown_ticket_is_404,
    every_invalid_field_is_named_and_changes_nothing,
    lots_the_provider_may_not_use_are_forbidden,
    local_times_are_read_in_the_lots_zone_and_the_gap_is_rejected,
    rendering_follows_both_daylight_saving_changes,
    only_providers_may_use_the_ticket_api,
    lots_and_providers_that_tickets_name_cannot_be_deleted,
);

async fn seed_example_is_stored_and_listed_in_local_time(backend: Backend) {
    let (server, token) = setup(backend).await;
    push(
        &server,
        &token,
        &seed_ticket("01985f6f-eafd-7203-b14b-aad5c6c1e253"),
    )
    .await;
    let page = list(&server, &token, "").await;
    let data = page["data"].as_array().unwrap();
    assert_eq!(data.len(), 1);
    let t = &data[0];
    assert_eq!(t["zoneCode"], 123);
    assert_eq!(t["parkingLotId"], 12);
    assert_eq!(t["licenseNumber"], "ABC123");
    assert_eq!(t["ticketId"], "01985f6f-eafd-7203-b14b-aad5c6c1e253");
    assert_eq!(t["startDate"], "2023-10-01T14:00:00+02:00");
    assert_eq!(t["endDate"], "2023-10-01T14:00:00+02:00");
    assert_eq!(
        t["ticketCost"],
        json!({"amountInclVat": 12000, "vatRate": 25, "currencyCode": "SEK"})
    );
    assert_eq!(t["status"], "active");
    assert_eq!(t["canceledAt"], Value::Null);
    let now = jiff::Timestamp::now().as_second();
    let created = t["createdAt"].as_i64().unwrap();
    assert!(
        (now - 60..=now + 1).contains(&created),
        "{created} vs {now}"
    );
    assert_eq!(t["updatedAt"], t["createdAt"]);
    assert_eq!(
        page["meta"],
        json!({"currentPage": 1, "perPage": 50, "total": 1, "lastPage": 1})
    );
}

async fn create_or_update_replaces_every_field_but_created_at(backend: Backend) {
    let (server, token) = setup(backend).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    push(&server, &token, &seed_ticket("t-1")).await;
    let before = list(&server, &token, "").await["data"][0].clone();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    push(
        &server,
        &token,
        &json!({
            "eventType": "CreateOrUpdate", "ticketId": "t-1", "parkingLotId": 14,
            "startDate": "2025-02-10T11:00:00Z", "licenseNumber": "xyz 987",
            "unknownField": "ignored", "createdAt": 1, "status": "canceled"
        }),
    )
    .await;
    let page = list(&server, &token, "").await;
    assert_eq!(
        page["meta"]["total"], 1,
        "an update must not create a ticket"
    );
    let after = &page["data"][0];
    assert_eq!(after["parkingLotId"], 14);
    assert_eq!(after["zoneCode"], 140);
    assert_eq!(after["licenseNumber"], "xyz 987");
    assert_eq!(after["startDate"], "2025-02-10T12:00:00+01:00");
    assert_eq!(after["endDate"], Value::Null, "open-ended after the update");
    assert_eq!(
        after["ticketCost"],
        Value::Null,
        "cost removed by the update"
    );
    assert_eq!(
        after["status"], "active",
        "clients cannot set server-owned fields"
    );
    assert_eq!(after["createdAt"], before["createdAt"]);
    assert!(
        after["updatedAt"].as_i64() > before["updatedAt"].as_i64(),
        "{after}"
    );
}

async fn ticket_ids_may_be_numbers_and_are_per_provider(backend: Backend) {
    let (server, a) = setup(backend).await;
    let (_, b) = server.provider("other-provider", None).await;
    let mut numeric = seed_ticket("x");
    numeric["ticketId"] = json!(4711);
    push(&server, &a, &numeric).await;
    let mut other = seed_ticket("4711");
    other["licenseNumber"] = json!("BBB222");
    push(&server, &b, &other).await;
    let mine = list(&server, &a, "").await;
    assert_eq!(mine["data"][0]["ticketId"], "4711");
    assert_eq!(
        mine["data"][0]["licenseNumber"], "ABC123",
        "b's ticket must not touch a's"
    );
    // cancel with the number, as a string: the same ticket
    push(
        &server,
        &a,
        &json!({"eventType": "TicketCanceled", "ticketId": "4711"}),
    )
    .await;
    assert_eq!(list(&server, &a, "").await["data"][0]["status"], "canceled");
    assert_eq!(list(&server, &b, "").await["data"][0]["status"], "active");
}

async fn providers_never_see_each_others_tickets(backend: Backend) {
    let (server, a) = setup(backend).await;
    let (_, b) = server.provider("b", None).await;
    push(&server, &a, &seed_ticket("a-1")).await;
    push(&server, &a, &seed_ticket("a-2")).await;
    let theirs = list(&server, &b, "").await;
    assert_eq!(theirs["data"], json!([]));
    assert_eq!(theirs["meta"]["total"], 0);
    // b cannot cancel a's ticket: for b it does not exist
    let (status, body) = server
        .post(
            TICKETS,
            &b,
            &json!({"eventType": "TicketCanceled", "ticketId": "a-1"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let filtered = list(&server, &b, "?licenseNumber=ABC123&parkingLotId=12").await;
    assert_eq!(filtered["data"], json!([]));
    assert_eq!(list(&server, &a, "").await["meta"]["total"], 2);
    assert_eq!(list(&server, &a, "").await["data"][0]["status"], "active");
}

async fn canceled_tickets_stay_canceled(backend: Backend) {
    let (server, token) = setup(backend).await;
    push(&server, &token, &seed_ticket("c-1")).await;
    let cancel = json!({"eventType": "TicketCanceled", "ticketId": "c-1"});
    push(&server, &token, &cancel).await;
    let first = list(&server, &token, "").await["data"][0].clone();
    assert_eq!(first["status"], "canceled");
    let canceled_at = first["canceledAt"].as_i64().expect("canceledAt set");
    assert!(canceled_at >= first["createdAt"].as_i64().unwrap());
    // a second cancel is fine and changes nothing
    push(&server, &token, &cancel).await;
    assert_eq!(list(&server, &token, "").await["data"][0], first);
    // CreateOrUpdate of a canceled ticket: 409, nothing changes
    let mut revive = seed_ticket("c-1");
    revive["licenseNumber"] = json!("NEW111");
    let (status, body) = server.post(TICKETS, &token, &revive).await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert_eq!(body["error_id"], "ticket_canceled");
    assert!(
        body["message"].as_str().unwrap().contains("canceled"),
        "{body}"
    );
    assert_eq!(list(&server, &token, "").await["data"][0], first);
}

async fn cancel_of_an_unknown_ticket_is_404(backend: Backend) {
    let (server, token) = setup(backend).await;
    let (status, body) = server
        .post(
            TICKETS,
            &token,
            &json!({"eventType": "TicketCanceled", "ticketId": "never-sent"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(list(&server, &token, "").await["meta"]["total"], 0);
}

async fn every_invalid_field_is_named_and_changes_nothing(backend: Backend) {
    let (server, token) = setup(backend).await;
    push(&server, &token, &seed_ticket("keep")).await;
    let before = list(&server, &token, "").await;
    let cases: Vec<(&str, Value)> = vec![
        ("eventType", json!(null)),
        ("eventType", json!("Delete")),
        ("ticketId", json!(null)),
        ("ticketId", json!(true)),
        ("ticketId", json!("")),
        ("parkingLotId", json!(null)),
        ("parkingLotId", json!("12")),
        ("parkingLotId", json!(999)),
        ("startDate", json!(null)),
        ("startDate", json!("2023-10-01")),
        ("startDate", json!("01/10/2023 12:00")),
        ("endDate", json!("2023-10-01T11:59:59Z")),
        ("endDate", json!("soon")),
        ("licenseNumber", json!(null)),
        ("licenseNumber", json!("   ")),
        ("licenseNumber", json!("ABCDEFGHIJKLMNOPQRSTUVWXYZ")),
        ("ticketCost", json!([12000])),
    ];
    for (field, value) in cases {
        // each bad value is sent as an update of the stored ticket: it must change nothing
        let mut body = seed_ticket("keep");
        body["licenseNumber"] = json!("CHANGED1");
        body[field] = value.clone();
        let (status, answer) = server.post(TICKETS, &token, &body).await;
        assert_invalid(status, &answer, field);
        assert_eq!(answer["error_id"], "validation_failed");
    }
    for (field, value) in [
        ("amountInclVat", json!(-5)),
        ("amountInclVat", json!("12000")),
        ("vatRate", json!(250)),
        ("currencyCode", json!("kr")),
    ] {
        let mut body = seed_ticket("keep");
        body["ticketCost"][field] = value;
        let (status, answer) = server.post(TICKETS, &token, &body).await;
        assert_invalid(status, &answer, &format!("ticketCost.{field}"));
    }
    // several problems at once are all named
    let (status, answer) = server
        .post(
            TICKETS,
            &token,
            &json!({"eventType": "CreateOrUpdate", "parkingLotId": "x"}),
        )
        .await;
    for field in ["ticketId", "parkingLotId", "startDate", "licenseNumber"] {
        assert_invalid(status, &answer, field);
    }
    assert_eq!(
        list(&server, &token, "").await,
        before,
        "invalid input changed something"
    );
}

async fn lots_the_provider_may_not_use_are_forbidden(backend: Backend) {
    let (server, _) = setup(backend).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let (_, limited) = server.provider("only-14", Some(&[14])).await;
    let (status, body) = server.post(TICKETS, &limited, &seed_ticket("x")).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let mut at_14 = seed_ticket("x");
    at_14["parkingLotId"] = json!(14);
    push(&server, &limited, &at_14).await;
    let page = list(&server, &limited, "").await;
    assert_eq!(page["meta"]["total"], 1);
    assert_eq!(page["data"][0]["parkingLotId"], 14);
}

async fn local_times_are_read_in_the_lots_zone_and_the_gap_is_rejected(backend: Backend) {
    let (server, token) = setup(backend).await;
    let mut local = seed_ticket("local");
    local["startDate"] = json!("2025-02-10T12:00:00");
    local["endDate"] = json!("2025-02-10T15:20:00+0100");
    push(&server, &token, &local).await;
    let t = &list(&server, &token, "").await["data"][0];
    assert_eq!(t["startDate"], "2025-02-10T12:00:00+01:00");
    assert_eq!(t["endDate"], "2025-02-10T15:20:00+01:00");

    let mut gap = seed_ticket("gap");
    gap["startDate"] = json!("2025-03-30T02:30:00");
    gap["endDate"] = json!("2025-03-30T05:00:00");
    let (status, body) = server.post(TICKETS, &token, &gap).await;
    assert_invalid(status, &body, "startDate");
    assert!(
        body["errors"]["startDate"][0]
            .as_str()
            .unwrap()
            .contains("daylight"),
        "{body}"
    );
    assert_eq!(list(&server, &token, "").await["meta"]["total"], 1);
}

async fn rendering_follows_both_daylight_saving_changes(backend: Backend) {
    let (server, token) = setup(backend).await;
    server.lot(20, 200, "America/New_York").await;
    // (start, end, lot, expected start, expected end)
    let cases = [
        (
            "2025-03-30T00:59:00Z",
            "2025-03-30T01:00:00Z",
            12,
            "2025-03-30T01:59:00+01:00",
            "2025-03-30T03:00:00+02:00",
        ),
        (
            "2025-10-26T00:30:00Z",
            "2025-10-26T01:30:00Z",
            12,
            "2025-10-26T02:30:00+02:00",
            "2025-10-26T02:30:00+01:00",
        ),
        (
            "2025-03-09T06:59:00Z",
            "2025-03-09T07:00:00Z",
            20,
            "2025-03-09T01:59:00-05:00",
            "2025-03-09T03:00:00-04:00",
        ),
        (
            "2025-07-01T10:00:00+0200",
            "2025-12-01T10:00:00+01:00",
            12,
            "2025-07-01T10:00:00+02:00",
            "2025-12-01T10:00:00+01:00",
        ),
    ];
    for (i, (start, end, lot, _, _)) in cases.iter().enumerate() {
        let mut body = seed_ticket(&format!("dst-{i}"));
        body["startDate"] = json!(start);
        body["endDate"] = json!(end);
        body["parkingLotId"] = json!(lot);
        push(&server, &token, &body).await;
    }
    let page = list(&server, &token, "").await;
    for (i, (_, _, _, start, end)) in cases.iter().enumerate() {
        let t = &page["data"][i];
        assert_eq!(t["ticketId"], format!("dst-{i}"));
        assert_eq!(t["startDate"], *start, "case {i}");
        assert_eq!(t["endDate"], *end, "case {i}");
    }
}

async fn only_providers_may_use_the_ticket_api(backend: Backend) {
    let (server, _) = setup(backend).await;
    let enforcement = server
        .token_for(parkhub::principals::Role::Enforcement, "officer")
        .await;
    for token in [&server.operator, &enforcement] {
        let (status, body) = server.post(TICKETS, token, &seed_ticket("x")).await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
        let (status, body) = server.get(TICKETS, token).await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
    }
}

/// Runs `sql` with `id` bound on the service's database, as an operator would by hand: the
/// rows it changed, or the kind of error it failed with.
async fn delete_by_hand(
    server: &common::TestServer,
    sql: &str,
    id: i64,
) -> Result<u64, Option<sqlx::error::ErrorKind>> {
    use parkhub::store::Backend as Db;
    let done = match server.store.backend() {
        Db::Sqlite(db) => {
            let mut conn = db.writer.acquire().await.unwrap();
            let done = sqlx::query(sql).bind(id).execute(&mut *conn).await;
            done.map(|r| r.rows_affected())
        }
        Db::Postgres(pool) => sqlx::query(sql)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected()),
    };
    done.map_err(|e| e.as_database_error().map(|e| e.kind()))
}

/// PostgreSQL names a ticket's lot and provider without foreign keys (migration 0009: checking
/// them locked the lot's row in every ticket's transaction); a trigger still refuses deleting
/// what tickets name, as SQLite's keys do.
async fn lots_and_providers_that_tickets_name_cannot_be_deleted(backend: Backend) {
    let (server, _) = setup(backend).await;
    server.lot(13, 130, "Europe/Stockholm").await;
    let (owner, token) = server.provider("owner", None).await;
    let (provider, _) = server.provider("quiet", None).await;
    push(&server, &token, &seed_ticket("kept")).await;
    let kept = list(&server, &token, "").await["data"][0].clone();
    assert_eq!(kept["parkingLotId"], 12);

    let refused = delete_by_hand(&server, "DELETE FROM parking_lots WHERE id = $1", 12).await;
    assert_eq!(
        refused,
        Err(Some(sqlx::error::ErrorKind::ForeignKeyViolation)),
        "a lot with tickets must stay"
    );
    let refused = delete_by_hand(&server, "DELETE FROM principals WHERE id = $1", owner).await;
    assert_eq!(
        refused,
        Err(Some(sqlx::error::ErrorKind::ForeignKeyViolation)),
        "a provider with tickets must stay"
    );
    assert_eq!(list(&server, &token, "").await["data"][0], kept);

    // What no ticket names can go.
    assert_eq!(
        delete_by_hand(&server, "DELETE FROM parking_lots WHERE id = $1", 13).await,
        Ok(1)
    );
    assert_eq!(
        delete_by_hand(&server, "DELETE FROM principals WHERE id = $1", provider).await,
        Ok(1)
    );
}
