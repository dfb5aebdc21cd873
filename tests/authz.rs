//! The authorization matrix, on SQLite and PostgreSQL: every route of the OpenAPI document is
//! in one table with the roles that may call it; every other role gets 403 and changes
//! nothing; missing, malformed, unknown and revoked tokens get 401; and on every route that
//! takes an id, another principal's id (or an id of another kind) and a random id answer
//! exactly as an absent id does, and leave the other principal's objects as they were.

mod common;
#[path = "common/authz.rs"]
mod matrix;

use std::collections::BTreeSet;
use std::time::Duration;

use common::Backend;
use common::permits::{PERMIT, y};
use futures_util::SinkExt;
use matrix::{MONITOR_PATH, NIL_UUID, PUBLIC, World, bearer, call, frames, handshake, normalized};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

backend_tests!(
    the_table_covers_every_route,
    other_roles_get_403_and_change_nothing,
    the_wrong_role_gets_403_whatever_it_sends,
    missing_malformed_unknown_and_revoked_tokens_get_401,
    foreign_and_random_ids_answer_like_absent_ones,
);

/// Routes that take an id and answer no 404 by design, with the reason.
const NO_ABSENT_ID: &[(&str, &str)] = &[(
    "PUT /api/v1/admin/end-users/{email}",
    "creates the profile it names (idempotent): no id is absent after the call",
)];

async fn the_table_covers_every_route(backend: Backend) {
    let server = common::TestServer::start(backend).await;
    let served: BTreeSet<String> = matrix::spec_routes(&server).await.into_iter().collect();
    let table: BTreeSet<String> = matrix::routes().iter().map(|r| r.key()).collect();
    assert_eq!(
        table.len(),
        matrix::routes().len(),
        "a route is twice in the table"
    );
    let missing: Vec<_> = served.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes without a row in tests/common/authz.rs (add who may call them): {missing:?}"
    );
    let stale: Vec<_> = table.difference(&served).collect();
    assert!(
        stale.is_empty(),
        "rows for routes the server no longer has: {stale:?}"
    );
}

