//! The events outbox and subscriptions in the database.
//!
//! Events are numbered by `event_sequence`, a single row that every writer of events updates in
//! its own transaction: PostgreSQL holds that row lock until commit, and SQLite has one writer,
//! so sequence numbers are handed out in commit order and a reader that has seen event N never
//! later finds an N-1 it missed. See [`append_sqlite`] and [`append_postgres`].

use jiff::Timestamp;

use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::store::{Backend, Store};
use crate::{read, write_tx};

/// An event for the outbox, written in the transaction that makes it true.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    pub event_id: String,
    /// The provider it concerns; `None`: only the operator sees it.
    pub provider_id: Option<i64>,
    pub payload: String,
}

/// Numbers `events` one after another and stores them, inside the transaction that writes what
/// they report, on the group commit's SQLite connection; returns their numbers, in order. SQLite
/// has one writer, so nothing waits on the sequence row.
pub fn append_sqlite(
    conn: &rusqlite::Connection,
    events: &[&QueuedEvent],
) -> Result<Vec<i64>, rusqlite::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let count = events.len() as i64;
    let last: i64 = conn
        .prepare_cached("UPDATE event_sequence SET last = last + ?1 WHERE id = 1 RETURNING last")?
        .query_row([count], |row| row.get(0))?;
    let mut insert = conn.prepare_cached(
        "INSERT INTO events (seq, event_id, provider_id, payload, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let now = to_micros(Timestamp::now());
    let mut numbers = Vec::with_capacity(events.len());
    for (seq, event) in (last - count + 1..).zip(events) {
        insert.execute(rusqlite::params![
            seq,
            event.event_id,
            event.provider_id,
            event.payload,
            now
        ])?;
        numbers.push(seq);
    }
    Ok(numbers)
}

/// The same on PostgreSQL, in one statement that also queues the notification to the other
/// instances (PostgreSQL sends them at commit, each as `origin:seq`). Every writer of events
/// waits for the sequence row's lock, held until commit, so a batch appends its events last,
/// all at once.
pub async fn append_postgres(
    tx: &mut sqlx::PgConnection,
    events: &[&QueuedEvent],
    origin: &str,
) -> Result<Vec<i64>, sqlx::Error> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let mut numbers: Vec<i64> = sqlx::query_scalar(
        "WITH s AS (UPDATE event_sequence SET last = last + cardinality($1::text[]) WHERE id = 1 \
                    RETURNING last), \
         e AS (INSERT INTO events (seq, event_id, provider_id, payload, created_at) \
               SELECT s.last - cardinality($1::text[]) + r.n, r.event_id, r.provider_id, \
                      r.payload, $4::bigint \
                 FROM s, UNNEST($1::text[], $2::bigint[], $3::text[]) \
                      WITH ORDINALITY AS r (event_id, provider_id, payload, n) \
               RETURNING seq) \
         SELECT e.seq FROM e, LATERAL (SELECT pg_notify($5, $6 || ':' || e.seq::text)) AS notified",
    )
    .bind(
        events
            .iter()
            .map(|e| e.event_id.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(events.iter().map(|e| e.provider_id).collect::<Vec<_>>())
    .bind(
        events
            .iter()
            .map(|e| e.payload.as_str())
            .collect::<Vec<_>>(),
    )
    .bind(to_micros(Timestamp::now()))
    .bind(crate::events::bus::CHANNEL)
    .bind(origin)
    .fetch_all(&mut *tx)
    .await?;
    // Numbered in the order given: the k-th event has the k-th number.
    numbers.sort_unstable();
    if numbers.len() != events.len() {
        return Err(sqlx::Error::Protocol(format!(
            "{} events appended as {} rows",
            events.len(),
            numbers.len()
        )));
    }
    Ok(numbers)
}

#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub payload: String,
}

