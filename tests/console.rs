//! The operator console through real HTTP and WebSocket, both backends: the embedded page, the
//! connect tickets browsers open the TransactionMonitor with, the overview, the searches and
//! occupancy over time.

mod common;

use common::permits::{end, setup, today};
use common::{Backend, Socket, TestServer, assert_error, assert_invalid, handshake};
use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

backend_tests!(
    the_page_is_served_with_a_strict_policy,
    a_connect_ticket_opens_one_socket_once,
    the_overview_counts_what_is_inside_and_valid_now,
    searches_cross_principals_with_filters_and_pages,
    occupancy_over_the_last_hours,
);

async fn the_page_is_served_with_a_strict_policy(backend: Backend) {
    let server = TestServer::start(backend).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/console/app.js", "text/javascript"),
        ("/console/app.css", "text/css"),
    ] {
        let response = server
            .client
            .get(server.url(path))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        assert!(
            headers["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with(kind),
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap_or("");
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{csp}"
        );
        let body = response.text().await.expect("a body");
        assert!(!body.is_empty(), "{path} is empty");
        let zipped = server
            .client
            .get(server.url(path))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("an answer");
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        let compressed = zipped.bytes().await.expect("a body").len();
        assert!(
            compressed < body.len(),
            "{path}: {compressed} of {}",
            body.len()
        );
        if path == "/" {
            assert!(
                body.contains("/console/app.js") && body.contains("/console/app.css"),
                "{body}"
            );
        }
    }
    server.stop().await;
}

/// Opens the socket with `?ticket=` and no Authorization header, or the refusal's status.
async fn open(server: &TestServer, ticket: &str) -> Result<Socket, StatusCode> {
    handshake(server, None, &format!("?after=latest&ticket={ticket}"))
        .await
        .map_err(|(status, _)| status)
}

