//! Fuzzing the service over real HTTP and WebSocket, on SQLite and PostgreSQL: arbitrary JSON
//! (and arbitrary bytes) to every POST, PUT and PATCH route, arbitrary query strings to every
//! GET route, and arbitrary frames to the TransactionMonitor. No answer may be a 5xx, every
//! error has the one JSON error shape, and a socket survives whatever a client sends.
//! `PARKHUB_FUZZ_CASES` sets the number of cases of each property (default 256).

mod common;
#[path = "common/fuzz.rs"]
mod fuzz;
#[path = "common/authz.rs"]
mod matrix;

use std::time::Duration;

use common::Backend;
use futures_util::{SinkExt, StreamExt};
use matrix::{MONITOR_PATH, PUBLIC, Route, World};
use parkhub::principals::Role;
use proptest::prelude::*;
use proptest::test_runner::TestRunner;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

/// What one case sends.
#[derive(Debug, Clone)]
enum Payload {
    Json(Value),
    Bytes(Vec<u8>),
    Query(Vec<(String, String)>),
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The route's path with ids of the world's objects, so bodies reach the deepest checks.
fn path(route: &Route, w: &World) -> String {
    let id = if route.path.contains("/providers/") {
        w.provider_ids[0].to_string()
    } else if route.path.contains("/tenants/") {
        w.tenant_ids[0].to_string()
    } else if route.path.contains("/equipment/") {
        w.equipment_ids[0].to_string()
    } else if route.path.contains("/permit-allocations/") {
        w.allocations[0].clone()
    } else {
        "12".into()
    };
    route
        .path
        .replace("{id}", &id)
        .replace("{rateNo}", "3")
        .replace("{permit_id}", &w.permits[0])
        .replace("{email}", "a@example.com")
        .replace("{licenseNumber}", "ABC123")
}

/// Valid bodies of a route, to mutate.
fn templates(route: &Route, w: &World) -> Vec<Value> {
    let mut out: Vec<Value> = route.body.iter().cloned().collect();
    out.extend(match route.key().as_str() {
        "POST /api/v1/actions/tickets" => vec![json!({"eventType": "CreateOrUpdate", "ticketId": "f-1",
            "parkingLotId": 12, "startDate": "2025-02-10T12:00:00+01:00", "endDate": "2025-02-10T15:20:00+0100",
            "licenseNumber": "abc 123", "ticketCost": {"amountInclVat": 6100, "vatRate": 25, "currencyCode": "SEK"}})],
        "POST /permit/v3/end_user_permit" => vec![json!({"email": "f@example.com",
            "permit_allocation_id": w.allocations[0], "valid_from": "2030-01-01", "valid_to": "2030-02-01"})],
        "PUT /permit/v3/end_user_permit/{permit_id}" => vec![json!({"valid_from": "2030-01-01", "valid_to": "2030-02-01"})],
        "POST /api/v1/carparks/entries" | "POST /api/v1/carparks/exits" => vec![json!({"facilityNo": 1,
            "carparkNo": 2, "ticketNo": "FZZ1", "ticketType": 4, "time": "2025-03-30T02:30:00", "rateNo": 1})],
        "PUT /api/v1/identifiers" => vec![json!({"ticketNo": "QR-9", "ticketType": 5, "validCarparks": [12],
            "validFrom": "2026-01-01T00:00:00Z", "validUntil": "2026-02-01T00:00:00+01:00", "referenceNo": "R9"})],
        "POST /api/v1/admin/permit-allocations" => vec![json!({"tenantId": w.tenant_ids[0],
            "permitDefinitionId": 1, "parkingSpacesCount": 5, "permitCount": 2, "validFrom": "2030-01-01", "validTo": "2030-12-31"})],
        "POST /api/v1/admin/permit-definitions" => vec![json!({"name": "Nights", "parkingLotIds": [12, 14],
            "timeZone": "Europe/Stockholm", "schedule": [{"days": ["mon", "sun"], "from": "22:00", "to": "06:00"}]})],
        "PUT /api/v1/admin/parking-lots/{id}/rates/{rateNo}" => vec![json!({"name": "Day", "currencyCode": "SEK",
            "freeMinutes": 15, "periodMinutes": 60, "pricePerPeriod": 2000, "maxPerDay": 15000,
            "bands": [{"from": "08:00", "to": "18:00", "pricePerPeriod": 3000}]})],
        "POST /api/v1/admin/parking-lots" | "PATCH /api/v1/admin/parking-lots/{id}" => vec![json!({"id": 40,
            "name": "Fuzz", "zoneCode": 40, "timeZone": "America/St_Johns", "facilityNo": 4, "carparkNo": 40,
            "capacity": 10, "graceMinutes": 0})],
        "POST /api/v1/parking-rights/check" => vec![json!({"licenseNumbers": ["ABC123", "aaa 111"],
            "zoneCode": 12, "at": "2025-10-26T02:30:00"})],
        "POST /api/v1/tokens/rotate" => vec![json!({"overlapSeconds": 60})],
        _ => vec![],
    });
    out
}

/// Query parameters any GET route reads, with any values.
fn query() -> impl Strategy<Value = Payload> {
    let names = prop::sample::select(vec![
        "page",
        "perPage",
        "licenseNumber",
        "parkingLotId",
        "zoneCode",
        "at",
        "updatedSince",
        "facilityNo",
        "carparkNo",
        "ticketNo",
        "ticketType",
        "rateNo",
        "from",
        "to",
        "tenantId",
        "permit_allocation_id",
        "x",
    ]);
    prop::collection::vec((names.prop_map(str::to_owned), fuzz::text()), 0..5)
        .prop_map(Payload::Query)
}

fn role_caller(role: Role) -> &'static str {
    match role {
        Role::Operator => "operator-a",
        Role::Provider => "provider-a",
        Role::Tenant => "tenant-a",
        Role::Equipment => "gate-a",
        Role::Enforcement => "officer-a",
    }
}

