//! The `parkhub` binary as a user runs it: first start, `--demo`, token commands, graceful
//! shutdown, and `kill -9` in the middle of writes. Both backends.

mod common;

use std::collections::HashMap;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Backend, fresh_database};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

backend_tests!(
    first_start_prints_a_working_operator_curl_line_once,
    demo_prints_the_seed_example_ready_to_paste,
    token_commands_create_list_and_revoke,
    sigterm_stops_gracefully,
    kill_9_loses_nothing_that_was_acknowledged,
    an_event_survives_kill_9_before_its_subscriber_connects,
);

const BIN: &str = env!("CARGO_BIN_EXE_parkhub");

/// A running `parkhub serve` with everything it printed so far.
struct Service {
    child: Child,
    output: Arc<Mutex<String>>,
    base: String,
}

impl Service {
    async fn start(database_url: &str, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--database", database_url])
            .args(extra)
            .env("PARKHUB_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("start parkhub");
        let output = Arc::new(Mutex::new(String::new()));
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel::<String>();
        let stdout = child.stdout.take().expect("stdout");
        let sink = output.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut ready = Some(ready_tx);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(base) = line.strip_prefix("parkhub is listening on ")
                    && let Some(tx) = ready.take()
                {
                    let _ = tx.send(base.trim().to_owned());
                }
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
        let base = tokio::time::timeout(Duration::from_secs(30), ready_rx)
            .await
            .expect("parkhub printed its address within 30 s")
            .expect("parkhub printed its address");
        let service = Self {
            child,
            output,
            base,
        };
        service.wait_ready().await;
        service
    }

    /// The listener is bound before the address is printed; wait for /readyz anyway.
    async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(r) = client.get(format!("{}/readyz", self.base)).send().await
                && r.status() == StatusCode::OK
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("parkhub never became ready");
    }

    /// Waits until the output has everything the welcome text prints after the address.
    async fn output_containing(&self, needle: &str) -> String {
        for _ in 0..500 {
            let out = self.output.lock().unwrap().clone();
            if out.contains(needle) {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "output never contained {needle:?}: {}",
            self.output.lock().unwrap()
        );
    }

    async fn sigterm(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().expect("pid").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("parkhub stopped within 15 s of SIGTERM")
            .expect("exit status")
    }

    async fn kill_9(mut self) {
        self.child.start_kill().expect("SIGKILL");
        let _ = self.child.wait().await;
    }
}

fn cli(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("PARKHUB_LOG", "warn")
        .output()
        .expect("run parkhub")
}

/// `parkhub token create` and the token it printed last.
fn create_token(database_url: &str, role: &str, name: &str) -> String {
    let out = cli(&[
        "token",
        "create",
        "--role",
        role,
        "--name",
        name,
        "--database",
        database_url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout.lines().last().expect("a line").trim().to_owned()
}

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
    assert!(service.sigterm().await.success());

    let again = Service::start(&url, &[]).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let out = again.output.lock().unwrap().clone();
    assert!(
        !out.contains("phk_"),
        "a second start must not print a token: {out}"
    );
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
    assert_eq!(
        client
            .get(&tickets)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
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
    let service = Service::start(&url, &[]).await;
    let base = service.base.clone();
    let status = service.sigterm().await;
    assert!(status.success(), "{status:?}");
    assert!(
        reqwest::get(format!("{base}/healthz")).await.is_err(),
        "nothing listens any more"
    );
}

async fn kill_9_loses_nothing_that_was_acknowledged(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let provider = create_token(&url, "provider", "crash-provider");
    let mut service = Service::start(&url, &["--demo"]).await;
    let client = reqwest::Client::new();
    let acknowledged: Arc<Mutex<HashMap<String, String>>> = Arc::default();
    for cycle in 0..3 {
        let mut writers = Vec::new();
        for w in 0..8 {
            let client = client.clone();
            let url = format!("{}/api/v1/actions/tickets", service.base);
            let token = provider.clone();
            let acked = acknowledged.clone();
            writers.push(tokio::spawn(async move {
                for n in 0.. {
                    // a new ticket each time, and one ticket updated again and again
                    let (id, plate) = if n % 2 == 0 {
                        (format!("c{cycle}-w{w}-n{n}"), format!("NEW{n}"))
                    } else {
                        (format!("hot-w{w}"), format!("HOT{cycle}X{n}"))
                    };
                    let body = json!({
                        "eventType": "CreateOrUpdate", "ticketId": id, "parkingLotId": 12,
                        "startDate": "2025-06-01T10:00:00Z", "licenseNumber": plate,
                    });
                    match client
                        .post(&url)
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status() == StatusCode::OK => {
                            acked.lock().unwrap().insert(id, plate);
                        }
                        Ok(r) => panic!("unexpected {}", r.status()),
                        Err(_) => return, // the service is gone
                    }
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(400 + 150 * cycle)).await;
        service.kill_9().await;
        for w in writers {
            w.await.expect("writer");
        }
        service = Service::start(&url, &[]).await;
        // everything acknowledged is there, at its acknowledged state
        let mut stored: HashMap<String, String> = HashMap::new();
        for page in 1.. {
            let body: Value = client
                .get(format!(
                    "{}/api/v1/actions/tickets?perPage=500&page={page}",
                    service.base
                ))
                .bearer_auth(&provider)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let data = body["data"].as_array().unwrap();
            if data.is_empty() {
                break;
            }
            for t in data {
                stored.insert(
                    t["ticketId"].as_str().unwrap().to_owned(),
                    t["licenseNumber"].as_str().unwrap().to_owned(),
                );
            }
        }
        let acked = acknowledged.lock().unwrap().clone();
        assert!(
            acked.len() > 20,
            "cycle {cycle}: too few writes to prove anything ({})",
            acked.len()
        );
        let mut lost = Vec::new();
        for (id, plate) in &acked {
            match stored.get(id) {
                None => lost.push(format!("{id} missing")),
                Some(found) if id.starts_with("hot-") => {
                    // the acknowledged update, or one in flight when the kill came (never older)
                    let n = |p: &str| p.rsplit('X').next().unwrap().parse::<u64>().unwrap();
                    if !found.starts_with(&format!("HOT{cycle}X")) || n(found) < n(plate) {
                        lost.push(format!("{id}: acknowledged {plate}, stored {found}"));
                    }
                }
                Some(found) if found != plate => lost.push(format!("{id}: {found} != {plate}")),
                Some(_) => {}
            }
        }
        assert!(
            lost.is_empty(),
            "cycle {cycle}: lost {} of {}: {lost:?}",
            lost.len(),
            acked.len()
        );
        eprintln!(
            "kill -9 {backend:?} cycle {cycle}: {} acknowledged tickets so far (8 of them updated again and again), all found at their acknowledged state, lost 0",
            acked.len()
        );
    }
    assert!(service.sigterm().await.success());
    if backend == Backend::Sqlite {
        let store = parkhub::store::Store::open(&url, &Default::default())
            .await
            .unwrap();
        let parkhub::store::Backend::Sqlite(db) = store.backend() else {
            unreachable!()
        };
        let check: String = sqlx::query_scalar("PRAGMA integrity_check")
            .fetch_one(&db.reader)
            .await
            .unwrap();
        assert_eq!(check, "ok");
    }
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
