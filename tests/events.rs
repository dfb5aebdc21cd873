//! The TransactionMonitor WebSocket with real WebSocket clients against real servers, on both
//! backends: frames, heartbeat, routing, offline queueing, hand-over, slow consumers, shutdown,
//! and two PostgreSQL instances. Acks, resume points and retention: tests/events_resume.rs.

mod common;

use std::time::Duration;

use common::events::{assert_quiet, close_code, connect, next_event, next_frame, park};
use common::{Backend, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

backend_tests!(
    frames_have_the_seed_shape_and_go_to_the_identifiers_provider,
    heartbeats_keep_idle_sockets_alive,
    events_wait_for_an_offline_provider_then_come_live_without_gap,
    a_slow_consumer_is_cut_off_and_its_events_stay_queued,
    shutdown_closes_sockets_cleanly,
    sockets_need_a_provider_or_operator_token,
    a_burst_from_many_lanes_is_answered_committed_and_streamed_once_each,
);

async fn frames_have_the_seed_shape_and_go_to_the_identifiers_provider(backend: Backend) {
    let p = park(backend, |_| {}).await;
    let mut mine = connect(&p.server, &p.provider, "").await;
    let mut theirs = connect(&p.server, &p.other, "").await;
    let mut all = connect(&p.server, &p.server.operator, "").await;
    let started = p
        .report(
            "/api/v1/carparks/entries",
            "abc-123",
            "2025-01-06T10:00:00+01:00",
        )
        .await;
    let completed = p
        .report(
            "/api/v1/carparks/exits",
            "ABC123",
            "2025-01-06T11:16:30+01:00",
        )
        .await;
    p.report(
        "/api/v1/carparks/entries",
        "NOBODY1",
        "2025-01-06T10:00:00Z",
    )
    .await;

    let first = next_event(&mut mine).await;
    assert_eq!(
        first,
        json!({"EventType": "TransactionStarted", "FacilityNo": 1, "CarparkNo": 2, "TicketNo": "abc-123",
               "TicketType": 4, "ReferenceNo": "REF-ABC123", "StartTime": "2025-01-06T09:00:00Z", "EventID": started})
    );
    let second = next_event(&mut mine).await;
    assert_eq!(
        second,
        json!({"EventType": "TransactionCompleted", "FacilityNo": 1, "CarparkNo": 2, "TicketNo": "abc-123",
               "TicketType": 4, "ReferenceNo": "REF-ABC123", "CompletionTime": "2025-01-06T10:16:30Z",
               "RateNo": 1, "ParkingDuration": 77, "Amount": 40.0, "EventID": completed})
    );
    // the operator sees everything, the other provider nothing of this
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(
            next_event(&mut all).await["TicketNo"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert_eq!(seen, ["abc-123", "abc-123", "NOBODY1"]);
    assert_quiet(&mut theirs, Duration::from_millis(500)).await;
    assert_quiet(&mut mine, Duration::from_millis(300)).await;
}

async fn heartbeats_keep_idle_sockets_alive(backend: Backend) {
    let p = park(backend, |c| {
        c.heartbeat_interval = Duration::from_millis(200)
    })
    .await;
    let mut socket = connect(&p.server, &p.provider, "").await;
    for _ in 0..2 {
        let beat = next_frame(&mut socket).await;
        let at: jiff::Timestamp = beat["Heartbeat"]
            .as_str()
            .expect("a Heartbeat frame")
            .parse()
            .unwrap();
        assert!(at.as_second().abs_diff(jiff::Timestamp::now().as_second()) < 5);
        assert!(beat["Heartbeat"].as_str().unwrap().ends_with('Z'));
    }
}

async fn events_wait_for_an_offline_provider_then_come_live_without_gap(backend: Backend) {
    let p = park(backend, |_| {}).await;
    // 40 events while nobody listens
    let mut expected = p.stays(0, 20).await;
    let mut socket = connect(&p.server, &p.provider, "").await;
    // and 40 more while the backlog is being read
    let writer = {
        let server_url = p.server.url("/api/v1/carparks/entries");
        let exit_url = p.server.url("/api/v1/carparks/exits");
        let token = p.equipment.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            for i in 20..40usize {
                for (url, minute) in [(&server_url, "00"), (&exit_url, "50")] {
                    let day = 6 + i / 12;
                    let hour = (i % 12) * 2;
                    let body = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "ABC123", "ticketType": 4,
                                      "time": format!("2025-02-{day:02}T{hour:02}:{minute}:00Z")});
                    let answer: Value = client
                        .post(url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    ids.push(answer["eventId"].as_str().unwrap().to_owned());
                }
            }
            ids
        })
    };
    let mut received = Vec::new();
    for _ in 0..80 {
        received.push(
            next_event(&mut socket).await["EventID"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    expected.extend(writer.await.unwrap());
    assert_eq!(
        received, expected,
        "every event once, in order, across the hand-over"
    );
    assert_quiet(&mut socket, Duration::from_millis(300)).await;
    // delivered in auto mode: a new connection of the same subscription gets nothing old
    drop(socket);
    tokio::time::sleep(Duration::from_millis(400)).await;
    let mut again = connect(&p.server, &p.provider, "").await;
    assert_quiet(&mut again, Duration::from_millis(500)).await;
}

async fn a_slow_consumer_is_cut_off_and_its_events_stay_queued(backend: Backend) {
    let p = park(backend, |c| {
        c.socket_buffer = 4;
        c.slow_consumer_timeout = Duration::from_millis(300);
    })
    .await;
    let first = p.stays(0, 1).await;
    // many more events than socket buffers hold, written straight into the outbox
    let provider_id: i64 = {
        let (_, listed) = p
            .server
            .get("/api/v1/admin/providers", &p.server.operator)
            .await;
        listed[0]["id"].as_i64().unwrap()
    };
    let padding = "x".repeat(2000);
    let payload = json!({"EventType": "TransactionStarted", "Padding": padding}).to_string();
    common::insert_events(&p.server, provider_id, &payload, 6000).await;
    let mut socket = connect(&p.server, &p.provider, "?ack=explicit").await;
    // read nothing for a while: the server's buffer fills and it gives up on us
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let (frames, code) = close_code(&mut socket).await;
    assert_eq!(
        code,
        Some(CloseCode::from(4008)),
        "after {} frames",
        frames.len()
    );
    assert!(
        frames.len() < 6002,
        "the socket was cut before everything was written"
    );
    assert_eq!(frames[0]["EventID"], first[0]);
    // nothing was acknowledged, so everything is still queued
    let mut again = connect(&p.server, &p.provider, "?ack=explicit").await;
    assert_eq!(next_event(&mut again).await["EventID"], first[0]);
    assert_eq!(next_event(&mut again).await["EventID"], first[1]);
}

async fn shutdown_closes_sockets_cleanly(backend: Backend) {
    let p = park(backend, |_| {}).await;
    let mut socket = connect(&p.server, &p.provider, "").await;
    let stopping = tokio::spawn(p.server.stop());
    let (_, code) = close_code(&mut socket).await;
    assert_eq!(code, Some(CloseCode::Away));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("stopped within 10 s")
        .unwrap();
}

async fn sockets_need_a_provider_or_operator_token(backend: Backend) {
    let p = park(backend, |_| {}).await;
    let url = format!(
        "{}/api/TransactionMonitor",
        p.server.base.replacen("http", "ws", 1)
    );
    let attempt = |token: Option<String>, query: &'static str| {
        let url = format!("{url}{query}");
        async move {
            let mut request = url.into_client_request().unwrap();
            if let Some(token) = token {
                request
                    .headers_mut()
                    .insert("authorization", format!("Bearer {token}").parse().unwrap());
            }
            match tokio_tungstenite::connect_async(request).await {
                Err(tokio_tungstenite::tungstenite::Error::Http(response)) => response.status(),
                other => panic!(
                    "expected an HTTP refusal, got {:?}",
                    other.map(|(_, r)| r.status())
                ),
            }
        }
    };
    assert_eq!(attempt(None, "").await, StatusCode::UNAUTHORIZED);
    assert_eq!(
        attempt(Some(p.equipment.clone()), "").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        attempt(Some(p.provider.clone()), "?ack=sometimes").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        attempt(Some(p.provider.clone()), "?subscription=no%20spaces").await,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let _ = &p.other;
}

/// Two instances on one database: `days` entries (each with its exit) posted to one reach a
/// socket held by the other, in order, once, each entry within `within`.
async fn entries_reach_a_socket_on_another_instance(backend: Backend, days: u32, within: Duration) {
    let p = park(backend, |_| {}).await;
    let other = TestServer::start_on(&p.server.database_url, |_| {}).await;
    let mut socket = connect(&other, &p.provider, "").await;
    for day in 1..=days {
        let started = std::time::Instant::now();
        let id = p
            .report(
                "/api/v1/carparks/entries",
                "ABC123",
                &format!("2025-01-0{day}T10:00:00Z"),
            )
            .await;
        let frame = soon(&mut socket).await;
        let waited = started.elapsed();
        assert_eq!(frame["EventID"], id.as_str());
        assert!(waited < within, "took {waited:?}");
        p.report(
            "/api/v1/carparks/exits",
            "ABC123",
            &format!("2025-01-0{day}T11:00:00Z"),
        )
        .await;
        let exit = soon(&mut socket).await;
        assert_eq!(exit["EventType"], "TransactionCompleted");
    }
    assert_quiet(&mut socket, Duration::from_millis(1500)).await;
}

async fn soon(socket: &mut common::events::Socket) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(5), next_event(socket))
        .await
        .expect("an event reaches the other instance's socket")
}

/// On one SQLite file there are no notifications between instances: the other instance's
/// once-a-second poll of the last event number finds the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_instances_an_entry_on_one_reaches_a_socket_on_another_within_the_poll() {
    entries_reach_a_socket_on_another_instance(Backend::Sqlite, 2, Duration::from_millis(2500))
        .await;
}