async fn send(w: &World, route: &Route, payload: &Payload) -> Result<(), TestCaseError> {
    let token = if route.key() == "POST /api/v1/tokens/rotate" {
        // a fresh token each time: a rotation with no overlap retires the one it used
        w.server.token_for(Role::Operator, "rotating").await
    } else {
        w.token(role_caller(route.roles[0])).to_owned()
    };
    let mut url = w.server.url(&path(route, w));
    let mut request = w.server.client.request(route.method.clone(), &url);
    match payload {
        Payload::Json(body) => request = request.json(body),
        Payload::Bytes(bytes) => {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(bytes.clone())
        }
        Payload::Query(pairs) => {
            let mut encoded = form_urlencoded::Serializer::new(String::new());
            for (k, v) in pairs {
                encoded.append_pair(k, v);
            }
            url = format!("{url}?{}", encoded.finish());
            request = w.server.client.request(route.method.clone(), &url);
        }
    }
    let response = request.bearer_auth(token).send().await.expect("an answer");
    let status = response.status();
    let text = response.text().await.unwrap();
    prop_assert!(
        !status.is_server_error(),
        "{} {payload:?}: {status} {text}",
        route.key()
    );
    if status.is_client_error() {
        let body: Value = serde_json::from_str(&text).map_err(|e| {
            TestCaseError::fail(format!(
                "{}: {status} is not JSON ({e}): {text}",
                route.key()
            ))
        })?;
        prop_assert_eq!(&body["status"], "error", "{}", text);
        prop_assert!(
            body["error_id"].as_str().is_some_and(|e| !e.is_empty()),
            "{}",
            text
        );
    }
    Ok(())
}

