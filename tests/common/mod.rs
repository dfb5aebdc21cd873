//! The test harness: a real parkhub on 127.0.0.1:0 with a fresh database per test, on SQLite
//! or PostgreSQL, and a typed HTTP client for it.
#![allow(dead_code)]

pub mod events;
pub mod permits;
pub mod process;
pub mod proxy;
pub mod rights;
pub mod tickets;

use std::sync::atomic::{AtomicU32, Ordering};

use parkhub::ServeConfig;
use parkhub::principals::{Role, store as principals};
use parkhub::store::{Store, StoreOptions};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::sync::oneshot;

/// Where the PostgreSQL suite creates its databases (a URL to any existing database).
pub const POSTGRES_ENV: &str = "PARKHUB_TEST_POSTGRES_URL";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` as a test on SQLite (`sqlite::name`) and on PostgreSQL
/// (`postgres::name`).
#[macro_export]
macro_rules! backend_tests {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// A fresh, empty database of `backend`: its URL, and the temporary directory that holds it
/// for SQLite.
pub async fn fresh_database(backend: Backend) -> (String, Option<tempfile::TempDir>) {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("a temporary directory");
            let url = format!("sqlite://{}", dir.path().join("parkhub.db").display());
            (url, Some(dir))
        }
        Backend::Postgres => {
            let admin_url = std::env::var(POSTGRES_ENV).unwrap_or_else(|_| {
                panic!(
                    "{POSTGRES_ENV} is not set: the PostgreSQL suite needs a server, e.g. \
                     {POSTGRES_ENV}=postgres://postgres@127.0.0.1:5432/postgres \
                     (scripts/test skips this suite when it is unset)"
                )
            });
            let name = format!(
                "ph_test_{}_{}_{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::SeqCst),
                rand_suffix()
            );
            let admin = sqlx::PgPool::connect(&admin_url)
                .await
                .expect("connect to the PostgreSQL test server");
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&admin)
                .await
                .expect("create a test database");
            admin.close().await;
            (parkhub::store::with_database(&admin_url, &name), None)
        }
    }
}

fn rand_suffix() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

pub struct TestServer {
    pub backend: Backend,
    pub base: String,
    pub database_url: String,
    pub client: reqwest::Client,
    /// An operator token.
    pub operator: String,
    pub store: Store,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

/// Longer than any date a test writes is in the past.
const A_CENTURY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

impl TestServer {
    pub async fn start(backend: Backend) -> Self {
        Self::start_with(backend, |_| {}).await
    }

    /// A server on a fresh database, with some configuration changed.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        let (database_url, dir) = fresh_database(backend).await;
        let mut server = Self::start_on(&database_url, configure).await;
        server.backend = backend;
        server._dir = dir;
        server
    }

    /// Another instance on an existing database (its operator token is new).
    pub async fn start_on(database_url: &str, configure: impl FnOnce(&mut ServeConfig)) -> Self {
        let database_url = database_url.to_owned();
        let backend = if database_url.starts_with("sqlite") {
            Backend::Sqlite
        } else {
            Backend::Postgres
        };
        let dir = None;
        let store = Store::open(&database_url, &StoreOptions::default())
            .await
            .expect("open the test database");
        let operator = principals::find_or_create(&store, Role::Operator, "test-operator")
            .await
            .expect("create the operator");
        let (_, operator_token) = principals::issue_token(&store, operator.id)
            .await
            .expect("issue an operator token");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a free port");
        let base = format!("http://{}", listener.local_addr().expect("local address"));
        let (tx, rx) = oneshot::channel::<()>();
        let mut config = ServeConfig::new(database_url.clone());
        // The rights memory keeps every right the tests write, however long ago it ended, so
        // that every check about any instant is answered from it (on SQLite); tests of the
        // default set it back.
        config.rights_memory_keep = A_CENTURY;
        // Plates are kept as sent: tests write tickets that ended years ago (the seed's 2023
        // dates), and the pseudonymisation pass, which first runs as the service starts, would
        // otherwise replace their plates whenever it happened to run after a write. The tests
        // of pseudonymisation set their own retention.
        config.plate_retention = A_CENTURY;
        configure(&mut config);
        let task = tokio::spawn(parkhub::serve_with_store(
            store.clone(),
            config,
            listener,
            async {
                let _ = rx.await;
            },
        ));
        // The listener is bound before serve starts, so requests queue until it accepts.
        Self {
            backend,
            base,
            database_url,
            client: reqwest::Client::new(),
            operator: operator_token,
            store,
            shutdown: Some(tx),
            task: Some(task),
            _dir: dir,
        }
    }

    /// Asks the server to stop and waits until it has.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.expect("server task").expect("server result");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// The value of the unlabelled metric `name` (e.g. `parkhub_..._total`) in /metrics.
    pub async fn metric(&self, name: &str) -> u64 {
        let value = self.metrics(&[name]).await[0];
        assert!(
            value >= 0.0 && value.fract() == 0.0,
            "{name} is {value}, not a count"
        );
        value as u64
    }

    /// The values of `names` as Prometheus prints them (a histogram's `_sum` in seconds, say),
    /// all from one reading of /metrics.
    pub async fn metrics(&self, names: &[&str]) -> Vec<f64> {
        let text = self
            .client
            .get(self.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        names
            .iter()
            .map(|name| {
                text.lines()
                    .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or_else(|| panic!("no {name} in {text}"))
            })
            .collect()
    }

    /// Sends a request with an optional bearer token and JSON body; returns status and JSON.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await.expect("the server answers");
        let status = response.status();
        let text = response.text().await.expect("a body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{status} body is not JSON ({e}): {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    pub async fn patch(&self, path: &str, token: &str, body: &Value) -> (StatusCode, Value) {
        self.call(Method::PATCH, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::DELETE, path, Some(token), None).await
    }

    /// Creates a lot through the admin API.
    pub async fn lot(&self, id: i64, zone_code: i64, time_zone: &str) {
        let (status, body) = self
            .post(
                "/api/v1/admin/parking-lots",
                &self.operator,
                &json!({"id": id, "name": format!("Lot {id}"), "zoneCode": zone_code, "timeZone": time_zone}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Creates a provider through the admin API; returns its id and token.
    pub async fn provider(&self, name: &str, lots: Option<&[i64]>) -> (i64, String) {
        let mut body = json!({"name": name});
        if let Some(lots) = lots {
            body["parkingLotIds"] = json!(lots);
        }
        let (status, created) = self
            .post("/api/v1/admin/providers", &self.operator, &body)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        (
            created["id"].as_i64().expect("an id"),
            created["token"].as_str().expect("a token").to_owned(),
        )
    }

    /// A lot that is a barrier car park, with a default rate of 20.00 SEK a started hour after
    /// 15 free minutes; returns nothing, panics on failure.
    pub async fn carpark(&self, id: i64, facility_no: i64, carpark_no: i64, capacity: i64) {
        let (status, body) = self
            .post(
                "/api/v1/admin/parking-lots",
                &self.operator,
                &json!({"id": id, "name": format!("Car park {id}"), "zoneCode": id, "timeZone": "Europe/Stockholm",
                        "facilityNo": facility_no, "carparkNo": carpark_no, "capacity": capacity}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/api/v1/admin/parking-lots/{id}/rates/1"),
                Some(&self.operator),
                Some(&json!({"name": "Standard", "currencyCode": "SEK", "freeMinutes": 15, "periodMinutes": 60,
                             "pricePerPeriod": 2000, "default": true})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }

    /// Equipment for some lots; returns its token.
    pub async fn equipment(&self, name: &str, lots: &[i64]) -> String {
        let (status, body) = self
            .post(
                "/api/v1/admin/equipment",
                &self.operator,
                &json!({"name": name, "parkingLotIds": lots}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// A token of `role` made straight in the database (for roles without an admin endpoint yet).
    pub async fn token_for(&self, role: Role, name: &str) -> String {
        let principal = principals::find_or_create(&self.store, role, name)
            .await
            .expect("principal");
        principals::issue_token(&self.store, principal.id)
            .await
            .expect("token")
            .1
    }
}

/// Asserts the service's error shape and returns the body for further checks.
pub fn assert_error(status: StatusCode, body: &Value, expected: StatusCode) {
    assert_eq!(status, expected, "body: {body}");
    assert_eq!(body["status"], "error", "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(
        body["error_id"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

/// Asserts a 422 that names `field`.
pub fn assert_invalid(status: StatusCode, body: &Value, field: &str) {
    assert_error(status, body, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        body["errors"][field]
            .as_array()
            .is_some_and(|m| !m.is_empty()),
        "422 does not name {field}: {body}"
    );
}

/// Writes `count` events for `provider` straight into the outbox, as the service would (for
/// tests that need more events than HTTP makes quickly).
pub async fn insert_events(server: &TestServer, provider: i64, payload: &str, count: i64) {
    use parkhub::store::Backend as Db;
    let now = jiff::Timestamp::now().as_microsecond();
    macro_rules! insert {
        ($conn:expr) => {{
            let mut conn = $conn;
            let mut tx = sqlx::Connection::begin(&mut *conn).await.unwrap();
            let last: i64 = sqlx::query_scalar("UPDATE event_sequence SET last = last + $1 WHERE id = 1 RETURNING last")
                .bind(count)
                .fetch_one(&mut *tx)
                .await
                .unwrap();
            for seq in last - count + 1..=last {
                sqlx::query("INSERT INTO events (seq, event_id, provider_id, payload, created_at) VALUES ($1, $2, $3, $4, $5)")
                    .bind(seq)
                    .bind(format!("bulk-{seq}"))
                    .bind(provider)
                    .bind(payload)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            tx.commit().await.unwrap();
        }};
    }
    match server.store.backend() {
        Db::Sqlite(db) => insert!(db.writer.acquire().await.unwrap()),
        Db::Postgres(pool) => insert!(pool.acquire().await.unwrap()),
    }
}

/// `PRAGMA integrity_check` of a SQLite database no service has open; panics unless `ok`.
pub async fn assert_sqlite_intact(url: &str) {
    let store = Store::open(url, &StoreOptions::default())
        .await
        .expect("open the database");
    let parkhub::store::Backend::Sqlite(db) = store.backend() else {
        panic!("{url} is not SQLite")
    };
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&db.reader)
        .await
        .expect("integrity check");
    store.close().await;
    assert_eq!(check, "ok", "PRAGMA integrity_check of {url}");
}

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The TransactionMonitor handshake (`auth`: the Authorization header's bytes, if any): the open socket, or the refusal's status and body.
pub async fn handshake(
    server: &TestServer,
    auth: Option<&[u8]>,
    query: &str,
) -> Result<Socket, (StatusCode, Value)> {
    let url = format!(
        "{}/api/TransactionMonitor{query}",
        server.base.replacen("http", "ws", 1)
    );
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)
            .unwrap();
    if let Some(auth) = auth {
        request.headers_mut().insert(
            "authorization",
            reqwest::header::HeaderValue::from_bytes(auth).unwrap(),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let status = StatusCode::from_u16(response.status().as_u16()).unwrap();
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice(b).ok())
                .unwrap_or(Value::Null);
            Err((status, body))
        }
        Err(other) => panic!("the handshake failed: {other}"),
    }
}
