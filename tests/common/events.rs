//! The TransactionMonitor tests' world: a barrier car park with a gate and two providers, each
//! with a registered plate, and WebSocket clients that read frames with timeouts.

use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::{Backend, TestServer};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(server: &TestServer, token: &str, query: &str) -> Socket {
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
pub async fn next_event(socket: &mut Socket) -> Value {
    loop {
        let frame = next_frame(socket).await;
        if frame.get("Heartbeat").is_none() {
            return frame;
        }
    }
}

pub async fn next_frame(socket: &mut Socket) -> Value {
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
pub async fn assert_quiet(socket: &mut Socket, wait: Duration) {
    let deadline = tokio::time::Instant::now() + wait;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, socket.next()).await {
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).unwrap();
            assert!(frame.get("Heartbeat").is_some(), "unexpected frame {frame}");
        }
    }
}

/// The close frame's code, reading past anything else.
pub async fn close_code(socket: &mut Socket) -> (Vec<Value>, Option<CloseCode>) {
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

pub struct Park {
    pub server: TestServer,
    pub equipment: String,
    pub provider: String,
    pub other: String,
}

pub async fn park(backend: Backend, configure: impl FnOnce(&mut parkhub::ServeConfig)) -> Park {
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
    pub async fn report(&self, path: &str, plate: &str, time: &str) -> String {
        let (status, body) = self
            .server
            .post(path, &self.equipment, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": plate, "ticketType": 4, "time": time}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["eventId"].as_str().unwrap().to_owned()
    }

    /// n stays (entry and exit) of the provider's plate, one per hour from 2025-01-06; their
    /// EventIDs in order.
    pub async fn stays(&self, first: usize, n: usize) -> Vec<String> {
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