async fn ticket(server: &TestServer, token: &str) -> String {
    let (status, body) = server.post("/api/v1/ws-tickets", token, &json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let expires: Timestamp = body["expiresAt"]
        .as_str()
        .expect("expiresAt")
        .parse()
        .expect("RFC 3339");
    let left = expires.duration_since(Timestamp::now());
    assert!(
        left > SignedDuration::from_secs(25) && left <= SignedDuration::from_secs(30),
        "{left:?}"
    );
    body["ticket"].as_str().expect("a ticket").to_owned()
}

async fn a_connect_ticket_opens_one_socket_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 10).await;
    let gate = server.equipment("gate", &[12]).await;
    let (_, provider) = server.provider("mine", None).await;
    let (_, other) = server.provider("theirs", None).await;
    for (token, plate) in [(&provider, "ABC123"), (&other, "XYZ789")] {
        let (status, body) = server
            .call(
                reqwest::Method::PUT,
                "/api/v1/identifiers",
                Some(token),
                Some(&json!({"ticketNo": plate, "ticketType": 4})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    let once = ticket(&server, &provider).await;
    assert!(once.starts_with("wst_"), "{once}");
    let mut socket = open(&server, &once)
        .await
        .expect("the ticket opens a socket");
    assert_eq!(
        open(&server, &once).await.err(),
        Some(StatusCode::UNAUTHORIZED),
        "used up"
    );

    // The socket is the provider's: its own events only.
    for plate in ["XYZ789", "ABC123"] {
        let (status, body) = server
            .post(
                "/api/v1/carparks/entries",
                &gate,
                &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": plate, "ticketType": 4}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let frame = loop {
        let message = tokio::time::timeout(std::time::Duration::from_secs(5), socket.next())
            .await
            .expect("a frame within 5 s")
            .expect("open")
            .expect("a frame");
        if let Message::Text(text) = message {
            let frame: Value = serde_json::from_str(&text).expect("JSON");
            if frame.get("Heartbeat").is_none() {
                break frame;
            }
        }
    };
    assert_eq!(frame["TicketNo"], "ABC123", "{frame}");
    drop(socket);

    // Expired, malformed, a bearer token in its place, and roles that may not subscribe.
    let late = ticket(&server, &provider).await;
    expire(&server, &late).await;
    assert_eq!(
        open(&server, &late).await.err(),
        Some(StatusCode::UNAUTHORIZED),
        "expired"
    );
    assert_eq!(
        open(&server, "wst_short").await.err(),
        Some(StatusCode::UNAUTHORIZED)
    );
    assert_eq!(
        open(&server, &provider).await.err(),
        Some(StatusCode::UNAUTHORIZED),
        "a token is not a ticket"
    );
    let enforcement = server
        .token_for(parkhub::principals::Role::Enforcement, "officer")
        .await;
    let (status, body) = server
        .post("/api/v1/ws-tickets", &enforcement, &json!({}))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, body) = server
        .call(reqwest::Method::POST, "/api/v1/ws-tickets", None, None)
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    // The operator's ticket sees every event.
    let operator = ticket(&server, &server.operator).await;
    assert!(open(&server, &operator).await.is_ok());
    server.stop().await;
}

/// Moves a ticket's expiry into the past, straight in the database.
async fn expire(server: &TestServer, ticket: &str) {
    let hash = parkhub::principals::token::hash(ticket);
    match server.store.backend() {
        parkhub::store::Backend::Sqlite(db) => {
            sqlx::query("UPDATE connect_tickets SET expires_at = 0 WHERE hash = $1")
                .bind(&hash)
                .execute(&db.writer)
                .await
                .expect("expire");
        }
        parkhub::store::Backend::Postgres(pool) => {
            sqlx::query("UPDATE connect_tickets SET expires_at = 0 WHERE hash = $1")
                .bind(&hash)
                .execute(pool)
                .await
                .expect("expire");
        }
    }
}

fn iso(at: Timestamp) -> String {
    at.to_string()
}

async fn the_overview_counts_what_is_inside_and_valid_now(backend: Backend) {
    let world = setup(backend).await;
    let server = &world.server;
    server.carpark(20, 1, 2, 10).await;
    let gate = server.equipment("gate", &[20]).await;
    let (_, provider) = server.provider("p", None).await;
    let now = Timestamp::now();
    for (id, start, hours) in [("now", -1, 2), ("past", -5, 2), ("later", 2, 2)] {
        let (status, body) = server
            .post(
                "/api/v1/actions/tickets",
                &provider,
                &json!({"eventType": "CreateOrUpdate", "ticketId": id,
                "parkingLotId": 12, "licenseNumber": "ABC123",
                "startDate": iso(now + SignedDuration::from_hours(start)),
                "endDate": iso(now + SignedDuration::from_hours(start + hours))}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let allocation = world.allocation(5, &format!("{}", today()), &end()).await;
    let (status, body) = world
        .give("holder@example.com", &allocation, json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for plate in ["IN1", "IN2", "OUT3"] {
        let (status, body) = server
            .post(
                "/api/v1/carparks/entries",
                &gate,
                &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": plate, "ticketType": 4}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, body) = server
        .post(
            "/api/v1/carparks/exits",
            &gate,
            &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "OUT3", "ticketType": 4}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let officer = server
        .token_for(parkhub::principals::Role::Enforcement, "officer")
        .await;
    for token in [&server.operator, &officer] {
        let (status, lots) = server.get("/api/v1/admin/overview", token).await;
        assert_eq!(status, StatusCode::OK, "{lots}");
        let lot = |id: i64| {
            lots.as_array()
                .expect("a list")
                .iter()
                .find(|l| l["parkingLotId"] == id)
                .cloned()
                .expect("the lot")
        };
        assert_eq!(
            lot(12),
            json!({"parkingLotId": 12, "name": "Lot 12", "zoneCode": 123, "timeZone": "Europe/Stockholm",
                   "capacity": null, "inside": 0, "activeTickets": 1, "activePermits": 1, "free": null})
        );
        assert_eq!(
            lot(14)["activePermits"],
            1,
            "the definition covers lot 14 too"
        );
        assert_eq!(lot(14)["activeTickets"], 0);
        let carpark = lot(20);
        assert_eq!(
            (
                carpark["inside"].clone(),
                carpark["free"].clone(),
                carpark["capacity"].clone()
            ),
            (json!(2), json!(8), json!(10))
        );
    }
    let (status, body) = server.get("/api/v1/admin/overview", &provider).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    world.server.stop().await;
}

async fn searches_cross_principals_with_filters_and_pages(backend: Backend) {
    let world = setup(backend).await;
    let server = &world.server;
    server.carpark(20, 1, 2, 10).await;
    let gate = server.equipment("gate", &[20]).await;
    let (first_id, first) = server.provider("first", None).await;
    let (_, second) = server.provider("second", None).await;
    let ticket = |id: &str, lot: i64, plate: &str, start: &str, end: &str| {
        json!({"eventType": "CreateOrUpdate", "ticketId": id, "parkingLotId": lot, "licenseNumber": plate,
               "startDate": start, "endDate": end})
    };
    for (token, body) in [
        (
            &first,
            ticket(
                "a",
                12,
                "ABC 123",
                "2025-02-10T10:00:00+01:00",
                "2025-02-10T12:00:00+01:00",
            ),
        ),
        (
            &first,
            ticket(
                "b",
                14,
                "abc123",
                "2025-02-11T10:00:00+01:00",
                "2025-02-11T12:00:00+01:00",
            ),
        ),
        (
            &second,
            ticket(
                "c",
                12,
                "ABC-123",
                "2025-02-12T10:00:00+01:00",
                "2025-02-12T12:00:00+01:00",
            ),
        ),
        (
            &second,
            ticket(
                "d",
                12,
                "XYZ999",
                "2025-02-12T10:00:00+01:00",
                "2025-02-12T12:00:00+01:00",
            ),
        ),
    ] {
        let (status, answer) = server.post("/api/v1/actions/tickets", token, &body).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }
    let ids = |page: &Value, key: &str| -> Vec<String> {
        page["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|t| t[key].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (status, page) = server
        .get(
            "/api/v1/admin/tickets?licenseNumber=abc%20123",
            &server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        ids(&page, "ticketId"),
        ["c", "b", "a"],
        "every provider's, newest first"
    );
    assert_eq!(page["data"][0]["providerName"], "second");
    assert_eq!(page["data"][0]["timeZone"], "Europe/Stockholm");
    assert_eq!(page["data"][2]["startDate"], "2025-02-10T09:00:00Z");
    let (_, page) = server
        .get(
            &format!("/api/v1/admin/tickets?providerId={first_id}&parkingLotId=12"),
            &server.operator,
        )
        .await;
    assert_eq!(ids(&page, "ticketId"), ["a"]);
    let (_, page) = server
        .get("/api/v1/admin/tickets?from=2025-02-11T11:00:00%2B01:00&to=2025-02-12T10:30:00%2B01:00&perPage=2", &server.operator)
        .await;
    assert_eq!(ids(&page, "ticketId").len(), 2);
    assert_eq!(
        page["meta"],
        json!({"currentPage": 1, "perPage": 2, "total": 3, "lastPage": 2})
    );
    let (status, body) = server
        .get(
            "/api/v1/admin/tickets?from=yesterday&perPage=0",
            &server.operator,
        )
        .await;
    assert_invalid(status, &body, "from");
    assert_invalid(status, &body, "perPage");

    // Permits: by e-mail in any case, tenant, allocation; operators only.
    let allocation = world.allocation(5, &format!("{}", today()), &end()).await;
    for email in ["Anna@Example.com", "bo@example.com"] {
        let (status, body) = world.give(email, &allocation, json!({})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, page) = server
        .get(
            "/api/v1/admin/permits?email=ANNA@example.COM",
            &server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(ids(&page, "email"), ["anna@example.com"]);
    assert_eq!(page["data"][0]["tenantName"], "Acme AB");
    assert_eq!(
        page["data"][0]["definitionName"],
        "Free parking from 5 to 9"
    );
    assert_eq!(page["data"][0]["activated"], false);
    let (_, page) = server
        .get(
            &format!(
                "/api/v1/admin/permits?tenantId={}&allocationId={allocation}",
                world.tenant_id
            ),
            &server.operator,
        )
        .await;
    assert_eq!(page["meta"]["total"], 2);
    let officer = server
        .token_for(parkhub::principals::Role::Enforcement, "officer")
        .await;
    let (status, body) = server.get("/api/v1/admin/permits", &officer).await;
    assert_error(status, &body, StatusCode::FORBIDDEN);

    // Transactions: the plate in any spelling, a lot, a time window.
    for (path, time) in [
        ("entries", "2025-03-01T08:00:00Z"),
        ("exits", "2025-03-01T09:10:00Z"),
        ("entries", "2025-03-02T08:00:00Z"),
    ] {
        let (status, body) = server
            .post(&format!("/api/v1/carparks/{path}"), &gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "ABC123", "ticketType": 4, "time": time}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (status, page) = server
        .get("/api/v1/admin/transactions?licenseNumber=abc-123", &officer)
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let stays = page["data"].as_array().expect("data");
    assert_eq!(stays.len(), 2, "{page}");
    assert!(
        stays[0]["exitTime"].is_null(),
        "newest first: the open stay"
    );
    assert_eq!(stays[1]["entryTime"], "2025-03-01T08:00:00Z");
    assert_eq!(stays[1]["durationMinutes"], 70);
    assert_eq!(stays[1]["currencyCode"], "SEK");
    let (_, page) = server
        .get(
            "/api/v1/admin/transactions?parkingLotId=20&to=2025-03-01T12:00:00Z",
            &server.operator,
        )
        .await;
    assert_eq!(page["meta"]["total"], 1);
    let (status, body) = server
        .get(
            "/api/v1/admin/transactions?licenseNumber=---",
            &server.operator,
        )
        .await;
    assert_eq!(
        (status, body["meta"]["total"].clone()),
        (StatusCode::OK, json!(0)),
        "no plate or barcode is ---: {body}"
    );
    let (status, body) = server
        .get("/api/v1/admin/transactions?to=", &server.operator)
        .await;
    assert_invalid(status, &body, "to");
    // A NUL character is refused alike on both backends (PostgreSQL cannot compare it).
    for (path, field) in [
        (
            "/api/v1/admin/transactions?licenseNumber=A%00B",
            "licenseNumber",
        ),
        ("/api/v1/admin/tickets?licenseNumber=A%00B", "licenseNumber"),
        ("/api/v1/admin/permits?email=a%00@example.com", "email"),
        ("/api/v1/admin/permits?allocationId=%00", "allocationId"),
    ] {
        let (status, body) = server.get(path, &server.operator).await;
        assert_invalid(status, &body, field);
    }
    world.server.stop().await;
}

async fn occupancy_over_the_last_hours(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.carpark(20, 1, 2, 10).await;
    let gate = server.equipment("gate", &[20]).await;
    let now = Timestamp::now();
    let report = |path: &str, plate: &str, at: Timestamp| {
        (
            format!("/api/v1/carparks/{path}"),
            json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": plate, "ticketType": 4, "time": iso(at)}),
        )
    };
    let stays = [
        (
            "LONG1",
            now - SignedDuration::from_mins(200),
            Some(now - SignedDuration::from_mins(70)),
        ),
        ("OPEN2", now - SignedDuration::from_mins(30), None),
    ];
    for (plate, entry, exit) in stays {
        let (path, body) = report("entries", plate, entry);
        let (status, answer) = server.post(&path, &gate, &body).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        if let Some(exit) = exit {
            let (path, body) = report("exits", plate, exit);
            let (status, answer) = server.post(&path, &gate, &body).await;
            assert_eq!(status, StatusCode::CREATED, "{answer}");
        }
    }
    let (status, history) = server
        .get(
            "/api/v1/admin/parking-lots/20/occupancy?hours=6",
            &server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{history}");
    assert_eq!(history["capacity"], 10);
    assert_eq!(history["timeZone"], "Europe/Stockholm");
    let points = history["points"].as_array().expect("points");
    assert!((6..=7).contains(&points.len()), "{history}");
    for point in points {
        let at: Timestamp = point["at"].as_str().expect("at").parse().expect("RFC 3339");
        let expected = stays
            .iter()
            .filter(|(_, entry, exit)| *entry <= at && exit.is_none_or(|x| x > at))
            .count();
        assert_eq!(point["inside"], expected, "at {at}: {history}");
    }
    assert_eq!(points.last().expect("now")["inside"], 1);
    let (_, default) = server
        .get("/api/v1/admin/parking-lots/20/occupancy", &server.operator)
        .await;
    assert!((24..=25).contains(&default["points"].as_array().map_or(0, Vec::len)));
    let (status, body) = server
        .get(
            "/api/v1/admin/parking-lots/20/occupancy?hours=0",
            &server.operator,
        )
        .await;
    assert_invalid(status, &body, "hours");
    let (status, body) = server
        .get("/api/v1/admin/parking-lots/99/occupancy", &server.operator)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    server.stop().await;
}
