//! Tickets written at once, through real HTTP, on SQLite and PostgreSQL: concurrent requests
//! share transactions and statements (group commit), and each must still be answered and
//! stored as if it were alone.

mod common;

use common::Backend;
use common::tickets::{TICKETS, list, push, seed_ticket, setup};
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    concurrent_update_and_cancel_leave_one_consistent_ticket,
    a_burst_of_tickets_is_stored_each_as_sent,
    one_ticket_sent_many_times_at_once_ends_as_one_of_them,
);

async fn concurrent_update_and_cancel_leave_one_consistent_ticket(backend: Backend) {
    let (server, token) = setup(backend).await;
    for round in 0..5 {
        let id = format!("race-{round}");
        push(&server, &token, &seed_ticket(&id)).await;
        let mut tasks = Vec::new();
        for i in 0..20 {
            let client = reqwest::Client::new();
            let url = server.url(TICKETS);
            let token = token.clone();
            let body = if i == 10 {
                json!({"eventType": "TicketCanceled", "ticketId": id})
            } else {
                let mut b = seed_ticket(&id);
                b["licenseNumber"] = json!(format!("CAR{i:03}"));
                b
            };
            tasks.push(tokio::spawn(async move {
                client
                    .post(url)
                    .bearer_auth(token)
                    .json(&body)
                    .send()
                    .await
                    .expect("post")
                    .status()
            }));
        }
        let mut statuses = Vec::new();
        for task in tasks {
            statuses.push(task.await.expect("task"));
        }
        assert!(
            statuses
                .iter()
                .all(|s| *s == StatusCode::OK || *s == StatusCode::CONFLICT),
            "{statuses:?}"
        );
        let page = list(&server, &token, "?perPage=500").await;
        let tickets: Vec<&Value> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["ticketId"] == id.as_str())
            .collect();
        assert_eq!(tickets.len(), 1, "one ticket per id");
        assert_eq!(
            tickets[0]["status"], "canceled",
            "the cancel always wins in the end"
        );
        let plate = tickets[0]["licenseNumber"].as_str().unwrap_or_default();
        assert!(
            plate.starts_with("ABC") || plate.starts_with("CAR"),
            "the plate of one of the writes: {}",
            tickets[0]
        );
        // the ones that came after the cancel were refused, never applied
        let refused = statuses
            .iter()
            .filter(|s| **s == StatusCode::CONFLICT)
            .count();
        assert!(refused <= 19);
    }
}