/// The role is checked before the body or the query is looked at: a broken body, one sent
/// without a JSON content type, or nonsense parameters still get 403 from the wrong role.
async fn the_wrong_role_gets_403_whatever_it_sends(backend: Backend) {
    let w = matrix::world(backend).await;
    let mut tried = 0;
    for route in matrix::routes()
        .iter()
        .filter(|r| r.roles != PUBLIC && r.path != MONITOR_PATH)
    {
        for (role, name, token) in w.principals.iter().filter(|p| !route.roles.contains(&p.0)) {
            let url = w.server.url(&format!(
                "{}?page=0&perPage=x&at=never&parkingLotId=-1",
                route.concrete()
            ));
            for (content_type, body) in [("application/json", "{\"broken"), ("text/plain", "hello")]
            {
                let response = w
                    .server
                    .client
                    .request(route.method.clone(), &url)
                    .bearer_auth(token)
                    .header("content-type", content_type)
                    .body(body)
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status();
                let answer: Value = response.json().await.unwrap_or(Value::Null);
                assert_eq!(
                    (status, &answer["error_id"]),
                    (StatusCode::FORBIDDEN, &json!("forbidden")),
                    "{} as {name} ({role}) with a {content_type} body: {answer}",
                    route.key()
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 500, "{tried}");
    w.server.stop().await;
}

async fn other_roles_get_403_and_change_nothing(backend: Backend) {
    let w = matrix::world(backend).await;
    let before = matrix::snapshot(&w).await;
    let routes = matrix::routes();
    let mut pairs = 0;
    for route in routes.iter().filter(|r| r.roles != PUBLIC) {
        for (role, name, token) in &w.principals {
            if route.roles.contains(role) {
                continue;
            }
            pairs += 1;
            let (status, body) = if route.path == MONITOR_PATH {
                match handshake(&w.server, Some(&bearer(token)), "").await {
                    Ok(_) => panic!("{name} ({role}) opened the TransactionMonitor"),
                    Err(refused) => refused,
                }
            } else {
                call(
                    &w.server,
                    route.method.clone(),
                    &route.concrete(),
                    Some(&bearer(token)),
                    route.body.as_ref(),
                )
                .await
            };
            assert_eq!(
                (status, &body["error_id"]),
                (StatusCode::FORBIDDEN, &json!("forbidden")),
                "{} as {name} ({role}): {body}",
                route.key()
            );
        }
    }
    assert_eq!(
        before,
        matrix::snapshot(&w).await,
        "a refused call changed something"
    );
    // The table is exact: the roles it names are let through (their requests name nothing
    // that exists, so most answer 404 or 422), and public routes need no token.
    for route in &routes {
        if route.roles == PUBLIC {
            let (status, _) = call(&w.server, route.method.clone(), route.path, None, None).await;
            assert_eq!(status, StatusCode::OK, "{} without a token", route.key());
            continue;
        }
        for (role, name, token) in w.principals.iter().filter(|p| route.roles.contains(&p.0)) {
            let status = if route.path == MONITOR_PATH {
                match handshake(&w.server, Some(&bearer(token)), "").await {
                    Ok(mut socket) => {
                        socket.close(None).await.unwrap();
                        StatusCode::SWITCHING_PROTOCOLS
                    }
                    Err((status, _)) => status,
                }
            } else {
                let path = route.concrete();
                let auth = bearer(token);
                let body = route.body.as_ref();
                call(&w.server, route.method.clone(), &path, Some(&auth), body)
                    .await
                    .0
            };
            assert!(
                ![401, 403].contains(&status.as_u16()) && !status.is_server_error(),
                "{} as {name} ({role}), whom the table allows: {status}",
                route.key()
            );
        }
    }
    eprintln!("403: {pairs} (route, principal) pairs refused");
}

async fn missing_malformed_unknown_and_revoked_tokens_get_401(backend: Backend) {
    let w = matrix::world(backend).await;
    let op = w.token("operator-a");
    // a token that worked, then was revoked through the admin API
    let (id, revoked) = w.server.provider("revoked", None).await;
    let (_, tokens) = w
        .server
        .get(&format!("/api/v1/admin/providers/{id}/tokens"), op)
        .await;
    let token_id = tokens[0]["id"].as_i64().unwrap();
    let path = format!("/api/v1/admin/providers/{id}/tokens/{token_id}");
    assert_eq!(w.server.delete(&path, op).await.0, StatusCode::NO_CONTENT);
    let unknown = format!("phk_{}", "A".repeat(43));
    let headers: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("missing", None),
        ("empty", Some(b"".to_vec())),
        ("no scheme", Some(revoked.clone().into_bytes())),
        ("basic", Some(b"Basic dXNlcjpwYXNz".to_vec())),
        ("bearer only", Some(b"Bearer".to_vec())),
        ("not a token", Some(b"Bearer not-a-token".to_vec())),
        ("truncated", Some(bearer(&op[..op.len() - 3]))),
        ("not UTF-8", Some(b"Bearer phk_\xff\xfe".to_vec())),
        ("unknown", Some(bearer(&unknown))),
        ("revoked", Some(bearer(&revoked))),
    ];
    let mut checked = 0;
    for route in matrix::routes().iter().filter(|r| r.roles != PUBLIC) {
        let mut bodies = Vec::new();
        for (what, auth) in &headers {
            let (status, body) = if route.path == MONITOR_PATH {
                match handshake(&w.server, auth.as_deref(), "").await {
                    Ok(_) => panic!("the TransactionMonitor opened with a {what} token"),
                    Err(refused) => refused,
                }
            } else {
                let path = route.concrete();
                let body = route.body.as_ref();
                call(
                    &w.server,
                    route.method.clone(),
                    &path,
                    auth.as_deref(),
                    body,
                )
                .await
            };
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} with a {what} token: {body}",
                route.key()
            );
            assert_eq!(body["error_id"], "unauthorized", "{body}");
            bodies.push(body);
            checked += 1;
        }
        let [.., unknown, revoked] = &bodies[..] else {
            unreachable!()
        };
        assert_eq!(
            unknown, revoked,
            "a revoked token must look like one that never existed"
        );
    }
    // nothing of that changed the world, and the revoked token stays revoked
    assert_eq!(
        w.server.get("/api/v1/identifiers", &revoked).await.0,
        StatusCode::UNAUTHORIZED
    );
    eprintln!("401: {checked} requests refused");
}

