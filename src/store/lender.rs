//! SQLite connections handed out without sqlx's pool: the readers, and the one writer.
//!
//! sqlx's pool pings a connection when it hands it out and again when it takes it back. On
//! SQLite a ping is a round trip to the connection's worker thread, so every query cost three
//! hand-overs between threads instead of one, and thread switching was half the service's CPU
//! time (BENCHMARKS.md); the writer could not start a batch until the last one's release ping
//! was done. A file on the local disk needs no liveness check: these connections are opened
//! when first needed and reused; one that fails with an I/O error (or that its user gives up
//! on, [`Lent::close_on_drop`]) is closed, and a fresh one is opened by the next caller.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{StreamExt, TryStreamExt};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteQueryResult, SqliteRow, SqliteStatement,
    SqliteTypeInfo,
};
use sqlx::{ConnectOptions, Connection, Either, Execute, Executor, Sqlite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Connections to one SQLite file, at most a fixed number lent at once; cheap to clone.
#[derive(Clone)]
pub struct Lender {
    inner: Arc<Inner>,
}

struct Inner {
    options: SqliteConnectOptions,
    idle: Mutex<Vec<SqliteConnection>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    /// Loans ended so far (see [`Lender::loans_ended`]).
    ended: AtomicU64,
}

impl fmt::Debug for Lender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lender")
            .field("available", &self.inner.permits.available_permits())
            .finish()
    }
}

impl Lender {
    /// Opens one connection now (so a bad path fails at start-up) and at most `max` in all.
    pub async fn open(
        options: SqliteConnectOptions,
        max: usize,
        acquire_timeout: Duration,
    ) -> Result<Self, sqlx::Error> {
        let first = options.connect().await?;
        Ok(Self {
            inner: Arc::new(Inner {
                options,
                idle: Mutex::new(vec![first]),
                permits: Arc::new(Semaphore::new(max.max(1))),
                acquire_timeout,
                ended: AtomicU64::new(0),
            }),
        })
    }

    /// A connection of its own for the caller, waiting at most the acquire timeout.
    pub async fn acquire(&self) -> Result<Lent, sqlx::Error> {
        let permit = tokio::time::timeout(
            self.inner.acquire_timeout,
            self.inner.permits.clone().acquire_owned(),
        )
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
        .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.inner.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match idle {
            Some(conn) => conn,
            None => self.inner.options.connect().await?,
        };
        Ok(Lent {
            conn: Some(conn),
            sound: true,
            inner: self.inner.clone(),
            _permit: permit,
        })
    }

    /// How many loans have ended. For the writer: whatever was committed on it before this
    /// number last changed is visible to a read started after it was read (a loan ends after
    /// its commit, and before the caller can answer its client).
    pub fn loans_ended(&self) -> u64 {
        self.inner.ended.load(Ordering::Acquire)
    }

    /// Refuses new callers and closes the idle connections.
    pub async fn close(&self) {
        self.inner.permits.close();
        let idle: Vec<SqliteConnection> = match self.inner.idle.lock() {
            Ok(mut idle) => idle.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for conn in idle {
            let _ = conn.close().await;
        }
    }
}

/// A connection lent out; it goes back when dropped, unless it failed at the I/O level or
/// was given up on.
pub struct Lent {
    /// Taken only when the loan ends (dropped).
    conn: Option<SqliteConnection>,
    /// Cleared when the connection proves unusable: it is closed rather than taken back.
    sound: bool,
    inner: Arc<Inner>,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for Lent {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn
            .as_ref()
            .expect("a lent connection is there until the loan ends")
    }
}

impl std::ops::DerefMut for Lent {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a lent connection is there until the loan ends")
    }
}

impl Lent {
    /// Closes the connection instead of taking it back: for one whose state is in doubt
    /// (SQLite may have rolled a failed commit back by itself, while sqlx still counts the
    /// transaction and would refuse every later BEGIN).
    pub fn close_on_drop(&mut self) {
        self.sound = false;
    }

    fn conn(&mut self) -> Result<&mut SqliteConnection, sqlx::Error> {
        self.conn.as_mut().ok_or(sqlx::Error::PoolClosed)
    }

    /// Forgets the connection if `result` says it is unusable.
    fn keep_if_sound<T>(&mut self, result: &Result<T, sqlx::Error>) {
        if let Err(sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed | sqlx::Error::Protocol(_)) =
            result
        {
            self.sound = false;
        }
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.inner.ended.fetch_add(1, Ordering::Release);
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !self.sound || self.inner.permits.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.push(conn);
        }
    }
}

impl<'p> Executor<'p> for &'_ Lender {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Sqlite>,
    {
        let lender = self.clone();
        futures_util::stream::once(async move {
            let mut lent = lender.acquire().await?;
            let items: Result<Vec<_>, sqlx::Error> =
                lent.conn()?.fetch_many(query).try_collect().await;
            lent.keep_if_sound(&items);
            items
        })
        .map_ok(|items| futures_util::stream::iter(items.into_iter().map(Ok)))
        .try_flatten()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        E: 'q + Execute<'q, Sqlite>,
    {
        let lender = self.clone();
        Box::pin(async move {
            let mut lent = lender.acquire().await?;
            let row = lent.conn()?.fetch_optional(query).await;
            lent.keep_if_sound(&row);
            row
        })
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement<'q>, sqlx::Error>> {
        let lender = self.clone();
        Box::pin(async move {
            let mut lent = lender.acquire().await?;
            lent.conn()?.prepare_with(sql, parameters).await
        })
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Sqlite>, sqlx::Error>> {
        let lender = self.clone();
        Box::pin(async move {
            let mut lent = lender.acquire().await?;
            lent.conn()?.describe(sql).await
        })
    }
}
