//! Where a TransactionMonitor subscriber starts and what it has received, with real WebSocket
//! clients on both backends: explicit acks and reconnects, resume points, `after=latest`, and
//! resume points removed by retention.

mod common;

use std::time::Duration;

use common::Backend;
use common::events::{assert_quiet, close_code, connect, next_event, park};
use futures_util::SinkExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

backend_tests!(
    explicit_acks_and_reconnects_lose_nothing_and_repeat_nothing,
    resume_after_an_event_and_from_the_oldest,
    after_latest_misses_nothing_committed_once_the_socket_is_open,
    expired_resume_points_are_refused_explicitly,
);

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
