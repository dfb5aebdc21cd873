//! The TransactionMonitor WebSocket with real WebSocket clients against real servers, on both
//! backends: frames, heartbeat, routing, offline queueing, hand-over, explicit acks, resume,
//! retention, slow consumers, shutdown, and two PostgreSQL instances.

mod common;

use std::time::Duration;

use common::{Backend, TestServer};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

backend_tests!(
    frames_have_the_seed_shape_and_go_to_the_identifiers_provider,
    heartbeats_keep_idle_sockets_alive,
    events_wait_for_an_offline_provider_then_come_live_without_gap,
    explicit_acks_and_reconnects_lose_nothing_and_repeat_nothing,
    resume_after_an_event_and_from_the_oldest,
    after_latest_misses_nothing_committed_once_the_socket_is_open,
    expired_resume_points_are_refused_explicitly,
    a_slow_consumer_is_cut_off_and_its_events_stay_queued,
    shutdown_closes_sockets_cleanly,
    sockets_need_a_provider_or_operator_token,
);

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &TestServer, token: &str, query: &str) -> Socket {
    let url = format!(
        "{}/api/TransactionMonitor{query}",
        server.base.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// The next frame that is not a heartbeat, within 5 s.
async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame.get("Heartbeat").is_none() {
            return frame;
        }
    }
}

async fn next_frame(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("the socket is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => continue,
        }
    }
}

/// Nothing but heartbeats arrive for `wait`.
async fn assert_quiet(socket: &mut Socket, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            assert!(frame.get("Heartbeat").is_some(), "unexpected frame {frame}");
        }
    }
}

/// The close frame's code, reading past anything else.
async fn close_code(socket: &mut Socket) -> (Vec<Value>, Option<CloseCode>) {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("closed within 10 s")
        {
            Some(Ok(Message::Text(text))) => frames.push(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => return (frames, frame.map(|f| f.code)),
            Some(Ok(_)) => {}
            None | Some(Err(_)) => return (frames, None),
        }
    }
}

struct Park {
    server: TestServer,
    equipment: String,
    provider: String,
    other: String,
}