/// One id-taking request made by principal B, with `{id}` standing for the id tried.
struct Probe {
    route: String,
    method: Method,
    path: String,
    body: Option<Value>,
    caller: &'static str,
    /// Ids of other principals' objects, or of objects of another kind, or malformed ones.
    foreign: Vec<String>,
    random: String,
    absent: String,
    expect: StatusCode,
}

fn probe(route: &str, path: &str, caller: &'static str, absent: &str) -> Probe {
    let (method, _) = route.split_once(' ').unwrap();
    let random = if absent == NIL_UUID {
        uuid::Uuid::new_v4().to_string()
    } else if absent.contains('@') {
        format!("r{}@example.com", rand::random::<u32>())
    } else if absent.bytes().all(|b| b.is_ascii_digit()) {
        (100_000 + rand::random::<u32>() % 800_000).to_string()
    } else {
        format!("R{}", rand::random::<u32>())
    };
    Probe {
        route: route.to_owned(),
        method: method.parse().unwrap(),
        path: path.to_owned(),
        body: None,
        caller,
        foreign: Vec::new(),
        random,
        absent: absent.to_owned(),
        expect: StatusCode::NOT_FOUND,
    }
}

impl Probe {
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn foreign(mut self, ids: &[&str]) -> Self {
        self.foreign.extend(ids.iter().map(|s| s.to_string()));
        self
    }
    fn expect(mut self, status: StatusCode) -> Self {
        self.expect = status;
        self
    }

    async fn send(&self, w: &World, id: &str) -> (StatusCode, Value) {
        let path = self.path.replace("{id}", id);
        let body = self
            .body
            .as_ref()
            .map(|b| serde_json::from_str(&b.to_string().replace("{id}", id)).unwrap());
        let token = bearer(w.token(self.caller));
        call(
            &w.server,
            self.method.clone(),
            &path,
            Some(&token),
            body.as_ref(),
        )
        .await
    }

    /// Foreign and random ids answer exactly as the absent id does.
    async fn run(&self, w: &World) -> usize {
        let (status, body) = self.send(w, &self.absent).await;
        assert_eq!(
            status, self.expect,
            "{} absent {}: {body}",
            self.route, self.absent
        );
        let expected = normalized(&body, &self.absent);
        for id in self.foreign.iter().chain([&self.random]) {
            let (s, b) = self.send(w, id).await;
            assert_eq!(
                (s, normalized(&b, id)),
                (status, expected.clone()),
                "{} as {} with {id} answers unlike an absent id",
                self.route,
                self.caller
            );
        }
        2 + self.foreign.len()
    }
}

