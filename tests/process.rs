//! The `parkhub` binary as a user runs it: first start, `--demo`, token commands, graceful
//! shutdown, and an event that survives `kill -9` (the crash campaign is tests/crash.rs).
//! Both backends.

mod common;

use std::time::Duration;

use common::process::{Service, cli, create_token};
use common::{Backend, fresh_database};
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    first_start_prints_a_working_operator_curl_line_once,
    demo_prints_the_seed_example_ready_to_paste,
    token_commands_create_list_and_revoke,
    sigterm_stops_gracefully,
    an_event_survives_kill_9_before_its_subscriber_connects,
);

async fn first_start_prints_a_working_operator_curl_line_once(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let service = Service::start(&url, &[]).await;
    let out = service
        .output_containing(&format!("curl -s {}", service.base))
        .await;
    let curl = out
        .lines()
        .find(|l| l.trim_start().starts_with("curl "))
        .expect("a curl line")
        .trim();
    // curl -s URL -H 'Authorization: Bearer TOKEN'
    let parts: Vec<&str> = curl.split_whitespace().collect();
    let target = parts[2];
    let token = parts.last().unwrap().trim_end_matches('\'');
    assert!(token.starts_with("phk_"), "{curl}");
    let response = reqwest::Client::new()
        .get(target)
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap(), json!([]));
    // ... and where the console is, which serves its page there.
    let console_line = format!("sign in with it:\n  {}/\n", service.base);
    service.output_containing(&console_line).await;
    let page = reqwest::get(format!("{}/", service.base)).await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.unwrap().contains("/console/app.js"));
    assert!(service.sigterm().await.success());

    let again = Service::start(&url, &[]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = again.output.lock().unwrap().clone();
    assert!(
        !out.contains("phk_"),
        "a second start must not print a token: {out}"
    );
    assert!(out.contains("Console: open"), "{out}");
    assert!(again.sigterm().await.success());
}

async fn demo_prints_the_seed_example_ready_to_paste(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let service = Service::start(&url, &["--demo"]).await;
    let out = service
        .output_containing("-H 'Accept: application/json'\n")
        .await;
    let lines: Vec<&str> = out.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with("curl -X POST"))
        .expect("the create curl");
    let end = lines
        .iter()
        .skip(start)
        .position(|l| *l == "}'")
        .expect("end of the curl")
        + start;
    let create = lines[start..=end].join("\n");
    let list = lines
        .iter()
        .find(|l| l.starts_with("curl -s '"))
        .expect("the list curl");
    let run = |script: String| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(&script)
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(run(create.clone()), "[]", "pasting the printed create curl");
    let listed: Value = serde_json::from_str(&run(list.to_string())).expect("JSON");
    assert_eq!(
        listed["data"][0]["startDate"], "2023-10-01T14:00:00+02:00",
        "{listed}"
    );
    assert_eq!(listed["data"][0]["zoneCode"], 123);
    assert!(service.sigterm().await.success());

    // a second --demo start keeps the lot and the provider and prints a working token again
    let again = Service::start(&url, &["--demo"]).await;
    let out = again.output_containing("Provider token: ").await;
    let token = out
        .lines()
        .find_map(|l| l.strip_prefix("Provider token: "))
        .unwrap()
        .trim()
        .to_owned();
    let page: Value = reqwest::Client::new()
        .get(format!("{}/api/v1/actions/tickets", again.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        page["meta"]["total"], 1,
        "same provider, same ticket: {page}"
    );
    assert!(again.sigterm().await.success());
}