fn every_route_answers_any_input_without_a_5xx(backend: Backend) {
    let runtime = runtime();
    let w = runtime.block_on(matrix::world(backend));
    let routes: Vec<Route> = matrix::routes()
        .into_iter()
        .filter(|r| r.roles != PUBLIC && r.path != MONITOR_PATH)
        .collect();
    let cases: Vec<(usize, BoxedStrategy<Payload>)> = routes
        .iter()
        .enumerate()
        .map(|(i, route)| {
            let strategy = if route.method == Method::GET {
                query().boxed()
            } else {
                prop_oneof![
                    6 => fuzz::body(templates(route, &w)).prop_map(Payload::Json),
                    1 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Payload::Bytes),
                ]
                .boxed()
            };
            (i, strategy)
        })
        .collect();
    let strategy = prop::sample::select((0..cases.len()).collect::<Vec<_>>())
        .prop_flat_map(move |i| (Just(i), cases[i].1.clone()));
    let started = std::time::Instant::now();
    let mut runner = TestRunner::new(fuzz::config());
    let result = runner.run(&strategy, |(i, payload)| {
        runtime.block_on(send(&w, &routes[i], &payload))
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
    eprintln!("http: {} cases in {:?}", fuzz::cases(), started.elapsed());
}

/// A frame a client might send: anything, an Ack of anything, or bytes.
fn frame() -> impl Strategy<Value = Message> {
    prop_oneof![
        fuzz::text().prop_map(Message::text),
        fuzz::json().prop_map(|v| Message::text(v.to_string())),
        fuzz::mutated(json!({"Ack": "x"})).prop_map(|v| Message::text(v.to_string())),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(Message::binary),
        prop::collection::vec(any::<u8>(), 0..64).prop_map(|b| Message::Ping(b.into())),
    ]
}

fn sockets_survive_any_client_frame(backend: Backend) {
    let runtime = runtime();
    let w = runtime.block_on(matrix::world(backend));
    for ack in ["explicit", "auto"] {
        let auth = matrix::bearer(w.token("provider-a"));
        let query = format!("?ack={ack}&subscription=fuzz-{ack}");
        let socket = runtime.block_on(matrix::handshake(&w.server, Some(&auth), &query));
        let socket = tokio::sync::Mutex::new(socket.expect("the socket opens"));
        let mut runner = TestRunner::new(fuzz::config());
        let sent = std::sync::atomic::AtomicU64::new(0);
        let result = runner.run(&frame(), |message| {
            let n = sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            // with ack=auto every text frame is answered with one error; with ack=explicit
            // the marker's unknown_ack names it
            let mut errors_due = usize::from(matches!(message, Message::Text(_))) + 1;
            runtime.block_on(async {
                let mut socket = socket.lock().await;
                socket.send(message).await.unwrap();
                // a marker the server answers once it has read everything sent before it
                let marker = format!("marker-{n}");
                let marker_frame = json!({"Ack": marker}).to_string();
                socket.send(Message::text(marker_frame)).await.unwrap();
                loop {
                    let next = tokio::time::timeout(Duration::from_secs(10), socket.next()).await;
                    let Ok(Some(Ok(message))) = next else {
                        return Err(TestCaseError::fail(format!("the socket ended: {next:?}")));
                    };
                    let Message::Text(text) = message else {
                        prop_assert!(matches!(message, Message::Pong(_)), "{message:?}");
                        continue;
                    };
                    let frame: Value = serde_json::from_str(&text).unwrap();
                    prop_assert!(
                        frame.get("Error").is_some()
                            || frame.get("EventType").is_some()
                            || frame.get("Heartbeat").is_some(),
                        "{frame}"
                    );
                    if frame.get("Error").is_some() {
                        errors_due = errors_due.saturating_sub(1);
                    }
                    let named = frame["Message"]
                        .as_str()
                        .is_some_and(|m| m.contains(&marker));
                    if named || (ack == "auto" && errors_due == 0) {
                        return Ok(());
                    }
                }
            })
        });
        if let Err(failure) = result {
            panic!("{failure}");
        }
    }
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nul_characters_are_answered_cleanly() {
        super::nul_characters_are_answered_cleanly(super::Backend::Sqlite).await
    }
    #[test]
    fn every_route_answers_any_input_without_a_5xx() {
        super::every_route_answers_any_input_without_a_5xx(super::Backend::Sqlite);
    }
    #[test]
    fn sockets_survive_any_client_frame() {
        super::sockets_survive_any_client_frame(super::Backend::Sqlite);
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nul_characters_are_answered_cleanly() {
        super::nul_characters_are_answered_cleanly(super::Backend::Postgres).await
    }
    #[test]
    fn every_route_answers_any_input_without_a_5xx() {
        super::every_route_answers_any_input_without_a_5xx(super::Backend::Postgres);
    }
    #[test]
    fn sockets_survive_any_client_frame() {
        super::sockets_survive_any_client_frame(super::Backend::Postgres);
    }
}

/// Text with a NUL character, which PostgreSQL cannot store or compare, anywhere a client can
/// put text: a clean 4xx (or the same answer as without it), never a 5xx or a dropped socket.
async fn nul_characters_are_answered_cleanly(backend: Backend) {
    let w = matrix::world(backend).await;
    let nul = "a\u{0}b";
    let requests = [
        (
            "provider-a",
            Method::POST,
            "/api/v1/actions/tickets".to_owned(),
            Some(json!({"eventType": "TicketCanceled", "ticketId": nul})),
        ),
        (
            "provider-a",
            Method::POST,
            "/api/v1/actions/tickets".to_owned(),
            Some(json!({"eventType": "CreateOrUpdate", "ticketId": nul,
            "parkingLotId": 12, "startDate": "2025-01-01T10:00:00Z", "licenseNumber": "ABC123"})),
        ),
        (
            "provider-a",
            Method::GET,
            "/api/v1/actions/tickets?licenseNumber=a%00b".to_owned(),
            None,
        ),
        (
            "provider-a",
            Method::PUT,
            "/api/v1/identifiers".to_owned(),
            Some(json!({"ticketNo": nul, "ticketType": 5})),
        ),
        (
            "provider-a",
            Method::PUT,
            "/api/v1/identifiers".to_owned(),
            Some(json!({"ticketNo": "QR", "ticketType": 5, "referenceNo": nul})),
        ),
        (
            "provider-a",
            Method::DELETE,
            "/api/v1/identifiers/5/a%00b".to_owned(),
            None,
        ),
        (
            "tenant-a",
            Method::GET,
            "/permit/v3/end_user_permit/a%00b".to_owned(),
            None,
        ),
        (
            "tenant-a",
            Method::GET,
            "/permit/v3/tenant_issued_permits?permit_allocation_id=a%00b".to_owned(),
            None,
        ),
        (
            "tenant-a",
            Method::POST,
            "/permit/v3/end_user_permit".to_owned(),
            Some(json!({"email": "x@example.com", "permit_allocation_id": nul})),
        ),
        (
            "gate-a",
            Method::POST,
            "/api/v1/carparks/entries".to_owned(),
            Some(json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": nul, "ticketType": 5})),
        ),
        (
            "operator-a",
            Method::POST,
            "/api/v1/admin/providers".to_owned(),
            Some(json!({"name": nul})),
        ),
        (
            "operator-a",
            Method::POST,
            "/api/v1/admin/parking-lots".to_owned(),
            Some(json!({"id": 41, "name": nul, "zoneCode": 41})),
        ),
        (
            "operator-a",
            Method::GET,
            "/api/v1/admin/permit-allocations/a%00b".to_owned(),
            None,
        ),
        (
            "operator-a",
            Method::GET,
            "/api/v1/admin/parking-right-checks?licenseNumber=a%00b".to_owned(),
            None,
        ),
        (
            "operator-a",
            Method::POST,
            "/api/v1/admin/permit-definitions".to_owned(),
            Some(json!({"name": nul, "parkingLotIds": [12]})),
        ),
    ];
    let mut failures = Vec::new();
    for (who, method, path, body) in requests {
        let (status, answer) = w
            .server
            .call(method.clone(), &path, Some(w.token(who)), body.as_ref())
            .await;
        if status.is_server_error() {
            failures.push(format!("{method} {path}: {status} {answer}"));
        }
    }
    let auth = matrix::bearer(w.token("provider-a"));
    let mut socket = matrix::handshake(&w.server, Some(&auth), "?ack=explicit")
        .await
        .unwrap();
    socket
        .send(Message::text(json!({"Ack": nul}).to_string()))
        .await
        .unwrap();
    let (frames, code) = matrix::frames(&mut socket, Duration::from_secs(2)).await;
    if code.is_some() || !frames.iter().any(|f| f["Error"] == "unknown_ack") {
        failures.push(format!("Ack with NUL: frames {frames:?}, closed {code:?}"));
    }
    for after in ["a%00b", "oldest"] {
        let mut socket =
            matrix::handshake(&w.server, Some(&auth), &format!("?after={after}")).await;
        if let Ok(socket) = &mut socket {
            let (frames, code) = matrix::frames(socket, Duration::from_secs(1)).await;
            if after != "oldest" && code != Some(4410) {
                failures.push(format!("after=NUL: frames {frames:?}, closed {code:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