async fn park(backend: Backend, configure: impl FnOnce(&mut parkhub::ServeConfig)) -> Park {
    let server = TestServer::start_with(backend, configure).await;
    server.carpark(12, 1, 2, 400).await;
    let equipment = server.equipment("gate", &[12]).await;
    let (_, provider) = server.provider("easypark", None).await;
    let (_, other) = server.provider("other", None).await;
    for (token, plate) in [(&provider, "ABC123"), (&other, "OTH999")] {
        let (status, body) = server
            .call(Method::PUT, "/api/v1/identifiers", Some(token), Some(&json!({"ticketNo": plate, "ticketType": 4, "referenceNo": format!("REF-{plate}")})))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    Park {
        server,
        equipment,
        provider,
        other,
    }
}

impl Park {
    /// Posts an entry (or exit) and returns its EventID.
    async fn report(&self, path: &str, plate: &str, time: &str) -> String {
        let (status, body) = self
            .server
            .post(path, &self.equipment, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": plate, "ticketType": 4, "time": time}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["eventId"].as_str().unwrap().to_owned()
    }

    /// n stays (entry and exit) of the provider's plate, one per hour from 2025-01-06; their
    /// EventIDs in order.
    async fn stays(&self, first: usize, n: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in first..first + n {
            let day = 6 + i / 12;
            let hour = (i % 12) * 2;
            ids.push(
                self.report(
                    "/api/v1/carparks/entries",
                    "ABC123",
                    &format!("2025-02-{day:02}T{hour:02}:00:00Z"),
                )
                .await,
            );
            ids.push(
                self.report(
                    "/api/v1/carparks/exits",
                    "ABC123",
                    &format!("2025-02-{day:02}T{hour:02}:50:00Z"),
                )
                .await,
            );
        }
        ids
    }
}

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

async fn explicit_acks_and_reconnects_lose_nothing_and_repeat_nothing(backend: Backend) {
    let p = park(backend, |_| {}).await;
    let mut expected = p.stays(0, 5).await;
    // events keep arriving while the subscriber reconnects again and again
    let writer = {
        let entries = p.server.url("/api/v1/carparks/entries");
        let exits = p.server.url("/api/v1/carparks/exits");
        let token = p.equipment.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut ids = Vec::new();
            for i in 5..20usize {
                for (url, minute) in [(&entries, "00"), (&exits, "50")] {
                    let body = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "ABC123", "ticketType": 4,
                                      "time": format!("2025-03-{:02}T{:02}:{minute}:00Z", 1 + i / 12, (i % 12) * 2)});
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
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
            ids
        })
    };
    let total = expected.len() + 30;
    let mut received: Vec<String> = Vec::new();
    // read a few at a time, acknowledging each, then drop the connection; repeat
    for round in 0.. {
        if received.len() == total {
            break;
        }
        assert!(round < 60, "too many rounds");
        let mut socket =
            connect(&p.server, &p.provider, "?ack=explicit&subscription=billing").await;
        for _ in 0..7 {
            if received.len() == total {
                break;
            }
            let id = next_event(&mut socket).await["EventID"]
                .as_str()
                .unwrap()
                .to_owned();
            socket
                .send(Message::Text(json!({"Ack": id}).to_string().into()))
                .await
                .unwrap();
            received.push(id);
        }
        socket.close(None).await.unwrap();
        let _ = close_code(&mut socket).await;
    }
    expected.extend(writer.await.unwrap());
    assert_eq!(received, expected);
    // unacknowledged events come again on the next connection
    let more = p.stays(15, 2).await;
    let mut socket = connect(&p.server, &p.provider, "?ack=explicit&subscription=billing").await;
    assert_eq!(next_event(&mut socket).await["EventID"], more[0]);
    assert_eq!(next_event(&mut socket).await["EventID"], more[1]);
    socket
        .send(Message::Text(json!({"Ack": more[0]}).to_string().into()))
        .await
        .unwrap();
    socket.close(None).await.unwrap();
    let _ = close_code(&mut socket).await;
    let mut socket = connect(&p.server, &p.provider, "?ack=explicit&subscription=billing").await;
    assert_eq!(
        next_event(&mut socket).await["EventID"],
        more[1],
        "resent from after the last ack"
    );
    // an ack of something never sent is an error frame, not a jump
    socket
        .send(Message::Text(
            json!({"Ack": "not-an-event"}).to_string().into(),
        ))
        .await
        .unwrap();
    let mut error = next_event(&mut socket).await;
    while error["EventID"].is_string() {
        error = next_event(&mut socket).await;
    }
    assert_eq!(error["Error"], "unknown_ack");
    // another subscription of the same provider has its own position
    let mut fresh = connect(&p.server, &p.provider, "?subscription=audit").await;
    assert_eq!(next_event(&mut fresh).await["EventID"], expected[0]);
}

async fn resume_after_an_event_and_from_the_oldest(backend: Backend) {
    let p = park(backend, |_| {}).await;
    let ids = p.stays(0, 3).await;
    let mut socket = connect(&p.server, &p.provider, &format!("?after={}", ids[2])).await;
    assert_eq!(next_event(&mut socket).await["EventID"], ids[3]);
    assert_eq!(next_event(&mut socket).await["EventID"], ids[4]);
    drop(socket);
    let mut oldest = connect(&p.server, &p.provider, "?after=oldest&subscription=replay").await;
    assert_eq!(next_event(&mut oldest).await["EventID"], ids[0]);
    let mut latest = connect(&p.server, &p.provider, "?after=latest&subscription=live").await;
    assert_quiet(&mut latest, Duration::from_millis(300)).await;
    let next = p.stays(3, 1).await;
    assert_eq!(next_event(&mut latest).await["EventID"], next[0]);
    // another provider's EventID is no resume point for this one
    let (status, theirs) = p
        .server
        .post("/api/v1/carparks/entries", &p.equipment, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "OTH999", "ticketType": 4, "time": "2025-03-01T10:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let mut refused = connect(
        &p.server,
        &p.provider,
        &format!("?after={}", theirs["eventId"].as_str().unwrap()),
    )
    .await;
    let (frames, code) = close_code(&mut refused).await;
    assert_eq!(frames[0]["Error"], "resume_point_unknown", "{frames:?}");
    assert_eq!(code, Some(CloseCode::from(4410)));
}