/// On PostgreSQL, well under the 1 s poll: the other instance is woken by NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_instances_an_entry_on_one_reaches_a_socket_on_another() {
    entries_reach_a_socket_on_another_instance(Backend::Postgres, 5, Duration::from_millis(500))
        .await;
}

/// Every lane of a busy car park reports at once, and one vehicle's entry (then another's exit)
/// twice: each report is answered once, the repeat with the first answer; the stays and their
/// events are written by the batching writer (group commit on SQLite, a batcher on
/// PostgreSQL), and a subscriber gets every event exactly once, each vehicle's
/// TransactionStarted before its TransactionCompleted.
async fn a_burst_from_many_lanes_is_answered_committed_and_streamed_once_each(backend: Backend) {
    const LANES: usize = 24;
    let p = park(backend, |_| {}).await;
    let mut all = connect(&p.server, &p.server.operator, "").await;
    let jobs_before = p.server.metric("parkhub_write_batch_jobs_total").await;
    let plates: Vec<String> = (0..LANES).map(|i| format!("LANE{i:02}")).collect();
    let (server, equipment, lanes) = (&p.server, p.equipment.as_str(), &plates);
    let burst = move |path: &'static str, twice: usize, time: &'static str| {
        let reports = lanes.iter().chain([&lanes[twice]]).map(move |plate| {
            let body = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": plate, "ticketType": 4, "time": time});
            async move { server.post(path, equipment, &body).await }
        });
        futures_util::future::join_all(reports)
    };
    // Each report answered once: one 201 a vehicle, and the repeat a 200 with the same body.
    let answered = |answers: Vec<(StatusCode, Value)>| {
        let (created, repeated): (Vec<_>, Vec<_>) = answers
            .into_iter()
            .partition(|(status, _)| *status == StatusCode::CREATED);
        assert_eq!(created.len(), LANES, "{created:?} {repeated:?}");
        assert_eq!(repeated.len(), 1, "{repeated:?}");
        assert_eq!(repeated[0].0, StatusCode::OK, "{repeated:?}");
        let first = created
            .iter()
            .find(|(_, body)| body["transactionId"] == repeated[0].1["transactionId"])
            .unwrap_or_else(|| panic!("the repeat names a stay created: {repeated:?}"));
        assert_eq!(first.1, repeated[0].1, "the repeat gets the first answer");
        let bodies: Vec<Value> = created.into_iter().map(|(_, body)| body).collect();
        let ids: std::collections::HashSet<_> =
            bodies.iter().map(|b| b["transactionId"].clone()).collect();
        assert_eq!(ids.len(), LANES, "a stay each: {bodies:?}");
        bodies
    };
    let entries = answered(burst("/api/v1/carparks/entries", 0, "2025-03-03T08:00:00Z").await);
    let exits = answered(burst("/api/v1/carparks/exits", LANES - 1, "2025-03-03T09:30:00Z").await);
    for exit in &exits {
        assert_eq!(
            (exit["parkingDuration"].as_i64(), exit["amount"].as_f64()),
            (Some(90), Some(40.0)),
            "priced: {exit}"
        );
        assert!(
            entries
                .iter()
                .any(|entry| entry["transactionId"] == exit["transactionId"]),
            "closes a stay entered: {exit}"
        );
    }
    let jobs = p.server.metric("parkhub_write_batch_jobs_total").await - jobs_before;
    assert!(
        jobs >= 2 * LANES as u64,
        "every stay and its event written by the batching writer: {jobs} jobs"
    );

    let mut streamed = Vec::new();
    for _ in 0..2 * LANES {
        let frame = next_event(&mut all).await;
        streamed.push((
            frame["EventType"].as_str().unwrap_or_default().to_owned(),
            frame["TicketNo"].as_str().unwrap_or_default().to_owned(),
            frame["EventID"].as_str().unwrap_or_default().to_owned(),
        ));
    }
    assert_quiet(&mut all, Duration::from_millis(500)).await;
    let mut sent: Vec<&str> = entries
        .iter()
        .chain(&exits)
        .filter_map(|body| body["eventId"].as_str())
        .collect();
    let mut got: Vec<&str> = streamed.iter().map(|(_, _, id)| id.as_str()).collect();
    sent.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, sent, "every event once");
    for plate in &plates {
        let at = |kind: &str| {
            streamed
                .iter()
                .position(|(k, p, _)| k == kind && p == plate)
                .unwrap_or_else(|| panic!("{kind} of {plate}: {streamed:?}"))
        };
        assert!(
            at("TransactionStarted") < at("TransactionCompleted"),
            "{plate} started before it completed: {streamed:?}"
        );
    }
}
