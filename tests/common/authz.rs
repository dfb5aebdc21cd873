//! The authorization matrix: every route the service serves with the roles that may call it,
//! a world with two principals of every kind and their own objects, and helpers that send any
//! `Authorization` header (or none) over HTTP or the WebSocket handshake. Used by
//! `tests/authz.rs` and `tests/http_fuzz.rs` (as a `#[path]` module beside `common`, so other
//! test binaries skip it).
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use parkhub::principals::Role;
use reqwest::header::{AUTHORIZATION, HeaderValue};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::permits::{ALLOCATIONS, DEFINITIONS, PERMIT, TENANTS, end};
use crate::common::{Backend, TestServer};

pub const PUBLIC: &[Role] = &[];
const OPERATOR: &[Role] = &[Role::Operator];
const PROVIDER: &[Role] = &[Role::Provider];
const TENANT: &[Role] = &[Role::Tenant];
const EQUIPMENT: &[Role] = &[Role::Equipment];
const READERS: &[Role] = &[Role::Enforcement, Role::Operator];
const QUOTE: &[Role] = &[Role::Equipment, Role::Operator, Role::Enforcement];
const MONITOR: &[Role] = &[Role::Provider, Role::Operator];
const ANYONE: &[Role] = &Role::ALL;

pub const MONITOR_PATH: &str = "/api/TransactionMonitor";
pub const NIL_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// One route: who may call it, and a request that names nothing that exists (so that the
/// roles allowed to call it change nothing either).
pub struct Route {
    pub method: Method,
    pub path: &'static str,
    pub query: &'static str,
    pub roles: &'static [Role],
    pub body: Option<Value>,
    /// Takes ids in its body or query (a route with path parameters always takes ids).
    pub body_ids: bool,
}

fn r(method: Method, path: &'static str, roles: &'static [Role]) -> Route {
    Route {
        method,
        path,
        query: "",
        roles,
        body: None,
        body_ids: false,
    }
}

impl Route {
    fn body(mut self, body: Value) -> Self {
        self.body = Some(body);
        self
    }
    fn query(mut self, query: &'static str) -> Self {
        self.query = query;
        self
    }
    fn ids(mut self) -> Self {
        self.body_ids = true;
        self
    }

    /// `GET /api/v1/admin/providers/{id}`, as the OpenAPI document names it.
    pub fn key(&self) -> String {
        key(&self.method, self.path)
    }

    pub fn takes_ids(&self) -> bool {
        self.body_ids || self.path.contains('{')
    }

    /// The path with every parameter naming nothing that exists, and the query.
    pub fn concrete(&self) -> String {
        let mut path = self.path.to_owned();
        for (param, value) in [
            ("{id}", "999999"),
            ("{tokenId}", "999999"),
            ("{rateNo}", "77"),
            ("{email}", "nobody@example.com"),
            ("{licenseNumber}", "NOPE1"),
            ("{ticketType}", "4"),
            ("{ticketNo}", "NOPE1"),
            ("{permit_id}", NIL_UUID),
        ] {
            path = path.replace(param, value);
        }
        assert!(!path.contains('{'), "a parameter without a value: {path}");
        if self.query.is_empty() {
            path
        } else {
            format!("{path}?{}", self.query)
        }
    }
}

pub fn key(method: &Method, path: &str) -> String {
    format!("{method} {path}")
}

