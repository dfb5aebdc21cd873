//! Tokens never reach the log: the real binary logs at `trace` while tokens are issued,
//! rotated, used (HTTP and WebSocket), refused and created by the CLI; afterwards its log is
//! searched for every one of them. Both backends.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::process::{Service, cli};
use common::{Backend, fresh_database};
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

backend_tests!(no_token_appears_in_the_log);

async fn call(
    base: &str,
    method: Method,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .header("authorization", format!("Bearer {token}"))
        .json(&body)
        .send()
        .await
        .expect("an answer");
    let status = response.status();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn no_token_appears_in_the_log(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let dir = tempfile::tempdir().expect("a directory");
    let log_path = dir.path().join("parkhub.log");
    let log = std::fs::File::create(&log_path).expect("a log file");
    let service = Service::start_logging(&url, &[], "trace", Stdio::from(log)).await;
    let welcome = service.output_containing("Authorization: Bearer ").await;
    let operator = welcome
        .split_whitespace()
        .find(|w| w.starts_with("phk_"))
        .expect("the first start prints the operator token")
        .trim_end_matches('\'')
        .to_owned();
    let base = service.base.clone();
    let mut tokens = vec![operator.clone()];

    let (status, provider) = call(
        &base,
        Method::POST,
        "/api/v1/admin/providers",
        &operator,
        json!({"name": "p"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{provider}");
    let first = provider["token"].as_str().expect("a token").to_owned();
    let (status, second) = call(
        &base,
        Method::POST,
        &format!("/api/v1/admin/providers/{}/tokens", provider["id"]),
        &operator,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{second}");
    let second = second["token"].as_str().expect("a token").to_owned();
    let (status, rotated) = call(
        &base,
        Method::POST,
        "/api/v1/tokens/rotate",
        &first,
        json!({"overlapSeconds": 0}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{rotated}");
    let third = rotated["token"].as_str().expect("a token").to_owned();
    tokens.extend([first.clone(), second.clone(), third.clone()]);

    let ticket = json!({"eventType": "CreateOrUpdate", "ticketId": "t1", "parkingLotId": 12,
                        "startDate": "2025-06-01T10:00:00Z", "licenseNumber": "ABC123"});
    // Lot 12 does not exist: a 4xx is logged too, with the token that caused it.
    let (status, _) = call(
        &base,
        Method::POST,
        "/api/v1/actions/tickets",
        &third,
        ticket,
    )
    .await;
    assert!(status.is_client_error());
    let (status, _) = call(
        &base,
        Method::GET,
        "/api/v1/actions/tickets",
        &second,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // Refused tokens: revoked by the rotation, unknown, malformed.
    let unknown = format!("phk_{}", "Z".repeat(43));
    let malformed = "not-a-token-but-secret-looking-7f3a9c".to_owned();
    for token in [&first, &unknown, &malformed] {
        let (status, _) = call(
            &base,
            Method::GET,
            "/api/v1/actions/tickets",
            token,
            Value::Null,
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    tokens.extend([unknown, malformed]);

    // A WebSocket subscriber.
    let ws = format!("{}/api/TransactionMonitor", base.replacen("http", "ws", 1));
    let mut request = ws.into_client_request().expect("a request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {third}").parse().expect("a header"),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    let _ = tokio::time::timeout(Duration::from_millis(200), socket.next()).await;
    drop(socket);

    // The CLI's own log (stderr) must not show the token it prints on stdout.
    let created = cli(&[
        "token",
        "create",
        "--role",
        "enforcement",
        "--name",
        "e",
        "--database",
        &url,
    ]);
    assert!(created.status.success());
    let cli_token = String::from_utf8_lossy(&created.stdout).trim().to_owned();
    assert!(cli_token.starts_with("phk_"), "{cli_token}");
    let cli_log = String::from_utf8_lossy(&created.stderr).into_owned();
    assert!(
        !cli_log.contains(&cli_token),
        "the CLI logged its token: {cli_log}"
    );
    tokens.push(cli_token);

    assert!(service.sigterm().await.success());
    let log = std::fs::read_to_string(&log_path).expect("the log");
    assert!(
        log.contains("/api/v1/actions/tickets") && log.contains("TRACE"),
        "the log has trace-level request lines to search: {} bytes",
        log.len()
    );
    for token in &tokens {
        assert!(
            !log.contains(token.as_str()),
            "the log contains a token: {token}"
        );
        // Nor the secret part alone.
        let secret = token.trim_start_matches("phk_");
        assert!(
            !log.contains(secret),
            "the log contains a token's secret part"
        );
    }
    eprintln!(
        "log secrets {backend:?}: {} tokens searched in {} lines ({} bytes) of trace log: none found",
        tokens.len(),
        log.lines().count(),
        log.len()
    );
}
