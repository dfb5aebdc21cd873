//! The world of the ticket tests: lot 12 in Stockholm, a provider, and helpers to push and
//! list tickets.

use reqwest::StatusCode;
use serde_json::{Value, json};

use super::{Backend, TestServer};

pub const TICKETS: &str = "/api/v1/actions/tickets";

pub fn seed_ticket(ticket_id: &str) -> Value {
    json!({
        "eventType": "CreateOrUpdate",
        "ticketId": ticket_id,
        "parkingLotId": 12,
        "startDate": "2023-10-01T12:00:00Z",
        "endDate": "2023-10-01T12:00:00Z",
        "licenseNumber": "ABC123",
        "ticketCost": {"amountInclVat": 12000, "vatRate": 25, "currencyCode": "SEK"}
    })
}

pub async fn setup(backend: Backend) -> (TestServer, String) {
    let server = TestServer::start(backend).await;
    server.lot(12, 123, "Europe/Stockholm").await;
    let (_, token) = server.provider("easypark", None).await;
    (server, token)
}

pub async fn list(server: &TestServer, token: &str, query: &str) -> Value {
    let (status, body) = server.get(&format!("{TICKETS}{query}"), token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "ok");
    body
}

pub async fn push(server: &TestServer, token: &str, body: &Value) {
    let (status, answer) = server.post(TICKETS, token, body).await;
    assert_eq!(
        (status, answer.clone()),
        (StatusCode::OK, json!([])),
        "{body}"
    );
}

/// The ticket ids of a page, in order.
pub fn ticket_ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["ticketId"].as_str().unwrap().to_owned())
        .collect()
}
