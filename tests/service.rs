//! What every endpoint shares: health, readiness, metrics, OpenAPI, request ids, the error
//! shape, limits and authentication. Real HTTP, both backends.

mod common;

use common::{Backend, TestServer, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

backend_tests!(
    health_and_readiness,
    metrics_count_requests_by_route_and_status,
    openapi_documents_exactly_what_is_served,
    every_response_has_a_request_id,
    framework_rejections_are_json_in_one_shape,
    authentication_failures_are_401,
    wrong_role_is_403,
);

async fn health_and_readiness(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, body) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let (status, body) = server.call(Method::GET, "/readyz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ready"})));
    // once the database is gone, the service says it is not ready (and stays alive)
    server.store.close().await;
    let (status, body) = server.call(Method::GET, "/readyz", None, None).await;
    assert_error(status, &body, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _) = server.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

async fn metrics_count_requests_by_route_and_status(backend: Backend) {
    let server = TestServer::start(backend).await;
    for _ in 0..3 {
        server
            .get("/api/v1/admin/parking-lots/77", &server.operator)
            .await;
    }
    let response = server
        .client
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
        "{:?}",
        response.headers()
    );
    let text = response.text().await.unwrap();
    assert!(
        text.contains(
            r#"parkhub_http_requests_total{method="GET",route="/api/v1/admin/parking-lots/{id}",status="404"} 3"#
        ),
        "{text}"
    );
    assert!(
        text.contains(r#"parkhub_http_request_duration_seconds_count{method="GET",route="/api/v1/admin/parking-lots/{id}"} 3"#),
        "{text}"
    );
    assert!(
        text.contains("parkhub_http_request_duration_seconds_bucket"),
        "{text}"
    );
}

