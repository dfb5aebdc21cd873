//! Limits and token rotation through real HTTP and WebSocket: the per-token rate limit (429
//! with Retry-After, nothing changed), sockets per principal, the request time limit, and a
//! rotation's overlap.

mod common;

use std::time::Duration;

use common::{Backend, Socket, TestServer, assert_error, assert_invalid, handshake};
use parkhub::http::limits::RateLimit;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

backend_tests!(
    over_the_rate_a_token_gets_429_and_nothing_changes,
    sockets_per_principal_are_capped,
    a_stalled_request_is_abandoned_with_408,
    rotation_keeps_the_old_token_for_the_overlap_only,
    a_bad_rotation_changes_nothing,
);

async fn provider_names(server: &TestServer) -> Vec<String> {
    // The listing itself counts against the operator's rate: use a fresh operator token.
    let token = server
        .token_for(parkhub::principals::Role::Operator, "reader")
        .await;
    let (status, body) = server.get("/api/v1/admin/providers", &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .expect("a list")
        .iter()
        .filter_map(|p| p["name"].as_str().map(str::to_owned))
        .collect()
}

async fn over_the_rate_a_token_gets_429_and_nothing_changes(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.rate_limit = RateLimit::per_second(3)).await;
    let operator = server.operator.clone();
    for i in 0..3 {
        let (status, body) = server
            .post(
                "/api/v1/admin/providers",
                &operator,
                &json!({"name": format!("p{i}")}),
            )
            .await;
        assert_eq!(
            status,
            StatusCode::CREATED,
            "request {i} is within the burst: {body}"
        );
    }
    let response = server
        .client
        .post(server.url("/api/v1/admin/providers"))
        .bearer_auth(&operator)
        .json(&json!({"name": "over"}))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&retry_after), "Retry-After: {retry_after}");
    let body: Value = response.json().await.expect("a JSON body");
    assert_error(
        StatusCode::TOO_MANY_REQUESTS,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
    );
    assert_eq!(body["error_id"], "too_many_requests");
    assert!(
        !provider_names(&server).await.contains(&"over".to_owned()),
        "a refused request created nothing"
    );

    // Another token has its own budget; this one gets through again after Retry-After.
    let (status, _) = server
        .get(
            "/api/v1/admin/parking-lots",
            &server
                .token_for(parkhub::principals::Role::Operator, "other")
                .await,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let (status, body) = server
        .post(
            "/api/v1/admin/providers",
            &operator,
            &json!({"name": "later"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    server.stop().await;
}

/// Opens a TransactionMonitor socket with the token, or the refusal's status and JSON body.
async fn subscribe(server: &TestServer, token: &str) -> Result<Socket, (StatusCode, Value)> {
    handshake(
        server,
        Some(format!("Bearer {token}").as_bytes()),
        "?after=latest",
    )
    .await
}

async fn sockets_per_principal_are_capped(backend: Backend) {
    let server = TestServer::start_with(backend, |c| c.max_sockets_per_principal = 2).await;
    let (_, provider) = server.provider("one", None).await;
    let (_, other) = server.provider("two", None).await;
    let first = subscribe(&server, &provider).await.expect("first socket");
    let _second = subscribe(&server, &provider).await.expect("second socket");
    let (status, body) = subscribe(&server, &provider)
        .await
        .expect_err("a third socket is refused");
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error_id"], "too_many_requests", "{body}");
    let _theirs = subscribe(&server, &other)
        .await
        .expect("another principal has its own places");

    // Closing one frees its place (once the server has seen the close).
    drop(first);
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(socket) = subscribe(&server, &provider).await {
            reopened = Some(socket);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(reopened.is_some(), "the closed socket's place came back");
    drop(reopened);
    drop(_second);
    drop(_theirs);
    server.stop().await;
}

async fn a_stalled_request_is_abandoned_with_408(backend: Backend) {
    let server =
        TestServer::start_with(backend, |c| c.request_timeout = Duration::from_millis(700)).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    // Headers promise a body that never comes.
    let head = format!(
        "POST /api/v1/admin/providers HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":",
        server.operator
    );
    stream.write_all(head.as_bytes()).await.expect("send");
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    answer.extend_from_slice(&buffer[..n]);
                    if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}") {
                        break;
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server answered within 5 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains("\"error_id\":\"request_timeout\""),
        "{answer}"
    );
    assert!(
        provider_names(&server).await.is_empty(),
        "nothing was created"
    );
    server.stop().await;
}

async fn rotation_keeps_the_old_token_for_the_overlap_only(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (id, old) = server.provider("rotating", None).await;
    let (status, rotated) = server
        .post("/api/v1/tokens/rotate", &old, &json!({"overlapSeconds": 2}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let new = rotated["token"].as_str().expect("a new token").to_owned();
    assert_ne!(new, old);
    assert_eq!(rotated["principalId"], id);
    assert!(rotated["previousTokenExpiresAt"].is_string(), "{rotated}");

    // Both work during the overlap, and both are the same provider.
    for token in [&old, &new] {
        let (status, body) = server.get("/api/v1/actions/tickets", token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, tokens) = server
        .get(
            &format!("/api/v1/admin/providers/{id}/tokens"),
            &server.operator,
        )
        .await;
    let previous = rotated["previousTokenId"].as_i64().expect("an id");
    let listed = tokens
        .as_array()
        .expect("a list")
        .iter()
        .find(|t| t["id"] == previous)
        .expect("the old token is listed");
    assert_eq!(listed["revokedAt"], rotated["previousTokenExpiresAt"]);

    tokio::time::sleep(Duration::from_millis(2300)).await;
    let (status, body) = server.get("/api/v1/actions/tickets", &old).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let (status, _) = server.get("/api/v1/actions/tickets", &new).await;
    assert_eq!(status, StatusCode::OK);

    // The new token rotates with no overlap: the old one stops at once; an operator's revoke
    // during an overlap also stops it at once.
    let (status, again) = server
        .post("/api/v1/tokens/rotate", &new, &json!({"overlapSeconds": 0}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    let (status, _) = server.get("/api/v1/actions/tickets", &new).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let newest = again["token"].as_str().expect("a token").to_owned();
    let (status, last) = server
        .post("/api/v1/tokens/rotate", &newest, &json!({}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{last}");
    let (status, _) = server
        .delete(
            &format!("/api/v1/admin/providers/{id}/tokens/{}", again["id"]),
            &server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = server.get("/api/v1/actions/tickets", &newest).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "revoked during its overlap"
    );
    let (status, _) = server
        .get(
            "/api/v1/actions/tickets",
            last["token"].as_str().expect("a token"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}

async fn a_bad_rotation_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (id, token) = server.provider("careful", None).await;
    for (body, field) in [
        (json!({"overlapSeconds": -1}), "overlapSeconds"),
        (
            json!({"overlapSeconds": 30 * 24 * 3600 + 1}),
            "overlapSeconds",
        ),
        (json!({"overlapSeconds": "soon"}), "overlapSeconds"),
    ] {
        let (status, answer) = server.post("/api/v1/tokens/rotate", &token, &body).await;
        assert_invalid(status, &answer, field);
    }
    let (status, answer) = server
        .post("/api/v1/tokens/rotate", &token, &json!({"overlap": 5}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown field: {answer}"
    );
    let (status, answer) = server
        .call(
            reqwest::Method::POST,
            "/api/v1/tokens/rotate",
            None,
            Some(&json!({})),
        )
        .await;
    assert_error(status, &answer, StatusCode::UNAUTHORIZED);
    let (_, tokens) = server
        .get(
            &format!("/api/v1/admin/providers/{id}/tokens"),
            &server.operator,
        )
        .await;
    let tokens = tokens.as_array().expect("a list");
    assert_eq!(tokens.len(), 1, "no token was issued: {tokens:?}");
    assert!(
        tokens[0]["revokedAt"].is_null(),
        "the token was not retired"
    );
    let (status, _) = server.get("/api/v1/actions/tickets", &token).await;
    assert_eq!(status, StatusCode::OK);
    server.stop().await;
}
