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
    paging_is_stable_while_tickets_arrive,
    list_filters_and_page_parameters,
    a_large_and_a_small_providers_pages_are_their_tickets_in_order,
    a_providers_total_counts_its_new_tickets_once_each,
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

async fn paging_is_stable_while_tickets_arrive(backend: Backend) {
    let (server, token) = setup(backend).await;
    for i in 0..25 {
        push(&server, &token, &seed_ticket(&format!("p-{i:03}"))).await;
    }
    // a writer keeps adding tickets while a reader pages with perPage=4
    let writer = {
        let client = reqwest::Client::new();
        let url = server.url(TICKETS);
        let token = token.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let status = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&seed_ticket(&format!("q-{i:03}")))
                    .send()
                    .await
                    .expect("post")
                    .status();
                assert_eq!(status, StatusCode::OK);
            }
        })
    };
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let body = list(&server, &token, &format!("?page={page}&perPage=4")).await;
        let data = body["data"].as_array().unwrap();
        if data.is_empty() {
            break;
        }
        assert_eq!(body["meta"]["perPage"], 4);
        assert_eq!(body["meta"]["currentPage"], page);
        seen.extend(
            data.iter()
                .map(|t| t["ticketId"].as_str().unwrap().to_owned()),
        );
        // a page with fewer than perPage tickets is the last one: a ticket created after it was
        // read belongs to the next pass, not to a page after it (an offset past the end would
        // skip whatever filled the rest of that page meanwhile)
        if data.len() < 4 {
            break;
        }
        page += 1;
        if page > 100 {
            panic!("paging did not end");
        }
    }
    writer.await.expect("writer");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a ticket was repeated: {seen:?}");
    for (i, id) in seen.iter().take(25).enumerate() {
        assert_eq!(
            *id,
            format!("p-{i:03}"),
            "the first tickets come first, in order"
        );
    }
    // everything that existed when paging started was seen; the rest appears on a fresh pass
    let all = list(&server, &token, "?perPage=500").await;
    assert_eq!(all["meta"]["total"], 65);
    let ids: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticketId"].as_str().unwrap())
        .collect();
    assert_eq!(
        &ids[..seen.len()],
        seen.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .as_slice()
    );
}

async fn list_filters_and_page_parameters(backend: Backend) {
    let (server, token) = setup(backend).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let mut a = seed_ticket("f-1");
    a["licenseNumber"] = json!("abc-123");
    push(&server, &token, &a).await;
    let mut b = seed_ticket("f-2");
    b["licenseNumber"] = json!("ÅBC123");
    push(&server, &token, &b).await;
    let mut c = seed_ticket("f-3");
    c["parkingLotId"] = json!(14);
    push(&server, &token, &c).await;

    let ids = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["ticketId"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&list(&server, &token, "?licenseNumber=ABC%20123").await),
        ["f-1", "f-3"]
    );
    assert_eq!(
        ids(&list(&server, &token, "?licenseNumber=%C3%A5bc123").await),
        ["f-2"]
    );
    assert_eq!(
        ids(&list(&server, &token, "?parkingLotId=14").await),
        ["f-3"]
    );
    assert_eq!(
        ids(&list(&server, &token, "?parkingLotId=12&licenseNumber=abc123").await),
        ["f-1"]
    );
    let later = jiff::Timestamp::now().as_second() + 10;
    assert_eq!(
        ids(&list(&server, &token, &format!("?updatedSince={later}")).await),
        Vec::<String>::new()
    );
    assert_eq!(
        ids(&list(&server, &token, "?updatedSince=0").await).len(),
        3
    );
    // updatedSince with the other filters and paging (on SQLite a query of its own, by the
    // tickets' time index), never another provider's tickets
    let (_, other) = server.provider("other", None).await;
    push(&server, &other, &seed_ticket("o-1")).await;
    assert_eq!(
        ids(&list(&server, &token, "?updatedSince=0&licenseNumber=ABC%20123").await),
        ["f-1", "f-3"]
    );
    assert_eq!(
        ids(&list(&server, &token, "?updatedSince=0&parkingLotId=14").await),
        ["f-3"]
    );
    let paged = list(&server, &token, "?updatedSince=0&perPage=2&page=2").await;
    assert_eq!(ids(&paged), ["f-3"]);
    assert_eq!(paged["meta"]["total"], 3);
    // a cutoff between writes: only what was written from that second on
    let cutoff = jiff::Timestamp::now().as_second() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(
        1050 - jiff::Timestamp::now().subsec_millisecond() as u64,
    ))
    .await;
    push(&server, &token, &b).await;
    push(&server, &other, &seed_ticket("o-2")).await;
    let since = list(&server, &token, &format!("?updatedSince={cutoff}")).await;
    assert_eq!(ids(&since), ["f-2"]);
    assert_eq!(since["meta"]["total"], 1);

    let second = list(&server, &token, "?perPage=2&page=2").await;
    assert_eq!(ids(&second), ["f-3"]);
    assert_eq!(
        second["meta"],
        json!({"currentPage": 2, "perPage": 2, "total": 3, "lastPage": 2})
    );
    assert_eq!(
        ids(&list(&server, &token, "?page=9").await),
        Vec::<String>::new()
    );

    for (query, field) in [
        ("?page=0", "page"),
        ("?page=-1", "page"),
        ("?page=abc", "page"),
        ("?page=1.5", "page"),
        ("?perPage=0", "perPage"),
        ("?perPage=501", "perPage"),
        ("?parkingLotId=x", "parkingLotId"),
        ("?updatedSince=yesterday", "updatedSince"),
    ] {
        let (status, body) = server.get(&format!("{TICKETS}{query}"), &token).await;
        assert_invalid(status, &body, field);
    }
}

