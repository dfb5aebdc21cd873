//! Storage: one narrow interface, two backends. SQLite (the embedded default) or PostgreSQL is
//! chosen at run time from the database URL's scheme; each backend owns its migrations. SQL that
//! is the same for both is written once, in the capability that needs it, and run on whichever
//! backend is configured through [`read!`](crate::read) and [`write_tx!`](crate::write_tx).
//!
//! Instants are stored as BIGINT unix microseconds (UTC) in both backends.

pub mod batch;
pub mod cache;
mod errors;
pub mod group;
pub mod inline;
pub mod lender;
pub mod lookup;

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};

use crate::http::AppError;

pub use errors::{
    describe_unique_violation, from_rusqlite, is_rusqlite_unavailable, is_unavailable,
    is_unstorable_text,
};

/// Which database engine a [`Store`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Sqlite,
    Postgres,
}

/// SQLite is written by one connection (so writers never race for the lock) and read by a pool.
pub struct SqliteDb {
    /// The one connection that writes (SQLite allows one writer at a time).
    pub writer: lender::Lender,
    pub reader: lender::Lender,
    /// Connections for the hottest point lookups, run on the caller's thread (see [`inline`]).
    pub inline: inline::InlineReader,
    /// Concurrent writes of the hot paths, committed together.
    pub group: group::GroupCommit,
}

pub enum Backend {
    Sqlite(SqliteDb),
    Postgres(PgPool),
}

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Store {
    backend: Arc<Backend>,
    caches: Arc<Caches>,
    /// PostgreSQL: a few connections of their own for the event feeds, so a subscriber never
    /// waits for a connection behind a burst of writes.
    feed: Option<PgPool>,
    /// PostgreSQL: one [`batch::Batcher`] per kind of job, started when first used.
    batchers: Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
    /// This instance's name in the event notifications it sends (see [`Store::origin`]).
    origin: Arc<str>,
    /// PostgreSQL: the write transactions this process has committed (see
    /// [`Store::writes_committed`]).
    committed: Arc<AtomicU64>,
    /// Group commit's batches and the writes in them, both backends.
    batches: BatchCounts,
}

/// How well group commit gathers: batches committed, the writes they held, and how long each
/// took the database, from its first statement until its commit returned (`/metrics`).
#[derive(Clone)]
pub struct BatchCounts {
    pub batches: prometheus_client::metrics::counter::Counter,
    pub jobs: prometheus_client::metrics::counter::Counter,
    pub seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Default for BatchCounts {
    fn default() -> Self {
        Self {
            batches: Default::default(),
            jobs: Default::default(),
            // 50 µs to about 1.6 s: an fsync is a few hundred microseconds on a good disk
            seconds: prometheus_client::metrics::histogram::Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.00005, 2.0, 16),
            ),
        }
    }
}

impl BatchCounts {
    /// A batch of `jobs` writes has committed after `took` on the database.
    pub fn committed(&self, jobs: usize, took: std::time::Duration) {
        self.batches.inc();
        self.jobs.inc_by(jobs as u64);
        self.seconds.observe(took.as_secs_f64());
    }
}

/// In-memory copies of what almost every request reads (see [`cache`]); each capability's
/// store module fills and clears its own.
pub struct Caches {
    /// A token's hash → what authenticating it found.
    pub tokens: cache::TtlMap<String, crate::principals::store::Authenticated>,
    /// Lots by how they were asked for.
    pub lots: cache::TtlMap<crate::lots::store::LotKey, Vec<crate::lots::Lot>>,
    /// Every current right by plate, for checks (SQLite; see [`crate::rights::memory`]).
    pub rights: Arc<crate::rights::memory::RightsMemory>,
    /// A provider's id → how many tickets it had through which ticket id, and its first
    /// ticket's id (SQLite; see [`crate::tickets::store::counts`]).
    pub ticket_counts: cache::TtlMap<i64, crate::tickets::store::Counted>,
}

impl Caches {
    fn new() -> Self {
        Self {
            tokens: cache::TtlMap::new(cache::FRESH_FOR),
            lots: cache::TtlMap::new(cache::FRESH_FOR),
            rights: Arc::default(),
            ticket_counts: cache::TtlMap::new(crate::tickets::store::COUNT_FRESH_FOR),
        }
    }
}