/// Every route of the service. A route the OpenAPI document has and this table lacks fails
/// `the_table_covers_every_route`, so no endpoint goes unchecked.
pub fn routes() -> Vec<Route> {
    use Method as M;
    let report = json!({"facilityNo": 99, "carparkNo": 99, "ticketNo": "NOPE1", "ticketType": 4});
    let mut routes = vec![
        r(M::GET, "/healthz", PUBLIC),
        r(M::GET, "/readyz", PUBLIC),
        r(M::GET, "/metrics", PUBLIC),
        r(M::POST, "/api/v1/admin/parking-lots", OPERATOR).body(
            json!({"id": 77, "name": "Lot 77", "zoneCode": 77, "timeZone": "Europe/Stockholm"}),
        ),
        r(M::GET, "/api/v1/admin/parking-lots", OPERATOR),
        r(M::GET, "/api/v1/admin/parking-lots/{id}", OPERATOR),
        r(M::PATCH, "/api/v1/admin/parking-lots/{id}", OPERATOR).body(json!({"name": "Renamed"})),
        r(M::GET, "/api/v1/admin/parking-lots/{id}/rates", OPERATOR),
        r(M::PUT, "/api/v1/admin/parking-lots/{id}/rates/{rateNo}", OPERATOR).body(
            json!({"name": "Night", "currencyCode": "SEK", "freeMinutes": 0, "periodMinutes": 60, "pricePerPeriod": 100}),
        ),
        r(M::DELETE, "/api/v1/admin/parking-lots/{id}/rates/{rateNo}", OPERATOR),
        r(M::POST, DEFINITIONS, OPERATOR).body(json!({"name": "Def", "parkingLotIds": [12]})),
        r(M::GET, DEFINITIONS, OPERATOR),
        r(M::GET, "/api/v1/admin/permit-definitions/{id}", OPERATOR),
        r(M::POST, ALLOCATIONS, OPERATOR).body(
            json!({"tenantId": 999999, "permitDefinitionId": 999999, "parkingSpacesCount": 1,
                   "permitCount": 1, "validFrom": "2030-01-01", "validTo": "2030-12-31"}),
        ),
        r(M::GET, ALLOCATIONS, OPERATOR),
        r(M::GET, "/api/v1/admin/permit-allocations/{id}", OPERATOR),
        r(M::PATCH, "/api/v1/admin/permit-allocations/{id}", OPERATOR).body(json!({"permitCount": 3})),
        r(M::PUT, "/api/v1/admin/end-users/{email}", OPERATOR),
        r(M::GET, "/api/v1/admin/end-users/{email}", OPERATOR),
        r(M::PUT, "/api/v1/admin/end-users/{email}/vehicles/{licenseNumber}", OPERATOR),
        r(M::DELETE, "/api/v1/admin/end-users/{email}/vehicles/{licenseNumber}", OPERATOR),
        r(M::GET, "/api/v1/admin/parking-right-checks", OPERATOR),
        r(M::POST, "/api/v1/actions/tickets", PROVIDER)
            .body(json!({"eventType": "TicketCanceled", "ticketId": "nope"}))
            .ids(),
        r(M::GET, "/api/v1/actions/tickets", PROVIDER).ids(),
        r(M::PUT, "/api/v1/identifiers", PROVIDER)
            .body(json!({"ticketNo": "NOPE1", "ticketType": 4}))
            .ids(),
        r(M::GET, "/api/v1/identifiers", PROVIDER),
        r(M::DELETE, "/api/v1/identifiers/{ticketType}/{ticketNo}", PROVIDER),
        r(M::GET, "/permit/v3/tenant_permit_allocations", TENANT),
        r(M::GET, "/permit/v3/tenant_issued_permits", TENANT).ids(),
        r(M::POST, PERMIT, TENANT)
            .body(json!({"email": "x@example.com", "permit_allocation_id": NIL_UUID}))
            .ids(),
        r(M::GET, "/permit/v3/end_user_permit/{permit_id}", TENANT),
        r(M::PUT, "/permit/v3/end_user_permit/{permit_id}", TENANT).body(json!({"valid_to": "2030-01-01"})),
        r(M::DELETE, "/permit/v3/end_user_permit/{permit_id}", TENANT),
        r(M::POST, "/api/v1/carparks/entries", EQUIPMENT).body(report.clone()).ids(),
        r(M::POST, "/api/v1/carparks/exits", EQUIPMENT).body(report).ids(),
        r(M::GET, "/api/v1/carparks/quote", QUOTE)
            .query("facilityNo=99&carparkNo=99&ticketNo=NOPE1&ticketType=4")
            .ids(),
        r(M::GET, "/api/v1/carparks/occupancy", READERS),
        r(M::GET, MONITOR_PATH, MONITOR).ids(),
        r(M::GET, "/api/v1/parking-rights", READERS).query("licenseNumber=NOPE1&parkingLotId=12"),
        r(M::POST, "/api/v1/parking-rights/check", READERS)
            .body(json!({"licenseNumbers": ["NOPE1"], "parkingLotId": 12})),
        r(M::GET, "/api/v1/parking-rights/valid-plates", READERS).query("parkingLotId=12"),
        r(M::POST, "/api/v1/tokens/rotate", ANYONE).body(json!({})),
        r(M::POST, "/api/v1/ws-tickets", MONITOR).body(json!({})),
        r(M::GET, "/api/v1/admin/overview", READERS),
        r(M::GET, "/api/v1/admin/tickets", READERS),
        r(M::GET, "/api/v1/admin/permits", OPERATOR),
        r(M::GET, "/api/v1/admin/transactions", READERS),
        r(M::GET, "/api/v1/admin/parking-lots/{id}/occupancy", READERS),
    ];
    // Providers, tenants and equipment: the same six routes each.
    for (list, one, tokens, token) in [
        (
            "/api/v1/admin/providers",
            "/api/v1/admin/providers/{id}",
            "/api/v1/admin/providers/{id}/tokens",
            "/api/v1/admin/providers/{id}/tokens/{tokenId}",
        ),
        (
            TENANTS,
            "/api/v1/admin/tenants/{id}",
            "/api/v1/admin/tenants/{id}/tokens",
            "/api/v1/admin/tenants/{id}/tokens/{tokenId}",
        ),
        (
            "/api/v1/admin/equipment",
            "/api/v1/admin/equipment/{id}",
            "/api/v1/admin/equipment/{id}/tokens",
            "/api/v1/admin/equipment/{id}/tokens/{tokenId}",
        ),
    ] {
        routes.push(r(M::POST, list, OPERATOR).body(json!({"name": "authz-new"})));
        routes.push(r(M::GET, list, OPERATOR));
        routes.push(r(M::GET, one, OPERATOR));
        routes.push(r(M::POST, tokens, OPERATOR));
        routes.push(r(M::GET, tokens, OPERATOR));
        routes.push(r(M::DELETE, token, OPERATOR));
    }
    routes
}