/// What a subscriber reads from the outbox: its next events, and the number up to which it has
/// seen everything (when `events` is not full, every event up to the latest committed one).
#[derive(Debug)]
pub struct Fetched {
    pub events: Vec<StoredEvent>,
    pub through: i64,
}

/// Events after `cursor`, oldest first, at most `limit`: all of them for `provider` `None` (the
/// operator), else that provider's.
pub async fn fetch_after(
    store: &Store,
    cursor: i64,
    provider: Option<i64>,
    limit: i64,
) -> Result<Fetched, AppError> {
    // The last number handed out comes from the same statement, so the same snapshot: every
    // event up to it is committed and visible (numbers are handed out in commit order).
    // Two statements rather than one with `($2 IS NULL OR provider_id = $2)`: PostgreSQL's
    // generic plan for that cannot use the (provider_id, seq) index.
    macro_rules! fetch {
        ($db:expr) => {
            match provider {
                Some(provider) => {
                    sqlx::query_as(
                        "SELECT seq, payload FROM (SELECT seq, payload FROM events \
                         WHERE provider_id = $2 AND seq > $1 ORDER BY seq LIMIT $3) AS mine \
                         UNION ALL SELECT last, NULL FROM event_sequence WHERE id = 1",
                    )
                    .bind(cursor)
                    .bind(provider)
                    .bind(limit)
                    .fetch_all($db)
                    .await?
                }
                None => sqlx::query_as(
                    "SELECT seq, payload FROM (SELECT seq, payload FROM events \
                     WHERE seq > $1 ORDER BY seq LIMIT $2) AS mine \
                     UNION ALL SELECT last, NULL FROM event_sequence WHERE id = 1",
                )
                .bind(cursor)
                .bind(limit)
                .fetch_all($db)
                .await?,
            }
        };
    }
    // On PostgreSQL, from the feeds' own connections.
    let rows: Vec<(i64, Option<String>)> = match store.backend() {
        Backend::Sqlite(sqlite) => fetch!(&sqlite.reader),
        Backend::Postgres(pool) => fetch!(store.feed_pool().unwrap_or(pool)),
    };
    Ok(fetched(rows, cursor, limit))
}

/// Splits the rows of [`fetch_after`]: events have a payload, the last number handed out has
/// none.
fn fetched(rows: Vec<(i64, Option<String>)>, cursor: i64, limit: i64) -> Fetched {
    let mut events = Vec::with_capacity(rows.len());
    let mut latest = cursor;
    for (seq, payload) in rows {
        match payload {
            Some(payload) => events.push(StoredEvent { seq, payload }),
            None => latest = seq,
        }
    }
    events.sort_by_key(|e| e.seq);
    let last_sent = events.last().map_or(cursor, |e| e.seq);
    let through = if events.len() as i64 >= limit {
        last_sent
    } else {
        latest.max(last_sent)
    };
    Fetched { events, through }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(fetched: &Fetched) -> Vec<i64> {
        fetched.events.iter().map(|e| e.seq).collect()
    }

    #[test]
    fn a_short_batch_has_seen_everything_up_to_the_last_number() {
        let rows = vec![(9, None), (5, Some("e5".into())), (4, Some("e4".into()))];
        let fetched = fetched(rows, 2, 500);
        assert_eq!(seqs(&fetched), vec![4, 5]);
        assert_eq!(fetched.events[0].payload, "e4");
        assert_eq!(fetched.through, 9);
    }

    #[test]
    fn nothing_new_still_moves_past_other_subscribers_events() {
        assert_eq!(fetched(vec![(40, None)], 12, 500).through, 40);
        assert_eq!(fetched(vec![], 12, 500).through, 12);
    }

    #[test]
    fn a_full_batch_has_seen_only_what_it_returned() {
        let rows = vec![(3, Some("a".into())), (4, Some("b".into())), (90, None)];
        let fetched = fetched(rows, 2, 2);
        assert_eq!(seqs(&fetched), vec![3, 4]);
        assert_eq!(fetched.through, 4);
    }
}