/// A ticket as pushed: (ticketId, lot, plate).
type Pushed = (String, i64, String);

/// A listing's query and which of the tickets pushed it keeps.
type Filter = (&'static str, fn(&Pushed) -> bool);

async fn a_large_and_a_small_providers_pages_are_their_tickets_in_order(backend: Backend) {
    // 78 tickets of one provider and 2 of another, interleaved, over two lots and five plates:
    // on SQLite the large provider's pages are read in id order and the small one's by index
    // (tickets::store::page_read); either way a page holds the provider's matching tickets in
    // the order they were created, and the total counts them.
    let (server, large) = setup(backend).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let (_, small) = server.provider("small", None).await;
    let (mut mine, mut theirs): (Vec<Pushed>, Vec<Pushed>) = (Vec::new(), Vec::new());
    for i in 0..80 {
        let lot = if i % 3 == 0 { 14 } else { 12 };
        let plate = format!("P{}", i % 5);
        let mut ticket = seed_ticket(&format!("t-{i:02}"));
        ticket["parkingLotId"] = json!(lot);
        ticket["licenseNumber"] = json!(plate);
        let (token, pushed) = if i % 40 == 0 {
            (&small, &mut theirs)
        } else {
            (&large, &mut mine)
        };
        push(&server, token, &ticket).await;
        pushed.push((format!("t-{i:02}"), lot, plate));
    }
    // and a provider that started last: its 10 tickets are the table's last; on SQLite its
    // first page of 5 is looked for in id order among the first 50 rows, not found there, and
    // read by index
    let (_, late) = server.provider("late", None).await;
    let mut latest: Vec<Pushed> = Vec::new();
    for i in 80..90 {
        let mut ticket = seed_ticket(&format!("t-{i:02}"));
        ticket["licenseNumber"] = json!("P0");
        push(&server, &late, &ticket).await;
        latest.push((format!("t-{i:02}"), 12, "P0".to_owned()));
    }
    assert_eq!((mine.len(), theirs.len()), (78, 2));
    let filters: [Filter; 7] = [
        ("", |_| true),
        ("licenseNumber=P2", |t| t.2 == "P2"),
        ("parkingLotId=14", |t| t.1 == 14),
        ("licenseNumber=P0&parkingLotId=12", |t| {
            t.2 == "P0" && t.1 == 12
        }),
        ("updatedSince=0", |_| true),
        ("updatedSince=0&parkingLotId=12", |t| t.1 == 12),
        ("updatedSince=0&licenseNumber=P0", |t| t.2 == "P0"),
    ];
    for (token, pushed, per_page) in [
        (&large, &mine, 7),
        (&small, &theirs, 7),
        (&late, &latest, 5),
    ] {
        for (query, keep) in filters {
            let expected: Vec<&str> = pushed
                .iter()
                .filter(|t| keep(t))
                .map(|t| t.0.as_str())
                .collect();
            let mut seen: Vec<String> = Vec::new();
            let mut page = 1;
            loop {
                let path = format!("?{query}&perPage={per_page}&page={page}");
                let body = list(&server, token, &path).await;
                assert_eq!(body["meta"]["total"], expected.len(), "{query} page {page}");
                let data = body["data"].as_array().unwrap();
                if data.is_empty() {
                    break;
                }
                seen.extend(
                    data.iter()
                        .map(|t| t["ticketId"].as_str().unwrap().to_owned()),
                );
                page += 1;
                assert!(page <= 20, "{query}: paging did not end");
            }
            assert_eq!(seen, expected, "{query}");
            assert_eq!(
                page,
                expected.len().div_ceil(per_page) + 1,
                "{query}: an empty page after the last"
            );
            let all = list(&server, token, &format!("?{query}&perPage=500")).await;
            assert_eq!(
                all["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["ticketId"].as_str().unwrap())
                    .collect::<Vec<_>>(),
                expected,
                "{query}, one page"
            );
        }
    }
}

async fn a_providers_total_counts_its_new_tickets_once_each(backend: Backend) {
    // On SQLite a provider's unfiltered total is an earlier count brought up to date by the
    // rows after it, or counted whole when those are more than the provider had
    // (tickets::store::provider_count); either way it is its tickets, each once.
    let (server, mine) = setup(backend).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let (_, theirs) = server.provider("other-provider", None).await;
    let mut pushed = push_seeds(&server, &mine, "m", 0..5).await;
    listed_are(&server, &mine, &pushed, "first count").await;
    // a few of the other provider's and two more of mine after it
    push_seeds(&server, &theirs, "o", 0..3).await;
    pushed.extend(push_seeds(&server, &mine, "m", 5..7).await);
    listed_are(&server, &mine, &pushed, "two added").await;
    assert_eq!(list(&server, &theirs, "").await["meta"]["total"], 3);
    // an update (another lot and plate) and a cancel keep the ticket's row: no new ticket
    let mut moved = seed_ticket("m-1");
    moved["parkingLotId"] = json!(14);
    moved["licenseNumber"] = json!("MOV111");
    push(&server, &mine, &moved).await;
    let cancel = json!({"eventType": "TicketCanceled", "ticketId": "m-2"});
    push(&server, &mine, &cancel).await;
    let after = listed_are(&server, &mine, &pushed, "updated and canceled").await;
    assert_eq!(after["data"][1]["licenseNumber"], "MOV111");
    assert_eq!(after["data"][2]["status"], "canceled");
    // more of the other provider's than I have, then one of mine: counted whole, then added
    push_seeds(&server, &theirs, "o", 3..13).await;
    listed_are(&server, &mine, &pushed, "others' many").await;
    pushed.extend(push_seeds(&server, &mine, "m", 7..8).await);
    let last = list(&server, &mine, "?perPage=3&page=3").await;
    assert_eq!(last["meta"]["total"], 8);
    assert_eq!(last["meta"]["lastPage"], 3);
    assert_eq!(ticket_ids(&last), ["m-6", "m-7"]);
    assert_eq!(list(&server, &theirs, "").await["meta"]["total"], 13);
}

/// Pushes the seed ticket as `{prefix}-{i}` for each `i`; their ticket ids.
async fn push_seeds(
    server: &common::TestServer,
    token: &str,
    prefix: &str,
    each: std::ops::Range<usize>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in each {
        let id = format!("{prefix}-{i}");
        push(server, token, &seed_ticket(&id)).await;
        ids.push(id);
    }
    ids
}

/// The ticket ids of a page, in order.
fn ticket_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticketId"].as_str().unwrap().to_owned())
        .collect()
}

/// `token`'s tickets in one page, checked to be `pushed` in order with a total of as many.
async fn listed_are(
    server: &common::TestServer,
    token: &str,
    pushed: &[String],
    when: &str,
) -> Value {
    let page = list(server, token, "?perPage=500").await;
    assert_eq!(page["meta"]["total"], pushed.len(), "{when}");
    assert_eq!(ticket_ids(&page), pushed, "{when}");
    page
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
