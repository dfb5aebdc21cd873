//! The events outbox and subscriptions in the database.
//!
//! Events are numbered by `event_sequence`, a single row that every writer of events updates in
//! its own transaction: PostgreSQL holds that row lock until commit, and SQLite has one writer,
//! so sequence numbers are handed out in commit order and a reader that has seen event N never
//! later finds an N-1 it missed. See [`Outbox`].

use futures_util::future::BoxFuture;
use jiff::Timestamp;

use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::store::{Backend, Store};
use crate::{read, write_tx};

/// An event for the outbox, written in the transaction that makes it true.
pub struct NewEvent<'a> {
    pub event_id: &'a str,
    /// The provider it concerns; `None`: only the operator sees it.
    pub provider_id: Option<i64>,
    pub payload: &'a str,
}

/// Appending to the outbox, on either backend's connection.
pub trait Outbox {
    /// Numbers `event`, stores it and returns its number; run inside the transaction that
    /// writes what the event reports.
    fn append<'c>(&'c mut self, event: &'c NewEvent<'c>)
    -> BoxFuture<'c, Result<i64, sqlx::Error>>;
}

impl Outbox for sqlx::SqliteConnection {
    /// Two statements: SQLite has one writer, so nothing waits on the sequence row.
    fn append<'c>(
        &'c mut self,
        event: &'c NewEvent<'c>,
    ) -> BoxFuture<'c, Result<i64, sqlx::Error>> {
        Box::pin(async move {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE event_sequence SET last = last + 1 WHERE id = 1 RETURNING last",
            )
            .fetch_one(&mut *self)
            .await?;
            sqlx::query(
                "INSERT INTO events (seq, event_id, provider_id, payload, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(seq)
            .bind(event.event_id)
            .bind(event.provider_id)
            .bind(event.payload)
            .bind(to_micros(Timestamp::now()))
            .execute(&mut *self)
            .await?;
            Ok(seq)
        })
    }
}

impl Outbox for sqlx::PgConnection {
    /// One statement numbers the event, stores it and queues the notification to the other
    /// instances (PostgreSQL sends it at commit): every writer of events waits for the
    /// sequence row's lock, held until commit, so the less that happens under it the better.
    fn append<'c>(
        &'c mut self,
        event: &'c NewEvent<'c>,
    ) -> BoxFuture<'c, Result<i64, sqlx::Error>> {
        Box::pin(async move {
            sqlx::query_scalar(
                "WITH s AS (UPDATE event_sequence SET last = last + 1 WHERE id = 1 RETURNING last), \
                 e AS (INSERT INTO events (seq, event_id, provider_id, payload, created_at) \
                       SELECT last, $1::text, $2::bigint, $3::text, $4::bigint FROM s RETURNING seq) \
                 SELECT e.seq FROM e, LATERAL (SELECT pg_notify($5, e.seq::text)) AS notified",
            )
            .bind(event.event_id)
            .bind(event.provider_id)
            .bind(event.payload)
            .bind(to_micros(Timestamp::now()))
            .bind(crate::events::bus::CHANNEL)
            .fetch_one(&mut *self)
            .await
        })
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct StoredEvent {
    pub seq: i64,
    pub event_id: String,
    pub payload: String,
}

/// Events after `cursor`, oldest first: all of them for `provider` `None` (the operator),
/// else that provider's.
pub async fn fetch_after(
    store: &Store,
    cursor: i64,
    provider: Option<i64>,
    limit: i64,
) -> Result<Vec<StoredEvent>, AppError> {
    // Two statements rather than one with `($2 IS NULL OR provider_id = $2)`: PostgreSQL's
    // generic plan for that cannot use the (provider_id, seq) index.
    macro_rules! fetch {
        ($db:expr) => {
            match provider {
                Some(provider) => {
                    sqlx::query_as(
                        "SELECT seq, event_id, payload FROM events \
                         WHERE provider_id = $2 AND seq > $1 ORDER BY seq LIMIT $3",
                    )
                    .bind(cursor)
                    .bind(provider)
                    .bind(limit)
                    .fetch_all($db)
                    .await?
                }
                None => sqlx::query_as(
                    "SELECT seq, event_id, payload FROM events WHERE seq > $1 ORDER BY seq LIMIT $2",
                )
                .bind(cursor)
                .bind(limit)
                .fetch_all($db)
                .await?,
            }
        };
    }
    // On PostgreSQL, from the feeds' own connections.
    Ok(match store.backend() {
        Backend::Sqlite(sqlite) => fetch!(&sqlite.reader),
        Backend::Postgres(pool) => fetch!(store.feed_pool().unwrap_or(pool)),
    })
}

