//! The database going away under load. PostgreSQL stopped (a proxy in front of it refuses and
//! cuts connections) for 10 s: requests fail fast with a JSON 503, `/readyz` says not ready,
//! and everything recovers by itself. SQLite on a full disk or a read-only file system: a JSON
//! 503, a log line, nothing acknowledged lost, the file intact.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{Backend, TestServer, fresh_database};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The outage, in seconds (`PARKHUB_OUTAGE_SECS`, 10 by default).
fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("PARKHUB_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(10),
    )
}

#[derive(Debug, Clone)]
struct Outcome {
    ticket: String,
    sent: Duration,
    sent_at: Instant,
    took: Duration,
    status: Option<StatusCode>,
    body: Value,
}

/// Posts one new ticket every `every` (each in its own task, so slow answers do not slow the
/// load) until `stop`; collects every outcome.
fn load(
    server: &TestServer,
    token: String,
    every: Duration,
    stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<Vec<Outcome>> {
    let url = server.url("/api/v1/actions/tickets");
    let client = server.client.clone();
    tokio::spawn(async move {
        let started = Instant::now();
        let outcomes: Arc<Mutex<Vec<Outcome>>> = Arc::default();
        let mut requests = Vec::new();
        let mut tick = tokio::time::interval(every);
        for n in 0.. {
            tick.tick().await;
            if *stop.borrow() {
                break;
            }
            let (client, url, token, outcomes) =
                (client.clone(), url.clone(), token.clone(), outcomes.clone());
            requests.push(tokio::spawn(async move {
                let ticket = format!("t{n}");
                let body = json!({"eventType": "CreateOrUpdate", "ticketId": ticket, "parkingLotId": 12,
                                  "startDate": "2025-06-01T10:00:00Z", "licenseNumber": format!("ABC{n}")});
                let sent = started.elapsed();
                let at = Instant::now();
                let response = client.post(&url).bearer_auth(&token).json(&body).send().await;
                let (status, body) = match response {
                    Ok(r) => {
                        let status = r.status();
                        (Some(status), r.json().await.unwrap_or(Value::Null))
                    }
                    Err(_) => (None, Value::Null),
                };
                outcomes.lock().unwrap_or_else(|e| e.into_inner()).push(Outcome {
                    ticket,
                    sent,
                    sent_at: at,
                    took: at.elapsed(),
                    status,
                    body,
                });
            }));
        }
        for r in requests {
            r.await.expect("a request task");
        }
        let mut all = outcomes.lock().unwrap_or_else(|e| e.into_inner()).clone();
        all.sort_by_key(|o| o.sent);
        all
    })
}

async fn ready(server: &TestServer) -> (StatusCode, Duration) {
    let at = Instant::now();
    let response = server
        .client
        .get(server.url("/readyz"))
        .send()
        .await
        .expect("/readyz answers");
    (response.status(), at.elapsed())
}

/// Every ticket the provider can list.
async fn listed(server: &TestServer, token: &str) -> std::collections::HashSet<String> {
    let mut found = std::collections::HashSet::new();
    for page in 1.. {
        let (status, body) = server
            .get(
                &format!("/api/v1/actions/tickets?perPage=500&page={page}"),
                token,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let data = body["data"].as_array().expect("a page");
        found.extend(
            data.iter()
                .filter_map(|t| t["ticketId"].as_str().map(str::to_owned)),
        );
        if data.len() < 500 {
            break;
        }
    }
    found
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn stopped_under_load_fails_fast_and_recovers_by_itself() {
        let (url, _) = fresh_database(Backend::Postgres).await;
        // postgres://user@HOST:PORT/db → the same through the proxy.
        let after_at = url
            .split_once('@')
            .map(|(_, r)| r)
            .expect("user@host in the URL");
        let host_port = after_at.split('/').next().expect("host:port");
        let target = tokio::net::lookup_host(host_port)
            .await
            .expect("the PostgreSQL address")
            .next()
            .expect("one address");
        let proxy = Proxy::start_to(target).await;
        let proxied = url.replacen(host_port, &proxy.addr.to_string(), 1);
        let server = TestServer::start_on(&proxied, |_| {}).await;
        server.lot(12, 123, "Europe/Stockholm").await;
        let (_, token) = server.provider("p", None).await;

        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let load = load(&server, token.clone(), Duration::from_millis(50), stop_rx);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let down_at = Instant::now();
        proxy.stop();
        tokio::time::sleep(Duration::from_secs(1)).await;
        let (status, took) = ready(&server).await;
        assert_eq!(
            status,
            StatusCode::SERVICE_UNAVAILABLE,
            "/readyz while the database is down"
        );
        assert!(
            took < Duration::from_secs(3),
            "/readyz answered in {took:?}"
        );
        tokio::time::sleep(outage().saturating_sub(down_at.elapsed())).await;
        proxy.resume().await;
        let up_at = Instant::now();
        let mut recovered = None;
        while up_at.elapsed() < Duration::from_secs(15) {
            if ready(&server).await.0 == StatusCode::OK {
                recovered = Some(up_at.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let recovered = recovered.expect("/readyz said ready again within 15 s");
        // Keep the load going a little after recovery.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = stop_tx.send(true);
        let outcomes = load.await.expect("the load");

        let mut unavailable = 0;
        let mut slowest = Duration::ZERO;
        for o in &outcomes {
            slowest = slowest.max(o.took);
            match o.status {
                Some(StatusCode::OK) => {}
                Some(StatusCode::SERVICE_UNAVAILABLE) => {
                    unavailable += 1;
                    assert_eq!(o.body["error_id"], "service_unavailable", "{:?}", o);
                }
                other => panic!("{} answered {other:?}: {}", o.ticket, o.body),
            }
            // The wait for a connection (5 s) bounds every answer: no hangs.
            assert!(
                o.took < Duration::from_secs(7),
                "{} took {:?}",
                o.ticket,
                o.took
            );
        }
        assert!(unavailable > 0, "the outage was seen");
        // Fail fast: requests already waiting for a connection when the database went away
        // wait out the 5 s connection timeout; once one of them has failed, the breaker
        // refuses the rest at once (but for one probe a second).
        let settled = down_at + Duration::from_millis(5500);
        let mut refusals: Vec<Duration> = outcomes
            .iter()
            .filter(|o| o.status == Some(StatusCode::SERVICE_UNAVAILABLE))
            .filter(|o| o.sent_at > settled && o.sent_at < up_at)
            .map(|o| o.took)
            .collect();
        refusals.sort();
        let median = refusals[refusals.len() / 2];
        let fast = refusals
            .iter()
            .filter(|t| **t < Duration::from_millis(100))
            .count();
        assert!(
            fast * 10 >= refusals.len() * 8,
            "only {fast} of {} refusals came within 100 ms",
            refusals.len()
        );
        let tail: Vec<&Outcome> = outcomes.iter().rev().take(10).collect();
        assert!(
            tail.iter().all(|o| o.status == Some(StatusCode::OK)),
            "the last requests succeeded again: {tail:?}"
        );
        let acknowledged: Vec<&Outcome> = outcomes
            .iter()
            .filter(|o| o.status == Some(StatusCode::OK))
            .collect();
        let found = listed(&server, &token).await;
        let lost: Vec<&str> = acknowledged
            .iter()
            .filter(|o| !found.contains(&o.ticket))
            .map(|o| o.ticket.as_str())
            .collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
        eprintln!(
            "PostgreSQL outage of {:?}: {} requests, {} acknowledged, {unavailable} answered 503 (once the first had failed: {fast} of {} within 100 ms, median {median:?}), none other; slowest answer {:?}; ready again {:?} after it came back; lost 0",
            outage(),
            outcomes.len(),
            acknowledged.len(),
            refusals.len(),
            slowest,
            recovered,
        );
        server.stop().await;
    }
}

mod sqlite {
    use std::process::Stdio;

    use super::*;
    use common::process::{Service, create_token};

    /// A 4 MiB tmpfs mounted for the test, unmounted when dropped.
    struct SmallDisk {
        dir: tempfile::TempDir,
    }

    impl SmallDisk {
        fn mount() -> Option<Self> {
            let dir = tempfile::tempdir().expect("a directory");
            let mounted = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            mounted.then_some(Self { dir })
        }

        /// Fills what is left with a file, until the disk is full.
        fn fill(&self) {
            use std::io::Write;
            let mut filler = std::fs::File::create(self.dir.path().join("filler")).expect("a file");
            let block = vec![0u8; 64 * 1024];
            while filler.write_all(&block).is_ok() {}
            let _ = filler.write_all(&[0u8; 512]);
            let _ = filler.sync_all();
        }

        fn free(&self) {
            std::fs::remove_file(self.dir.path().join("filler")).expect("remove the filler");
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(self.dir.path())
                .status();
        }
    }

    fn is_root() -> bool {
        std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_disk_answers_503_logs_it_and_loses_nothing() {
        if !is_root() {
            eprintln!(
                "\n##### SKIPPED a_full_disk_answers_503_logs_it_and_loses_nothing: mounting a \
                 small file system needs root (CI runs it) #####\n"
            );
            return;
        }
        let disk = SmallDisk::mount().expect("root can mount a tmpfs");
        let url = format!("sqlite://{}", disk.dir.path().join("parkhub.db").display());
        let operator = create_token(&url, "operator", "ops");
        let log_path = tempfile::NamedTempFile::new().expect("a log file");
        let log = Stdio::from(log_path.reopen().expect("the log file"));
        let service = Service::start_logging(&url, &["--rate-limit", "0"], "warn", log).await;
        let client = reqwest::Client::new();
        let post = |path: &str, token: &str, body: Value| {
            client
                .post(format!("{}{path}", service.base))
                .bearer_auth(token)
                .json(&body)
                .send()
        };
        let answer = post(
            "/api/v1/admin/parking-lots",
            &operator,
            json!({"id": 12, "name": "Lot 12", "zoneCode": 123, "timeZone": "Europe/Stockholm"}),
        )
        .await
        .expect("an answer");
        assert_eq!(answer.status(), StatusCode::CREATED);
        let provider: Value = post("/api/v1/admin/providers", &operator, json!({"name": "p"}))
            .await
            .expect("an answer")
            .json()
            .await
            .expect("JSON");
        let token = provider["token"].as_str().expect("a token").to_owned();
        let ticket = |n: usize| {
            json!({"eventType": "CreateOrUpdate", "ticketId": format!("t{n}"), "parkingLotId": 12,
                   "startDate": "2025-06-01T10:00:00Z", "licenseNumber": format!("ABC{n}"),
                   "zone": "x".repeat(200)})
        };
        let mut acknowledged = Vec::new();
        for n in 0..20 {
            let r = post("/api/v1/actions/tickets", &token, ticket(n))
                .await
                .expect("an answer");
            assert_eq!(r.status(), StatusCode::OK);
            acknowledged.push(format!("t{n}"));
        }

        disk.fill();
        // Writes now fail: each with a JSON 503, never a 500 or a hang. Enough of them to
        // outgrow whatever room the WAL still had.
        let mut refused = 0;
        let mut other = Vec::new();
        for n in 20..400 {
            let r = post("/api/v1/actions/tickets", &token, ticket(n))
                .await
                .expect("an answer");
            match r.status() {
                StatusCode::OK => acknowledged.push(format!("t{n}")),
                StatusCode::SERVICE_UNAVAILABLE => {
                    let body: Value = r.json().await.expect("a JSON body");
                    assert_eq!(body["error_id"], "service_unavailable", "{body}");
                    refused += 1;
                }
                status => other.push(format!("t{n}: {status}")),
            }
        }
        assert!(
            other.is_empty(),
            "only 200 or 503 on a full disk: {other:?}"
        );
        assert!(refused > 0, "the full disk was noticed");
        // Reads still work.
        let r = client
            .get(format!(
                "{}/api/v1/actions/tickets?perPage=500",
                service.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("an answer");
        assert_eq!(r.status(), StatusCode::OK);

        // Room again: writes work without a restart.
        disk.free();
        let mut recovered = false;
        for attempt in 0..50 {
            let r = post("/api/v1/actions/tickets", &token, ticket(1000 + attempt))
                .await
                .expect("an answer");
            if r.status() == StatusCode::OK {
                acknowledged.push(format!("t{}", 1000 + attempt));
                recovered = true;
                break;
            }
            if attempt == 0 {
                eprintln!(
                    "after freeing: {} {}",
                    r.status(),
                    r.text().await.unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if !recovered {
            eprintln!(
                "LOG: {}",
                std::fs::read_to_string(log_path.path()).unwrap_or_default()
            );
        }
        assert!(recovered, "writes work again once there is room");
        assert!(service.sigterm().await.success());

        let log = std::fs::read_to_string(log_path.path()).expect("the log");
        assert!(
            log.contains("database unavailable"),
            "a log line says why: {log}"
        );

        let restarted = Service::start(&url, &[]).await;
        let body: Value = client
            .get(format!(
                "{}/api/v1/actions/tickets?perPage=500",
                restarted.base
            ))
            .bearer_auth(&token)
            .send()
            .await
            .expect("an answer")
            .json()
            .await
            .expect("JSON");
        let found: std::collections::HashSet<&str> = body["data"]
            .as_array()
            .expect("a page")
            .iter()
            .filter_map(|t| t["ticketId"].as_str())
            .collect();
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|t| !found.contains(t.as_str()))
            .collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");
        assert!(restarted.sigterm().await.success());
        common::assert_sqlite_intact(&url).await;
        eprintln!(
            "SQLite disk full: {} acknowledged, {refused} answered 503 while full, writes back without a restart, integrity ok, lost 0",
            acknowledged.len()
        );
    }
}