/// Every `METHOD path` of the OpenAPI document the server serves.
pub async fn spec_routes(server: &TestServer) -> Vec<String> {
    let (status, spec) = call(server, Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let mut found = Vec::new();
    for (path, item) in spec["paths"].as_object().expect("paths") {
        for method in [
            "get", "put", "post", "delete", "patch", "head", "options", "trace",
        ] {
            if item.get(method).is_some() {
                found.push(key(&method.to_uppercase().parse().unwrap(), path));
            }
        }
    }
    found
}

/// A request with exactly this `Authorization` header value (any bytes), or none.
pub async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    auth: Option<&[u8]>,
    body: Option<&Value>,
) -> (StatusCode, Value) {
    let mut request = server.client.request(method, server.url(path));
    if let Some(auth) = auth {
        request = request.header(AUTHORIZATION, HeaderValue::from_bytes(auth).unwrap());
    }
    if let Some(body) = body {
        request = request.json(body);
    }
    let response = request.send().await.expect("the server answers");
    let status = response.status();
    let text = response.text().await.expect("a body");
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

pub fn bearer(token: &str) -> Vec<u8> {
    format!("Bearer {token}").into_bytes()
}

pub use crate::common::{Socket, handshake};

/// The text frames (heartbeats left out) until the socket closes or is quiet for `quiet`,
/// and the close code, if it closed.
pub async fn frames(socket: &mut Socket, quiet: Duration) -> (Vec<Value>, Option<u16>) {
    let mut frames = Vec::new();
    loop {
        match tokio::time::timeout(quiet, socket.next()).await {
            Err(_) => return (frames, None),
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
                if frame.get("Heartbeat").is_none() {
                    frames.push(frame);
                }
            }
            Ok(Some(Ok(Message::Close(frame)))) => {
                return (frames, frame.map(|f| u16::from(f.code)));
            }
            Ok(Some(Ok(_))) => {}
            Ok(None) | Ok(Some(Err(_))) => return (frames, None),
        }
    }
}