fn probes(w: &World) -> Vec<Probe> {
    let permits = "/permit/v3/end_user_permit/{id}";
    let (permit_a, allocation_a) = (w.permits[0].as_str(), w.allocations[0].as_str());
    let report = |carpark: i64| {
        json!({"facilityNo": 1, "carparkNo": carpark, "ticketNo": "{id}", "ticketType": 4,
               "time": "2025-01-01T11:00:00Z"})
    };
    let [provider_a, _] = w.provider_ids.map(|i| i.to_string());
    let [tenant_a, _] = w.tenant_ids.map(|i| i.to_string());
    let [equipment_a, _] = w.equipment_ids.map(|i| i.to_string());
    let operator = w.operator_id.to_string();
    let later = format!("{}-06-01", y(1));
    let mut probes = vec![
        probe("POST /api/v1/actions/tickets", "/api/v1/actions/tickets", "provider-b", "t-absent")
            .body(json!({"eventType": "TicketCanceled", "ticketId": "{id}"}))
            .foreign(&["t-a"]),
        probe("GET /api/v1/actions/tickets", "/api/v1/actions/tickets?licenseNumber={id}", "provider-b", "ZZZ999")
            .foreign(&["AAA111", "aaa-111"])
            .expect(StatusCode::OK),
        probe("DELETE /api/v1/identifiers/{ticketType}/{ticketNo}", "/api/v1/identifiers/4/{id}", "provider-b", "ZZZ999")
            .foreign(&["AAA111", "aaa 111"]),
        probe("GET /permit/v3/end_user_permit/{permit_id}", permits, "tenant-b", NIL_UUID).foreign(&[permit_a, allocation_a]),
        probe("PUT /permit/v3/end_user_permit/{permit_id}", permits, "tenant-b", NIL_UUID)
            .body(json!({"valid_to": later}))
            .foreign(&[permit_a]),
        probe("PUT /permit/v3/end_user_permit/{permit_id}", permits, "tenant-b", NIL_UUID)
            .body(json!({"valid_to": "2019-01-01"}))
            .foreign(&[permit_a]),
        probe("DELETE /permit/v3/end_user_permit/{permit_id}", permits, "tenant-b", NIL_UUID).foreign(&[permit_a]),
        probe("POST /permit/v3/end_user_permit", PERMIT, "tenant-b", NIL_UUID)
            .body(json!({"email": "new@example.com", "permit_allocation_id": "{id}"}))
            .foreign(&[allocation_a, permit_a]),
        probe("POST /permit/v3/end_user_permit", PERMIT, "tenant-b", NIL_UUID)
            .body(json!({"email": "a@example.com", "permit_allocation_id": "{id}", "valid_to": "1999-01-01"}))
            .foreign(&[allocation_a]),
        probe("GET /permit/v3/tenant_issued_permits", "/permit/v3/tenant_issued_permits?permit_allocation_id={id}", "tenant-b", NIL_UUID)
            .foreign(&[allocation_a]),
        probe("POST /api/v1/carparks/exits", "/api/v1/carparks/exits", "gate-b", "ZZZ999")
            .body(report(4))
            .foreign(&["AAA111"]),
        probe("GET /api/v1/carparks/quote", "/api/v1/carparks/quote?facilityNo=1&carparkNo=4&ticketType=4&ticketNo={id}", "gate-b", "ZZZ999")
            .foreign(&["AAA111"]),
        probe("GET /api/v1/admin/parking-lots/{id}", "/api/v1/admin/parking-lots/{id}", "operator-b", "999999").foreign(&["12x", "-1"]),
        probe("PATCH /api/v1/admin/parking-lots/{id}", "/api/v1/admin/parking-lots/{id}", "operator-b", "999999")
            .body(json!({"name": "Hijacked"}))
            .foreign(&["12x"]),
        probe("GET /api/v1/admin/parking-lots/{id}/rates", "/api/v1/admin/parking-lots/{id}/rates", "operator-b", "999999").foreign(&["12x"]),
        probe("GET /api/v1/admin/parking-lots/{id}/occupancy", "/api/v1/admin/parking-lots/{id}/occupancy", "operator-b", "999999").foreign(&["12x", "-1"]),
        probe("PUT /api/v1/admin/parking-lots/{id}/rates/{rateNo}", "/api/v1/admin/parking-lots/{id}/rates/1", "operator-b", "999999")
            .body(json!({"name": "Free", "currencyCode": "SEK", "freeMinutes": 0, "periodMinutes": 60, "pricePerPeriod": 0}))
            .foreign(&["12x"]),
        probe("DELETE /api/v1/admin/parking-lots/{id}/rates/{rateNo}", "/api/v1/admin/parking-lots/14/rates/{id}", "operator-b", "77")
            .foreign(&["2", "x"]),
        probe("DELETE /api/v1/admin/parking-lots/{id}/rates/{rateNo}", "/api/v1/admin/parking-lots/{id}/rates/1", "operator-b", "999999")
            .foreign(&["12x"]),
        probe("GET /api/v1/admin/permit-definitions/{id}", "/api/v1/admin/permit-definitions/{id}", "operator-b", "999999")
            .foreign(&["1x"]),
        probe("GET /api/v1/admin/permit-allocations/{id}", "/api/v1/admin/permit-allocations/{id}", "operator-b", NIL_UUID)
            .foreign(&[permit_a]),
        probe("PATCH /api/v1/admin/permit-allocations/{id}", "/api/v1/admin/permit-allocations/{id}", "operator-b", NIL_UUID)
            .body(json!({"permitCount": 4}))
            .foreign(&[permit_a]),
        probe("GET /api/v1/admin/end-users/{email}", "/api/v1/admin/end-users/{id}", "operator-b", "nobody@example.com")
            .foreign(&["not-an-address"]),
        probe("PUT /api/v1/admin/end-users/{email}/vehicles/{licenseNumber}", "/api/v1/admin/end-users/{id}/vehicles/CCC333", "operator-b", "nobody@example.com"),
        probe("DELETE /api/v1/admin/end-users/{email}/vehicles/{licenseNumber}", "/api/v1/admin/end-users/a@example.com/vehicles/{id}", "operator-b", "ZZZ999")
            .foreign(&["BBB222"]),
        probe("DELETE /api/v1/admin/end-users/{email}/vehicles/{licenseNumber}", "/api/v1/admin/end-users/{id}/vehicles/BBB222", "operator-b", "nobody@example.com")
            .foreign(&["not-an-address"]),
    ];
    // principals of one kind are not reached through another kind's routes
    for (kind, others) in [
        ("providers", [&tenant_a, &equipment_a, &operator]),
        ("tenants", [&provider_a, &equipment_a, &operator]),
        ("equipment", [&provider_a, &tenant_a, &operator]),
    ] {
        let others: Vec<&str> = others.iter().map(|s| s.as_str()).chain(["1x"]).collect();
        let one = format!("/api/v1/admin/{kind}/{{id}}");
        let tokens = format!("{one}/tokens");
        for (method, route) in [("GET", &one), ("GET", &tokens), ("POST", &tokens)] {
            let key = format!("{method} {route}");
            probes.push(probe(&key, route, "operator-b", "999999").foreign(&others));
        }
    }
    probes
}