/// `after=latest` is settled before the 101: events committed the moment the client has its
/// socket are all sent (they were lost while the socket's task read "latest" only after the
/// 101, behind the writes that had just been made).
async fn after_latest_misses_nothing_committed_once_the_socket_is_open(backend: Backend) {
    let p = park(backend, |_| {}).await;
    for round in 0..8 {
        let plates: Vec<String> = (0..6).map(|i| format!("R{round}N{i}")).collect();
        for plate in &plates {
            let (status, body) = p
                .server
                .call(
                    Method::PUT,
                    "/api/v1/identifiers",
                    Some(&p.provider),
                    Some(&json!({"ticketNo": plate, "ticketType": 4})),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{body}");
        }
        let query = format!("?after=latest&subscription=round{round}");
        let mut socket = connect(&p.server, &p.provider, &query).await;
        let entries = plates
            .iter()
            .map(|plate| p.report("/api/v1/carparks/entries", plate, "2025-03-01T10:00:00Z"));
        let mut sent = futures_util::future::join_all(entries).await;
        let mut received = Vec::new();
        for _ in &sent {
            received.push(
                next_event(&mut socket).await["EventID"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            );
        }
        sent.sort();
        received.sort();
        assert_eq!(received, sent, "round {round}");
    }
}

async fn expired_resume_points_are_refused_explicitly(backend: Backend) {
    let p = park(backend, |c| {
        c.event_retention = Duration::from_millis(300);
        c.retention_interval = Duration::from_millis(100);
    })
    .await;
    // the subscription exists and has read nothing when its events expire
    let mut socket = connect(&p.server, &p.provider, "?ack=explicit").await;
    socket.close(None).await.unwrap();
    let _ = close_code(&mut socket).await;
    let ids = p.stays(0, 2).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let mut expired = connect(&p.server, &p.provider, "?ack=explicit").await;
    let (frames, code) = close_code(&mut expired).await;
    assert_eq!(frames.len(), 1, "nothing is silently skipped: {frames:?}");
    assert_eq!(frames[0]["Error"], "resume_point_expired");
    assert_eq!(code, Some(CloseCode::from(4410)));
    let mut by_id = connect(&p.server, &p.provider, &format!("?after={}", ids[0])).await;
    let (frames, code) = close_code(&mut by_id).await;
    assert_eq!(frames[0]["Error"], "resume_point_unknown");
    assert_eq!(code, Some(CloseCode::from(4410)));
    // accepting the gap explicitly works, and new events flow
    let mut accepted = connect(&p.server, &p.provider, "?ack=explicit&after=oldest").await;
    let next = p.stays(2, 1).await;
    assert_eq!(next_event(&mut accepted).await["EventID"], next[0]);
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

/// Two instances on one PostgreSQL database: an entry posted to one reaches a socket held by
/// the other within a second, in order, once.
mod postgres_instances {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_entry_on_one_instance_reaches_a_socket_on_another() {
        let p = park(Backend::Postgres, |_| {}).await;
        let other = TestServer::start_on(&p.server.database_url, |_| {}).await;
        let mut socket = connect(&other, &p.provider, "").await;
        let mut expected = Vec::new();
        for i in 0..5 {
            let started = std::time::Instant::now();
            let id = p
                .report(
                    "/api/v1/carparks/entries",
                    "ABC123",
                    &format!("2025-01-0{}T10:00:00Z", i + 1),
                )
                .await;
            let frame = next_event(&mut socket).await;
            let waited = started.elapsed();
            assert_eq!(frame["EventID"], id.as_str());
            // well under the 1 s poll: the other instance was woken by NOTIFY
            assert!(waited < Duration::from_millis(500), "took {waited:?}");
            expected.push(id);
            p.report(
                "/api/v1/carparks/exits",
                "ABC123",
                &format!("2025-01-0{}T11:00:00Z", i + 1),
            )
            .await;
            let exit = next_event(&mut socket).await;
            assert_eq!(exit["EventType"], "TransactionCompleted");
        }
        assert_quiet(&mut socket, Duration::from_millis(500)).await;
    }
}