/// An error body with what names the request removed: the id it asked for, in whatever
/// spelling, becomes `{id}`. Nothing else may differ between a foreign and an absent id.
pub fn normalized(body: &Value, id: &str) -> Value {
    let text = body.to_string();
    let mut out = text.replace(id, "{id}");
    let upper = id.to_uppercase();
    if !upper.is_empty() {
        out = out.replace(&upper, "{id}");
    }
    serde_json::from_str(&out).unwrap_or(Value::String(out))
}

/// Two principals of every kind (A and B), and objects that belong to each.
pub struct World {
    pub server: TestServer,
    /// (role, name, token) of every principal, A before B; the test operator first.
    pub principals: Vec<(Role, &'static str, String)>,
    pub provider_ids: [i64; 2],
    pub tenant_ids: [i64; 2],
    pub equipment_ids: [i64; 2],
    /// The test operator's principal id (a principal of a kind no admin route lists).
    pub operator_id: i64,
    pub allocations: [String; 2],
    pub permits: [String; 2],
    /// Provider A's TransactionStarted (its vehicle AAA111 is inside car park 12).
    pub event_a: String,
}

impl World {
    pub fn token(&self, name: &str) -> &str {
        &self
            .principals
            .iter()
            .find(|(_, n, _)| *n == name)
            .unwrap_or_else(|| panic!("no principal {name}"))
            .2
    }