/// The token ids of A's principals (for revocations through B's paths).
async fn token_ids(w: &World) -> Vec<String> {
    let mut ids = Vec::new();
    for (kind, id) in [
        ("providers", w.provider_ids[0]),
        ("tenants", w.tenant_ids[0]),
        ("equipment", w.equipment_ids[0]),
    ] {
        let (_, tokens) = w
            .server
            .get(
                &format!("/api/v1/admin/{kind}/{id}/tokens"),
                w.token("operator-a"),
            )
            .await;
        ids.extend(
            tokens
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].to_string()),
        );
    }
    ids
}

async fn foreign_and_random_ids_answer_like_absent_ones(backend: Backend) {
    let w = matrix::world(backend).await;
    let before = matrix::snapshot(&w).await;
    let mut covered: BTreeSet<String> = NO_ABSENT_ID.iter().map(|(k, _)| k.to_string()).collect();
    let mut requests = 0;
    let mut all = probes(&w);
    let theirs = token_ids(&w).await;
    let theirs: Vec<&str> = theirs.iter().map(String::as_str).collect();
    for (kind, b) in [
        ("providers", w.provider_ids[1]),
        ("tenants", w.tenant_ids[1]),
        ("equipment", w.equipment_ids[1]),
    ] {
        let route = format!("DELETE /api/v1/admin/{kind}/{{id}}/tokens/{{tokenId}}");
        all.push(
            probe(
                &route,
                &format!("/api/v1/admin/{kind}/{b}/tokens/{{id}}"),
                "operator-b",
                "999999",
            )
            .foreign(&theirs),
        );
        all.push(probe(
            &route,
            &format!("/api/v1/admin/{kind}/{{id}}/tokens/{}", theirs[0]),
            "operator-b",
            "999999",
        ));
    }
    for p in &all {
        requests += p.run(&w).await;
        covered.insert(p.route.clone());
    }
    // Documented exceptions, checked for what they promise:
    // an identifier is one provider's while valid (409 identifier_taken, nothing changed) ...
    let body = json!({"ticketNo": "aaa 111", "ticketType": 4});
    let (status, answer) = w
        .server
        .call(
            Method::PUT,
            "/api/v1/identifiers",
            Some(w.token("provider-b")),
            Some(&body),
        )
        .await;
    assert_eq!(
        (status, &answer["error_id"]),
        (StatusCode::CONFLICT, &json!("identifier_taken")),
        "{answer}"
    );
    covered.insert("PUT /api/v1/identifiers".into());
    // ... and equipment acts only at its own car parks (403 at another's, nothing changed).
    for route in ["entries", "exits"] {
        let body = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "AAA111", "ticketType": 4});
        let (status, answer) = w
            .server
            .post(
                &format!("/api/v1/carparks/{route}"),
                w.token("gate-b"),
                &body,
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{route}: {answer}");
        covered.insert(format!("POST /api/v1/carparks/{route}"));
    }
    assert_eq!(
        before,
        matrix::snapshot(&w).await,
        "a request with another principal's id changed it"
    );
    requests += subscriptions_stay_with_their_principal(&w).await;
    covered.insert(format!("GET {MONITOR_PATH}"));
    let uncovered: Vec<String> = matrix::routes()
        .iter()
        .filter(|r| r.takes_ids() && !covered.contains(&r.key()))
        .map(|r| r.key())
        .collect();
    assert!(
        uncovered.is_empty(),
        "id-taking routes without a probe: {uncovered:?}"
    );
    eprintln!("ids: {} probes, {requests} requests", all.len());
}