/// The sequence number of an event the caller may see.
pub async fn seq_of(
    store: &Store,
    event_id: &str,
    provider: Option<i64>,
) -> Result<Option<i64>, AppError> {
    // No EventID has a NUL, and PostgreSQL cannot even compare text with one.
    if event_id.contains('\0') {
        return Ok(None);
    }
    Ok(read!(store, |db| {
        sqlx::query_scalar(
            "SELECT seq FROM events WHERE event_id = $1 AND ($2 IS NULL OR provider_id = $2)",
        )
        .bind(event_id)
        .bind(provider)
        .fetch_optional(db)
        .await?
    }))
}

/// Events at or below this number were removed by retention.
pub async fn pruned_through(store: &Store) -> Result<i64, AppError> {
    Ok(read!(store, |db| {
        sqlx::query_scalar("SELECT pruned_through FROM event_retention WHERE id = 1")
            .fetch_one(db)
            .await?
    }))
}

/// The highest sequence number handed out so far.
pub async fn latest(store: &Store) -> Result<i64, AppError> {
    Ok(read!(store, |db| {
        sqlx::query_scalar("SELECT last FROM event_sequence WHERE id = 1")
            .fetch_one(db)
            .await?
    }))
}

/// The stored position of a subscription, created at `initial` if it is new. Returns the
/// position and whether the subscription is new.
pub async fn subscription(
    store: &Store,
    principal_id: i64,
    name: &str,
    initial: i64,
) -> Result<(i64, bool), AppError> {
    let now = to_micros(Timestamp::now());
    Ok(write_tx!(store, |tx| {
        let inserted = sqlx::query(
            "INSERT INTO subscriptions (principal_id, name, position, updated_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (principal_id, name) DO NOTHING",
        )
        .bind(principal_id)
        .bind(name)
        .bind(initial)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let position: i64 = sqlx::query_scalar(
            "SELECT position FROM subscriptions WHERE principal_id = $1 AND name = $2",
        )
        .bind(principal_id)
        .bind(name)
        .fetch_one(&mut *tx)
        .await?;
        (position, inserted == 1)
    }))
}

/// Moves a subscription forward (never back) to `position`.
pub async fn save_position(
    store: &Store,
    principal_id: i64,
    name: &str,
    position: i64,
) -> Result<(), AppError> {
    let now = to_micros(Timestamp::now());
    write_tx!(store, |tx| {
        sqlx::query(
            "UPDATE subscriptions SET position = $3, updated_at = $4 \
             WHERE principal_id = $1 AND name = $2 AND position < $3",
        )
        .bind(principal_id)
        .bind(name)
        .bind(position)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    });
    Ok(())
}

/// Sets a subscription to `position`, backwards too (a subscriber that asked to start over).
pub async fn reset_position(
    store: &Store,
    principal_id: i64,
    name: &str,
    position: i64,
) -> Result<(), AppError> {
    let now = to_micros(Timestamp::now());
    write_tx!(store, |tx| {
        sqlx::query("UPDATE subscriptions SET position = $3, updated_at = $4 WHERE principal_id = $1 AND name = $2")
            .bind(principal_id)
            .bind(name)
            .bind(position)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    });
    Ok(())
}

/// Removes events created before `before`; returns how many.
pub async fn prune(store: &Store, before: Timestamp) -> Result<u64, AppError> {
    let cutoff = to_micros(before);
    Ok(write_tx!(store, |tx| {
        let through: Option<i64> =
            sqlx::query_scalar("SELECT MAX(seq) FROM events WHERE created_at < $1")
                .bind(cutoff)
                .fetch_one(&mut *tx)
                .await?;
        match through {
            None => 0,
            Some(through) => {
                let removed = sqlx::query("DELETE FROM events WHERE seq <= $1")
                    .bind(through)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                sqlx::query("UPDATE event_retention SET pruned_through = $1 WHERE id = 1 AND pruned_through < $1")
                    .bind(through)
                    .execute(&mut *tx)
                    .await?;
                removed
            }
        }
    }))
}