    pub async fn ok(&self, method: Method, path: &str, token: &str, body: Value) -> Value {
        let (status, answer) = self
            .server
            .call(method, path, Some(token), Some(&body))
            .await;
        assert!(status.is_success(), "{path}: {status} {answer}");
        answer
    }
}

/// What every principal's objects look like to their owners and to the operator.
pub async fn snapshot(w: &World) -> Vec<Value> {
    let op = w.token("operator-a");
    let mut reads = vec![
        ("/api/v1/admin/parking-lots".to_owned(), op),
        ("/api/v1/admin/providers".into(), op),
        (TENANTS.into(), op),
        ("/api/v1/admin/equipment".into(), op),
        ("/api/v1/admin/permit-definitions".into(), op),
        (ALLOCATIONS.into(), op),
        ("/api/v1/admin/parking-lots/12/rates".into(), op),
        ("/api/v1/admin/parking-lots/14/rates".into(), op),
        ("/api/v1/admin/end-users/a@example.com".into(), op),
        ("/api/v1/admin/end-users/b@example.com".into(), op),
        ("/api/v1/carparks/occupancy".into(), op),
        (
            "/api/v1/carparks/quote?facilityNo=1&carparkNo=2&ticketNo=AAA111&ticketType=4&at=2025-01-01T11:00:00Z"
                .into(),
            op,
        ),
    ];
    for (kind, ids) in [
        ("providers", w.provider_ids),
        ("tenants", w.tenant_ids),
        ("equipment", w.equipment_ids),
    ] {
        for id in ids {
            reads.push((format!("/api/v1/admin/{kind}/{id}/tokens"), op));
        }
    }
    for who in ["provider-a", "provider-b"] {
        reads.push(("/api/v1/actions/tickets".into(), w.token(who)));
        reads.push(("/api/v1/identifiers".into(), w.token(who)));
    }
    for (i, who) in ["tenant-a", "tenant-b"].into_iter().enumerate() {
        reads.push(("/permit/v3/tenant_issued_permits".into(), w.token(who)));
        reads.push(("/permit/v3/tenant_permit_allocations".into(), w.token(who)));
        reads.push((format!("{PERMIT}/{}", w.permits[i]), w.token(who)));
    }
    let mut out = Vec::new();
    for (path, token) in reads {
        let (status, body) = w.server.get(&path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        out.push(body);
    }
    out
}

pub async fn world(backend: Backend) -> World {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 100).await;
    server.carpark(14, 1, 4, 100).await;
    let (provider_a, pa) = server.provider("provider-a", None).await;
    let (provider_b, pb) = server.provider("provider-b", None).await;
    let ea = server.equipment("gate-a", &[12]).await;
    let eb = server.equipment("gate-b", &[14]).await;
    let operator_b = server.token_for(Role::Operator, "operator-b").await;
    let officer_a = server.token_for(Role::Enforcement, "officer-a").await;
    let officer_b = server.token_for(Role::Enforcement, "officer-b").await;
    let mut w = World {
        principals: vec![
            (Role::Operator, "operator-a", server.operator.clone()),
            (Role::Operator, "operator-b", operator_b),
            (Role::Provider, "provider-a", pa),
            (Role::Provider, "provider-b", pb),
            (Role::Equipment, "gate-a", ea),
            (Role::Equipment, "gate-b", eb),
            (Role::Enforcement, "officer-a", officer_a),
            (Role::Enforcement, "officer-b", officer_b),
        ],
        server,
        provider_ids: [provider_a, provider_b],
        tenant_ids: [0, 0],
        equipment_ids: [0, 0],
        operator_id: 0,
        allocations: Default::default(),
        permits: Default::default(),
        event_a: String::new(),
    };
    let op = w.server.operator.clone();
    w.operator_id = parkhub::principals::store::find_or_create(
        &w.server.store,
        Role::Operator,
        "test-operator",
    )
    .await
    .unwrap()
    .id;
    // end users; b has a vehicle that a's paths must not reach
    for email in ["a@example.com", "b@example.com"] {
        let path = format!("/api/v1/admin/end-users/{email}");
        w.ok(Method::PUT, &path, &op, json!({})).await;
    }
    w.ok(
        Method::PUT,
        "/api/v1/admin/end-users/b@example.com/vehicles/BBB222",
        &op,
        json!({}),
    )
    .await;
    let (_, equipment) = w.server.get("/api/v1/admin/equipment", &op).await;
    w.equipment_ids = [0, 1].map(|i| equipment[i]["id"].as_i64().unwrap());
    let definition = w
        .ok(
            Method::POST,
            DEFINITIONS,
            &op,
            json!({"name": "All day", "parkingLotIds": [12, 14]}),
        )
        .await;
    w.ok(
        Method::PUT,
        "/api/v1/admin/parking-lots/12/rates/2",
        &op,
        json!({"name": "Second", "currencyCode": "SEK", "freeMinutes": 0, "periodMinutes": 60, "pricePerPeriod": 500}),
    )
    .await;
    for (i, (name, plate)) in [("tenant-a", "AAA111"), ("tenant-b", "BBB222")]
        .into_iter()
        .enumerate()
    {
        let tenant = w
            .ok(Method::POST, TENANTS, &op, json!({"name": name}))
            .await;
        w.tenant_ids[i] = tenant["id"].as_i64().unwrap();
        let token = tenant["token"].as_str().unwrap().to_owned();
        let allocation = w
            .ok(
                Method::POST,
                ALLOCATIONS,
                &op,
                json!({"tenantId": w.tenant_ids[i], "permitDefinitionId": definition["id"],
                       "parkingSpacesCount": 5, "permitCount": 5, "validFrom": "2020-01-01", "validTo": end()}),
            )
            .await;
        w.allocations[i] = allocation["id"].as_str().unwrap().to_owned();
        let email = format!("{}@example.com", &name[7..]);
        let permit = w
            .ok(
                Method::POST,
                PERMIT,
                &token,
                json!({"email": email, "permit_allocation_id": w.allocations[i]}),
            )
            .await;
        w.permits[i] = permit["permit_id"].as_str().unwrap().to_owned();
        w.principals.push((Role::Tenant, name, token));
        // each provider: a ticket and an identifier of its own
        let provider = w.principals[2 + i].2.clone();
        let ticket = json!({"eventType": "CreateOrUpdate", "ticketId": format!("t-{}", &name[7..]),
            "parkingLotId": 12, "startDate": "2025-01-01T10:00:00Z", "endDate": "2025-01-01T12:00:00Z",
            "licenseNumber": plate});
        w.ok(Method::POST, "/api/v1/actions/tickets", &provider, ticket)
            .await;
        let identifier = json!({"ticketNo": plate, "ticketType": 4});
        w.ok(Method::PUT, "/api/v1/identifiers", &provider, identifier)
            .await;
    }
    let entry = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "AAA111", "ticketType": 4,
                       "time": "2025-01-01T10:00:00Z"});
    let entered = w
        .ok(
            Method::POST,
            "/api/v1/carparks/entries",
            w.token("gate-a"),
            entry,
        )
        .await;
    w.event_a = entered["eventId"].as_str().unwrap().to_owned();
    w
}