/// On the TransactionMonitor, A's EventIDs resume and acknowledge nothing for B, exactly like
/// unknown ones, and a subscription name is B's own even when A uses the same one.
async fn subscriptions_stay_with_their_principal(w: &World) -> usize {
    let b = bearer(w.token("provider-b"));
    let mut answers = Vec::new();
    for id in [
        w.event_a.clone(),
        uuid::Uuid::new_v4().to_string(),
        "absent".into(),
    ] {
        let mut socket = handshake(&w.server, Some(&b), &format!("?after={id}"))
            .await
            .unwrap();
        let (frames, code) = frames(&mut socket, Duration::from_secs(10)).await;
        answers.push((normalized(&json!(frames), &id), code));
    }
    assert_eq!(answers[0].1, Some(4410), "{answers:?}");
    assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
    let mut acks = Vec::new();
    let mut socket = handshake(&w.server, Some(&b), "?ack=explicit")
        .await
        .unwrap();
    for id in [
        w.event_a.clone(),
        uuid::Uuid::new_v4().to_string(),
        "absent".into(),
    ] {
        socket
            .send(Message::text(json!({"Ack": id}).to_string()))
            .await
            .unwrap();
        let (frames, _) = frames(&mut socket, Duration::from_millis(500)).await;
        acks.push(normalized(&json!(frames), &id));
    }
    assert_eq!(acks[0][0]["Error"], "unknown_ack", "{acks:?}");
    assert!(acks.iter().all(|a| *a == acks[0]), "{acks:?}");
    socket.close(None).await.unwrap();
    // B reads its own event on the subscription "shared" first; A's position there is A's own
    let entry = json!({"facilityNo": 1, "carparkNo": 4, "ticketNo": "BBB222", "ticketType": 4, "time": "2025-01-01T10:30:00Z"});
    let entered = w
        .ok(
            Method::POST,
            "/api/v1/carparks/entries",
            w.token("gate-b"),
            entry,
        )
        .await;
    let mut socket = handshake(&w.server, Some(&b), "?subscription=shared")
        .await
        .unwrap();
    let (seen, _) = frames(&mut socket, Duration::from_millis(700)).await;
    assert_eq!(seen.len(), 1, "B sees only its own event: {seen:?}");
    assert_eq!(seen[0]["EventID"], entered["eventId"]);
    socket.close(None).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a = bearer(w.token("provider-a"));
    let mut socket = handshake(&w.server, Some(&a), "?subscription=shared")
        .await
        .unwrap();
    let (seen, _) = frames(&mut socket, Duration::from_millis(700)).await;
    assert_eq!(seen.len(), 1, "A sees only its own event: {seen:?}");
    assert_eq!(seen[0]["EventID"], json!(w.event_a));
    9
}