async fn token_commands_create_list_and_revoke(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let service = Service::start(&url, &[]).await;
    let token = create_token(&url, "provider", "cli-provider");
    assert!(token.starts_with("phk_"), "{token}");
    let client = reqwest::Client::new();
    let tickets = format!("{}/api/v1/actions/tickets", service.base);
    assert_eq!(
        client
            .get(&tickets)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // the same name again: the same principal, a second token
    let second = create_token(&url, "provider", "cli-provider");
    assert_ne!(second, token);

    let listed = cli(&["token", "list", "--database", &url]);
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        !listed.contains(&token[4..]),
        "token list never shows secrets: {listed}"
    );
    let hint = &token[..10];
    let row = listed
        .lines()
        .find(|l| l.contains(hint))
        .expect("the token is listed by its hint");
    let id = row.split_whitespace().next().unwrap();

    let revoked = cli(&["token", "revoke", "--id", id, "--database", &url]);
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    // The service keeps a token it has seen for at most a second (parkhub::store::cache), so
    // a revocation by another process takes effect within that, and then for good.
    let revoked_at = std::time::Instant::now();
    loop {
        let status = client
            .get(&tickets)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status();
        if status == StatusCode::UNAUTHORIZED {
            break;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            revoked_at.elapsed() <= parkhub::store::cache::FRESH_FOR + Duration::from_millis(500),
            "the revoked token still works after {:?}",
            revoked_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        client
            .get(&tickets)
            .bearer_auth(&second)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    let missing = cli(&["token", "revoke", "--id", "999999", "--database", &url]);
    assert!(!missing.status.success());
    let bad_role = cli(&[
        "token",
        "create",
        "--role",
        "admin",
        "--name",
        "x",
        "--database",
        &url,
    ]);
    assert!(!bad_role.status.success());
    assert!(service.sigterm().await.success());
}

async fn sigterm_stops_gracefully(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let operator = create_token(&url, "operator", "ops");
    let service = Service::start(&url, &[]).await;
    let base = service.base.clone();
    let client = reqwest::Client::new();
    let lot = json!({"id": 12, "name": "P-hus", "zoneCode": 123});
    let created = client
        .post(format!("{base}/api/v1/admin/parking-lots"))
        .bearer_auth(&operator)
        .json(&lot)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    // Checks are written to the log a moment after their answers: every check answered, even
    // while the service is stopping, is written before the process ends.
    let checks = (0..300).map(|n| {
        let request = client
            .get(format!(
                "{base}/api/v1/parking-rights?licenseNumber=SIG{n:03}&parkingLotId=12"
            ))
            .bearer_auth(&operator);
        tokio::spawn(async move { request.send().await.map(|r| r.status()) })
    });
    let checks: Vec<_> = checks.collect();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let status = service.sigterm().await;
    assert!(status.success(), "{status:?}");
    let mut answered = 0;
    for check in checks {
        // a refused one came after the service stopped listening
        if let Ok(status) = check.await.unwrap() {
            assert_eq!(status, StatusCode::OK);
            answered += 1;
        }
    }
    assert!(answered > 0, "some checks were answered");
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "nothing listens any more"
    );

    let service = Service::start(&url, &[]).await;
    let log: Value = client
        .get(format!(
            "{}/api/v1/admin/parking-right-checks",
            service.base
        ))
        .bearer_auth(&operator)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(log["meta"]["total"], answered, "{log}");
}

async fn an_event_survives_kill_9_before_its_subscriber_connects(backend: Backend) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let (url, _dir) = fresh_database(backend).await;
    let operator = create_token(&url, "operator", "ops");
    let service = Service::start(&url, &[]).await;
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, token: &str, body: Value| {
        client
            .request(method, format!("{}{path}", service.base))
            .bearer_auth(token)
            .json(&body)
            .send()
    };
    let lot = json!({"id": 12, "name": "P-hus", "zoneCode": 123, "facilityNo": 1, "carparkNo": 2, "capacity": 10});
    assert_eq!(
        call(
            reqwest::Method::POST,
            "/api/v1/admin/parking-lots",
            &operator,
            lot
        )
        .await
        .unwrap()
        .status(),
        StatusCode::CREATED
    );
    let equipment: Value = call(
        reqwest::Method::POST,
        "/api/v1/admin/equipment",
        &operator,
        json!({"name": "gate", "parkingLotIds": [12]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let provider: Value = call(
        reqwest::Method::POST,
        "/api/v1/admin/providers",
        &operator,
        json!({"name": "easypark"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let provider = provider["token"].as_str().unwrap().to_owned();
    let identifier = json!({"ticketNo": "ABC123", "ticketType": 4});
    assert_eq!(
        call(
            reqwest::Method::PUT,
            "/api/v1/identifiers",
            &provider,
            identifier
        )
        .await
        .unwrap()
        .status(),
        StatusCode::CREATED
    );
    let entry: Value = call(
        reqwest::Method::POST,
        "/api/v1/carparks/entries",
        equipment["token"].as_str().unwrap(),
        json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "ABC123", "ticketType": 4}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let event_id = entry["eventId"].as_str().expect("an event id").to_owned();
    // the 2xx came back: now the service dies before anyone subscribed
    service.kill_9().await;
    let restarted = Service::start(&url, &[]).await;
    let ws = format!(
        "{}/api/TransactionMonitor",
        restarted.base.replacen("http", "ws", 1)
    );
    let mut request = ws.into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {provider}").parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("upgrade");
    let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("a frame")
        .unwrap()
        .unwrap();
    let frame: Value = serde_json::from_str(frame.to_text().unwrap()).unwrap();
    assert_eq!(frame["EventType"], "TransactionStarted");
    assert_eq!(frame["EventID"], event_id.as_str());
    drop(socket);
    assert!(restarted.sigterm().await.success());
}