/// Connection settings that are not part of the URL.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Most connections to PostgreSQL (or SQLite readers) at once.
    pub max_connections: u32,
    /// How long a request waits for a connection before failing with 503.
    pub acquire_timeout: Duration,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://...`) and runs the backend's migrations.
    pub async fn open(url: &str, options: &StoreOptions) -> anyhow::Result<Self> {
        let store = Self::connect(url, options).await?;
        store.migrate().await?;
        Ok(store)
    }

    pub async fn connect(url: &str, options: &StoreOptions) -> anyhow::Result<Self> {
        let batches = BatchCounts::default();
        let (backend, feed) = match backend_kind(url)? {
            BackendKind::Sqlite => (
                Backend::Sqlite(connect_sqlite(url, options, batches.clone()).await?),
                None,
            ),
            BackendKind::Postgres => {
                let unreachable =
                    || format!("could not connect to PostgreSQL at {}", redact_url(url));
                let connect = PgConnectOptions::from_str(url)
                    .context("the PostgreSQL database URL is not valid")?
                    .application_name("parkhub");
                // A connection is not pinged before it is lent (a round trip per query): one
                // that broke fails its query with a 503, and the pool replaces it.
                let pool = PgPoolOptions::new()
                    .max_connections(options.max_connections)
                    .acquire_timeout(options.acquire_timeout)
                    .test_before_acquire(false)
                    .connect_with(connect.clone())
                    .await
                    .with_context(unreachable)?;
                // Opened now, not on the first subscriber's first read: a new PostgreSQL
                // connection can take a few hundred milliseconds on a busy machine, and the
                // events committed meanwhile would wait for it.
                let feed = PgPoolOptions::new()
                    .max_connections(options.max_connections.clamp(1, 4))
                    .min_connections(1)
                    .acquire_timeout(options.acquire_timeout)
                    .connect_with(connect.application_name("parkhub-feed"))
                    .await
                    .with_context(unreachable)?;
                (Backend::Postgres(pool), Some(feed))
            }
        };
        Ok(Self {
            backend: Arc::new(backend),
            caches: Arc::new(Caches::new()),
            feed,
            batchers: Arc::default(),
            origin: uuid::Uuid::new_v4().simple().to_string().into(),
            committed: Arc::default(),
            batches,
        })
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self.backend() {
            Backend::Sqlite(db) => {
                let mut conn = db.writer.acquire().await?;
                sqlx::migrate!("./migrations/sqlite")
                    .run(&mut *conn)
                    .await
                    .context("running the SQLite migrations")?
            }
            Backend::Postgres(pool) => sqlx::migrate!("./migrations/postgres")
                .run(pool)
                .await
                .context("running the PostgreSQL migrations")?,
        }
        Ok(())
    }

    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// A name for this instance, unique to each opened store: event notifications carry it,
    /// so an instance can tell the ones it sent itself (whose events it already has).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// How many write transactions this process has committed so far (the check log's aside):
    /// what it committed before this number last changed is visible to a read started after
    /// it was read, for the count goes up after a commit, before its caller answers. A reader
    /// that keeps copies (the rights memory) compares two counts to know whether this process
    /// wrote in between.
    pub fn writes_committed(&self) -> u64 {
        match self.backend() {
            Backend::Sqlite(db) => db.writer.loans_ended(),
            Backend::Postgres(_) => self.committed.load(Ordering::Acquire),
        }
    }

    /// Counts a write transaction committed on PostgreSQL (see [`Store::writes_committed`]);
    /// [`write_tx!`](crate::write_tx) and the batchers call it.
    pub fn note_commit(&self) {
        self.committed.fetch_add(1, Ordering::AcqRel);
    }

    /// Group commit's batches so far (see [`BatchCounts`]).
    pub fn batch_counts(&self) -> &BatchCounts {
        &self.batches
    }

    /// The connections for event feeds on PostgreSQL.
    pub fn feed_pool(&self) -> Option<&PgPool> {
        self.feed.as_ref()
    }

    /// Runs `job` with the other writes waiting now: in SQLite's group commit, or in the next
    /// batch of PostgreSQL's batcher of its kind. Answers once its batch has committed.
    pub async fn submit<J>(&self, job: J) -> Result<<J as group::Job>::Output, AppError>
    where
        J: group::Job + batch::Batched<Output = <J as group::Job>::Output>,
    {
        match self.backend() {
            Backend::Sqlite(sqlite) => sqlite.group.submit(job).await,
            Backend::Postgres(_) => match self.batcher::<J>() {
                Some(batcher) => batcher.submit(job).await,
                None => Err(AppError::internal(anyhow::anyhow!(
                    "no batcher for {}",
                    std::any::type_name::<J>()
                ))),
            },
        }
    }

    /// PostgreSQL: the batcher that gathers concurrent jobs of kind `J` (None on SQLite, whose
    /// writes all go through [`SqliteDb::group`]).
    pub fn batcher<J: batch::Batched>(&self) -> Option<Arc<batch::Batcher<J>>> {
        let Backend::Postgres(pool) = self.backend() else {
            return None;
        };
        let mut batchers = self
            .batchers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        batchers
            .entry(TypeId::of::<J>())
            .or_insert_with(|| {
                Arc::new(batch::Batcher::<J>::spawn(
                    pool.clone(),
                    batch::LANES,
                    self.committed.clone(),
                    self.batches.clone(),
                ))
            })
            .clone()
            .downcast::<batch::Batcher<J>>()
            .ok()
    }

    /// SQLite: runs `read` on one of the inline readers' connections on a blocking thread. For
    /// reads of many rows, which through sqlx cross from its worker thread to the task one row
    /// at a time; too long to run on the runtime's own thread as the inline lookups do.
    pub async fn sqlite_read_blocking<T: Send + 'static>(
        &self,
        read: impl FnOnce(&rusqlite::Connection) -> Result<T, rusqlite::Error> + Send + 'static,
    ) -> Result<T, AppError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || match store.backend() {
            Backend::Sqlite(db) => db.inline.read(read),
            Backend::Postgres(_) => Err(AppError::internal(anyhow::anyhow!(
                "a SQLite read asked of PostgreSQL"
            ))),
        })
        .await
        .map_err(|err| AppError::internal(anyhow::anyhow!("a read did not finish: {err}")))?
    }

    pub fn caches(&self) -> &Caches {
        &self.caches
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend() {
            Backend::Sqlite(_) => BackendKind::Sqlite,
            Backend::Postgres(_) => BackendKind::Postgres,
        }
    }

    /// Is the database reachable and answering?
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        crate::read!(self, |db| {
            sqlx::query("SELECT 1").execute(db).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        match self.backend() {
            Backend::Sqlite(db) => {
                db.inline.close();
                db.reader.close().await;
                db.writer.close().await;
            }
            Backend::Postgres(pool) => {
                if let Some(feed) = &self.feed {
                    feed.close().await;
                }
                pool.close().await
            }
        }
    }
}