/// Many writes at once share transactions (and, on SQLite, statements): each must still be
/// stored with its own fields, for its own provider, and a canceled ticket must still refuse.
async fn a_burst_of_tickets_is_stored_each_as_sent(backend: Backend) {
    let (server, first) = setup(backend).await;
    let (_, second) = server.provider("parkster", None).await;
    for id in ["b-canceled-0", "b-canceled-1"] {
        push(&server, &first, &seed_ticket(id)).await;
        push(
            &server,
            &first,
            &json!({"eventType": "TicketCanceled", "ticketId": id}),
        )
        .await;
    }
    // group commit's figures, read together so a batch cannot land between them
    const BATCHES: [&str; 4] = [
        "parkhub_write_batches_total",
        "parkhub_write_batch_jobs_total",
        "parkhub_write_batch_duration_seconds_count",
        "parkhub_write_batch_duration_seconds_sum",
    ];
    let before = server.metrics(&BATCHES).await;
    // all at once: the requests run concurrently on the test server's client
    let requests = (0..160_i64).map(|i| {
        let token = if i % 2 == 0 { &first } else { &second };
        // both providers use the same ticket ids: they are different tickets
        let id = if i % 40 == 0 {
            format!("b-canceled-{}", i / 40 % 2)
        } else {
            format!("b-{:03}", i / 2)
        };
        let mut body = seed_ticket(&id);
        body["licenseNumber"] = json!(format!("BRS{i:03}"));
        body["ticketCost"]["amountInclVat"] = json!(1000 + i);
        let server = &server;
        async move {
            let (status, _) = server.post(TICKETS, token, &body).await;
            (i, id, status)
        }
    });
    let answers = futures_util::future::join_all(requests).await;
    // /metrics shows how they were gathered: every ticket in some committed batch, and how
    // long each batch took the database
    let after = server.metrics(&BATCHES).await;
    let [batches, jobs, timed, seconds] = [0, 1, 2, 3].map(|i| after[i] - before[i]);
    assert_eq!(jobs, 160.0, "each ticket written in a batch, once");
    assert!((1.0..=160.0).contains(&batches), "{batches} batches");
    assert_eq!(timed, batches, "each batch timed once");
    assert!(
        seconds > 0.0 && seconds < 60.0,
        "{seconds} s in {batches} batches"
    );
    let mut sent = std::collections::HashMap::new();
    for (i, id, status) in answers {
        let canceled = id.starts_with("b-canceled") && i % 2 == 0;
        let expected = if canceled {
            StatusCode::CONFLICT
        } else {
            StatusCode::OK
        };
        assert_eq!(status, expected, "ticket {id} (request {i})");
        if !canceled {
            sent.insert((i % 2, id), i);
        }
    }
    for (provider, token) in [(0, &first), (1, &second)] {
        let page = list(&server, token, "?perPage=500").await;
        let tickets = page["data"].as_array().expect("data");
        let active: Vec<&Value> = tickets.iter().filter(|t| t["status"] == "active").collect();
        let expected = sent.keys().filter(|(p, _)| *p == provider).count();
        assert_eq!(active.len(), expected, "provider {provider}: {page}");
        for ticket in active {
            let id = ticket["ticketId"].as_str().expect("ticketId").to_owned();
            let i = sent[&(provider, id.clone())];
            assert_eq!(ticket["licenseNumber"], format!("BRS{i:03}"), "{ticket}");
            assert_eq!(ticket["ticketCost"]["amountInclVat"], 1000 + i, "{ticket}");
        }
        let canceled = tickets.iter().filter(|t| t["status"] == "canceled").count();
        assert_eq!(
            canceled,
            if provider == 0 { 2 } else { 0 },
            "provider {provider}"
        );
    }
    for ticket in list(&server, &first, "?perPage=500").await["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|t| t["status"] == "canceled")
    {
        assert_eq!(
            ticket["licenseNumber"], "ABC123",
            "a canceled ticket keeps its fields"
        );
    }
}

/// The same ticket sent many times at once lands in one batch (on PostgreSQL one upsert may
/// not change a row twice): every request is answered 200, and the ticket ends as exactly one
/// of the versions sent, whole.
async fn one_ticket_sent_many_times_at_once_ends_as_one_of_them(backend: Backend) {
    let (server, token) = setup(backend).await;
    let requests = (0..40_i64).map(|i| {
        let mut body = seed_ticket("same");
        body["licenseNumber"] = json!(format!("SAME{i:02}"));
        body["ticketCost"]["amountInclVat"] = json!(5000 + i);
        let (server, token) = (&server, &token);
        async move { (i, server.post(TICKETS, token, &body).await) }
    });
    for (i, (status, body)) in futures_util::future::join_all(requests).await {
        assert_eq!((status, body), (StatusCode::OK, json!([])), "request {i}");
    }
    let page = list(&server, &token, "").await;
    let tickets = page["data"].as_array().expect("data");
    assert_eq!(tickets.len(), 1, "{page}");
    let plate = tickets[0]["licenseNumber"].as_str().expect("licenseNumber");
    let i: i64 = plate
        .strip_prefix("SAME")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a plate that was not sent: {plate}"));
    assert!((0..40).contains(&i), "{plate}");
    assert_eq!(
        tickets[0]["ticketCost"]["amountInclVat"],
        5000 + i,
        "{page}"
    );
    assert_eq!(tickets[0]["status"], "active");
}