async fn openapi_documents_exactly_what_is_served(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, doc) = server.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().expect("paths");
    for expected in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/actions/tickets",
        "/api/v1/admin/parking-lots",
        "/api/v1/admin/parking-lots/{id}",
        "/api/v1/admin/providers",
        "/api/v1/admin/providers/{id}",
        "/api/v1/admin/providers/{id}/tokens",
        "/api/v1/admin/providers/{id}/tokens/{tokenId}",
        "/api/v1/admin/tenants",
        "/api/v1/admin/permit-definitions",
        "/api/v1/admin/permit-allocations/{id}",
        "/api/v1/admin/end-users/{email}/vehicles/{licenseNumber}",
        "/permit/v3/tenant_permit_allocations",
        "/permit/v3/tenant_issued_permits",
        "/permit/v3/end_user_permit",
        "/permit/v3/end_user_permit/{permit_id}",
    ] {
        assert!(paths.contains_key(expected), "{expected} is not documented");
    }
    // every documented operation is really routed: never the router's 404 or 405
    let mut operations = 0;
    for (path, item) in paths {
        let concrete = path
            .replace("{id}", "1")
            .replace("{tokenId}", "1")
            .replace("{email}", "someone@example.com")
            .replace("{licenseNumber}", "ABC123")
            .replace("{permit_id}", "00000000-0000-4000-8000-000000000000");
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = matches!(method, "post" | "put" | "patch").then(|| json!({}));
            let mut request = server
                .client
                .request(m, server.url(&concrete))
                .bearer_auth(&server.operator);
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            let status = response.status();
            let text = response.text().await.unwrap();
            assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
            assert!(
                !text.contains("no such endpoint"),
                "{method} {path} is documented but not routed"
            );
        }
    }
    assert!(operations >= 12, "{operations}");
    // and something undocumented is not routed
    let (status, body) = server
        .call(Method::GET, "/api/v1/undocumented", None, None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

async fn every_response_has_a_request_id(backend: Backend) {
    let server = TestServer::start(backend).await;
    let ok = server
        .client
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    let id = ok.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert!(id.len() >= 16, "{id}");
    let failed = server.client.get(server.url("/nope")).send().await.unwrap();
    let other = failed.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_ne!(id, other);
    let echoed = server
        .client
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-me-123")
        .send()
        .await
        .unwrap();
    assert_eq!(echoed.headers()["x-request-id"], "trace-me-123");
}

async fn framework_rejections_are_json_in_one_shape(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.lot(12, 123, "Europe/Stockholm").await;
    let (_, provider) = server.provider("p", None).await;
    let url = server.url("/api/v1/actions/tickets");
    let send = |request: reqwest::RequestBuilder| async move {
        let response = request.send().await.expect("answer");
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned());
        let body: Value = serde_json::from_str(&response.text().await.unwrap()).expect("JSON body");
        assert_eq!(content_type.as_deref(), Some("application/json"));
        (status, body)
    };
    // malformed JSON: 400
    let (status, body) = send(
        server
            .client
            .post(&url)
            .bearer_auth(&provider)
            .header("content-type", "application/json")
            .body("{\"eventType\":"),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    // wrong content type: 415
    let (status, body) = send(
        server
            .client
            .post(&url)
            .bearer_auth(&provider)
            .header("content-type", "text/plain")
            .body("{}"),
    )
    .await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (status, body) = send(server.client.post(&url).bearer_auth(&provider).body("{}")).await;
    assert_error(status, &body, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // over 1 MiB: 413, with or without a Content-Length the server can read up front. The
    // server answers before the client has sent everything and then closes the connection, so
    // a client still writing may lose the answer to a reset (a race of HTTP itself, not of the
    // service); such an attempt is repeated, and every answer that arrives must be the 413.
    let big = format!("{{\"x\":\"{}\"}}", "a".repeat(1024 * 1024 + 10));
    for streamed in [false, true] {
        let mut answered = None;
        for _ in 0..5 {
            let body = if streamed {
                let chunks: Vec<Result<Vec<u8>, std::io::Error>> = big
                    .as_bytes()
                    .chunks(64 * 1024)
                    .map(|c| Ok(c.to_vec()))
                    .collect();
                reqwest::Body::wrap_stream(futures_util::stream::iter(chunks))
            } else {
                reqwest::Body::from(big.clone())
            };
            let request = server
                .client
                .post(&url)
                .bearer_auth(&provider)
                .header("content-type", "application/json")
                .body(body);
            let Ok(response) = request.send().await else {
                continue;
            };
            let status = response.status();
            let content_type = response.headers().get("content-type").cloned();
            assert_eq!(
                content_type.as_ref().and_then(|v| v.to_str().ok()),
                Some("application/json")
            );
            let json: Value =
                serde_json::from_str(&response.text().await.unwrap()).expect("JSON body");
            answered = Some((status, json));
            break;
        }
        let (status, body) = answered.expect("the 413 arrived in one of five attempts");
        assert_error(status, &body, StatusCode::PAYLOAD_TOO_LARGE);
    }
    // unknown route and wrong method
    let (status, body) = send(server.client.get(server.url("/api/v1/nothing-here"))).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = send(server.client.put(&url).bearer_auth(&provider)).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED);
    // JSON of the wrong shape on a typed endpoint: 422 naming the field
    let (status, body) = server
        .post(
            "/api/v1/admin/parking-lots",
            &server.operator,
            &json!({"id": "twelve", "name": "x", "zoneCode": 1}),
        )
        .await;
    common::assert_invalid(status, &body, "id");
    // nothing of the above stored anything
    assert_eq!(
        server.get("/api/v1/actions/tickets", &provider).await.1["meta"]["total"],
        0
    );
}

async fn authentication_failures_are_401(backend: Backend) {
    let server = TestServer::start(backend).await;
    let path = "/api/v1/admin/parking-lots";
    let unknown = format!("phk_{}", "A".repeat(43));
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing", None),
        ("empty", Some(String::new())),
        ("not bearer", Some(format!("Basic {}", server.operator))),
        ("no scheme", Some(server.operator.clone())),
        ("malformed", Some("Bearer not-a-token".into())),
        ("unknown", Some(format!("Bearer {unknown}"))),
    ];
    for (what, header) in cases {
        let mut request = server.client.get(server.url(path));
        if let Some(header) = header {
            request = request.header("authorization", header);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer", "{what}");
        let body: Value = response.json().await.unwrap();
        assert_error(StatusCode::UNAUTHORIZED, &body, StatusCode::UNAUTHORIZED);
    }
    // a revoked token stops working at once
    let (id, token) = server.provider("soon-revoked", None).await;
    assert_eq!(
        server.get("/api/v1/actions/tickets", &token).await.0,
        StatusCode::OK
    );
    let (_, tokens) = server
        .get(
            &format!("/api/v1/admin/providers/{id}/tokens"),
            &server.operator,
        )
        .await;
    let token_id = tokens[0]["id"].as_i64().unwrap();
    let (status, _) = server
        .delete(
            &format!("/api/v1/admin/providers/{id}/tokens/{token_id}"),
            &server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server.get("/api/v1/actions/tickets", &token).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
}

async fn wrong_role_is_403(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (_, provider) = server.provider("p", None).await;
    for (method, path) in [
        (Method::GET, "/api/v1/admin/parking-lots"),
        (Method::POST, "/api/v1/admin/parking-lots"),
        (Method::GET, "/api/v1/admin/providers"),
        (Method::POST, "/api/v1/admin/providers"),
        (Method::GET, "/api/v1/admin/providers/1"),
        (Method::POST, "/api/v1/admin/providers/1/tokens"),
    ] {
        let body = (method == Method::POST).then(|| json!({"id": 5, "name": "x", "zoneCode": 1}));
        let (status, answer) = server
            .call(method.clone(), path, Some(&provider), body.as_ref())
            .await;
        assert_error(status, &answer, StatusCode::FORBIDDEN);
    }
    // and the forbidden create changed nothing
    let (_, lots) = server
        .get("/api/v1/admin/parking-lots", &server.operator)
        .await;
    assert_eq!(lots, json!([]));
}