/// `sqlite:` or `postgres:`/`postgresql:`; anything else is a configuration error.
pub fn backend_kind(url: &str) -> anyhow::Result<BackendKind> {
    let scheme = url.split(':').next().unwrap_or("").to_ascii_lowercase();
    match scheme.as_str() {
        "sqlite" => Ok(BackendKind::Sqlite),
        "postgres" | "postgresql" => Ok(BackendKind::Postgres),
        _ => anyhow::bail!(
            "unsupported database URL scheme '{scheme}': use sqlite://FILE or postgres://USER@HOST/DB"
        ),
    }
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The same server URL with another database name (query parameters kept): for tools that
/// create a database of their own on a server they were given.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| i + after_scheme);
    match query {
        Some(query) => format!("{}/{name}?{query}", &base[..host_end]),
        None => format!("{}/{name}", &base[..host_end]),
    }
}

/// How long an SQLite connection waits for a lock before it fails with 503.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect_sqlite(
    url: &str,
    options: &StoreOptions,
    batches: BatchCounts,
) -> anyhow::Result<SqliteDb> {
    let connect = SqliteConnectOptions::from_str(url)
        .context("the SQLite database URL is not valid")?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Full)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let writer = lender::Lender::open(
        connect.clone(),
        1,
        options.acquire_timeout.max(Duration::from_secs(30)),
    )
    .await
    .with_context(|| format!("could not open the SQLite database {url}"))?;
    let reader = lender::Lender::open(
        connect.clone().create_if_missing(false),
        options.max_connections.clamp(1, 8) as usize,
        options.acquire_timeout,
    )
    .await
    .with_context(|| format!("could not open the SQLite database {url} for reading"))?;
    let inline = inline::InlineReader::open(connect.get_filename().to_owned(), BUSY_TIMEOUT)
        .with_context(|| format!("could not open the SQLite database {url} for reading"))?;
    let group = group::GroupCommit::spawn(
        writer.clone(),
        group::WriterFile {
            path: connect.get_filename().to_owned(),
            busy_timeout: BUSY_TIMEOUT,
        },
        batches,
    );
    Ok(SqliteDb {
        writer,
        reader,
        inline,
        group,
    })
}

/// Runs `$body` with `$db` bound to an executor for reads on the configured backend. The body
/// is written once and compiled for each backend.
#[macro_export]
macro_rules! read {
    ($store:expr, |$db:ident| $body:expr) => {
        match $store.backend() {
            $crate::store::Backend::Sqlite(sqlite) => {
                let $db = &sqlite.reader;
                $body
            }
            $crate::store::Backend::Postgres(pool) => {
                let $db = pool;
                $body
            }
        }
    };
}

/// A value bound to a statement whose filters are chosen at run time (see [`bind_all!`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

/// Binds each [`Param`] of `$params` to `$query`, in order.
#[macro_export]
macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match *param {
                $crate::store::Param::Text(text) => query.bind(text),
                $crate::store::Param::Int(int) => query.bind(int),
            };
        }
        query
    }};
}

/// Runs `$body` in one write transaction, with `$tx` bound to it; commits when the body
/// finishes, rolls back when it returns early with `?`. On SQLite the transaction takes the
/// write lock up front (`BEGIN IMMEDIATE`).
#[macro_export]
macro_rules! write_tx {
    ($store:expr, |$tx:ident| $body:expr) => {
        match $store.backend() {
            $crate::store::Backend::Sqlite(sqlite) => {
                let mut conn = sqlite.writer.acquire().await?;
                let mut $tx = sqlx::Connection::begin_with(&mut *conn, "BEGIN IMMEDIATE").await?;
                let out = $body;
                if let Err(err) = $tx.commit().await {
                    // SQLite may have rolled back by itself (a full disk): a fresh connection
                    // replaces this one, whose bookkeeping would refuse every later BEGIN.
                    conn.close_on_drop();
                    return Err(err.into());
                }
                out
            }
            $crate::store::Backend::Postgres(pool) => {
                let mut $tx = pool.begin().await?;
                let out = $body;
                $tx.commit().await?;
                $store.note_commit();
                out
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheme_selects_the_backend() {
        assert_eq!(
            backend_kind("sqlite://parkhub.db").unwrap(),
            BackendKind::Sqlite
        );
        assert_eq!(
            backend_kind("postgres://postgres@127.0.0.1/x").unwrap(),
            BackendKind::Postgres
        );
        assert_eq!(
            backend_kind("postgresql://h/x").unwrap(),
            BackendKind::Postgres
        );
        assert!(backend_kind("mysql://h/x").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/parkhub"),
            "postgres://app:***@db:5432/parkhub"
        );
        assert_eq!(
            redact_url("postgres://postgres@127.0.0.1/x"),
            "postgres://postgres@127.0.0.1/x"
        );
    }

    #[test]
    fn another_database_on_the_same_server() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "b"),
            "postgres://postgres@127.0.0.1:5432/b"
        );
        assert_eq!(
            with_database("postgres://u:p@db/app?sslmode=disable", "b"),
            "postgres://u:p@db/b?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://db:5432", "b"),
            "postgres://db:5432/b"
        );
    }
}
