//! The log of parking-right checks: who asked about which plate, where, for when, and the answer.

use jiff::Timestamp;
use serde::Serialize;

use crate::domain::time::{from_micros, to_micros};
use crate::http::AppError;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::read;
use crate::store::group::Job;
use crate::store::{Backend, Store, from_rusqlite};

/// One check to record.
pub struct Check<'a> {
    pub plate: &'a str,
    pub parking_lot_id: Option<i64>,
    pub zone_code: Option<i64>,
    pub at: Timestamp,
    pub allowed: bool,
    pub grace: bool,
    pub kinds: String,
}

/// Checks to record, owned so they can wait in the writer's queue.
struct Record {
    principal_id: i64,
    rows: Vec<Row>,
    now: i64,
}

type Row = (String, Option<i64>, Option<i64>, i64, bool, bool, String);

/// The check log's columns, in the order both writers bind them.
macro_rules! columns {
    () => {
        "principal_id, license_norm, parking_lot_id, zone_code, at, allowed, grace, kinds, \
         checked_at"
    };
}

/// Any number of checks in one INSERT on PostgreSQL, each column bound as one array: one
/// prepared statement and nine parameters whatever the batch (SQLite writes one row per
/// statement, see [`SqliteChecks`]).
const INSERT_POSTGRES: &str = concat!(
    "INSERT INTO parking_right_checks (",
    columns!(),
    ") SELECT * FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::BIGINT[], \
                            $5::BIGINT[], $6::BOOLEAN[], $7::BOOLEAN[], $8::TEXT[], $9::BIGINT[])"
);

/// The check log's writer: checks are handed to a task of their own, which gathers them for
/// [`LINGER`] and writes them in one transaction, so an answer never waits for the disk and a
/// busy second costs a few commits. A check is in the database at most about a tenth of a
/// second after its answer; [`CheckLog::sync`] writes at once and waits for it, so this
/// instance's own listing always shows every check it answered. A crash can lose the checks of
/// that last moment, never an answer or any other write.
#[derive(Clone)]
pub struct CheckLog {
    queue: mpsc::Sender<Message>,
}

enum Message {
    Record(Record),
    /// Answered once everything queued before it is written.
    Sync(oneshot::Sender<()>),
}

/// Checks waiting at most (beyond that, answers wait for room: nothing is dropped).
const QUEUE: usize = 8192;
/// The most rows in one transaction.
const MAX_ROWS: usize = 4096;
/// How long the writer gathers checks before it writes them.
const LINGER: Duration = Duration::from_millis(100);
/// How long a failing write is retried before its checks are given up (and logged).
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);

impl CheckLog {
    /// Starts the writer; it ends when every handle is gone (call [`CheckLog::sync`] first
    /// to be sure everything is written).
    pub fn spawn(store: Store) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store, receiver));
        Self { queue }
    }

    /// Records checks made by `principal_id`: queued for the writer.
    pub async fn record(&self, principal_id: i64, checks: &[Check<'_>]) -> Result<(), AppError> {
        let record = Record {
            principal_id,
            rows: checks
                .iter()
                .map(|c| {
                    (
                        c.plate.to_owned(),
                        c.parking_lot_id,
                        c.zone_code,
                        to_micros(c.at),
                        c.allowed,
                        c.grace,
                        c.kinds.clone(),
                    )
                })
                .collect(),
            now: to_micros(Timestamp::now()),
        };
        self.queue
            .send(Message::Record(record))
            .await
            .map_err(|_| stopped())
    }

    /// Waits until every check recorded before this call is in the database.
    pub async fn sync(&self) -> Result<(), AppError> {
        let (done, written) = oneshot::channel();
        self.queue
            .send(Message::Sync(done))
            .await
            .map_err(|_| stopped())?;
        written.await.map_err(|_| stopped())
    }
}

fn stopped() -> AppError {
    AppError::Unavailable(anyhow::anyhow!("the check log's writer has stopped"))
}

async fn writer(store: Store, mut queue: mpsc::Receiver<Message>) {
    let mut records: Vec<Record> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut rows = take(first, &mut records, &mut waiting);
        // Gather for a while: each commit makes every SQLite reader drop its page cache, so
        // a few large commits a second keep the rights lookups fast where one per burst did
        // not. Someone waiting, a full batch or the last handle gone ends the wait early.
        let until = tokio::time::Instant::now() + LINGER;
        loop {
            while let Ok(message) = queue.try_recv() {
                rows += take(message, &mut records, &mut waiting);
            }
            if !waiting.is_empty() || rows >= MAX_ROWS {
                break;
            }
            match tokio::time::timeout_at(until, queue.recv()).await {
                Ok(Some(message)) => rows += take(message, &mut records, &mut waiting),
                Ok(None) | Err(_) => break,
            }
        }
        if !records.is_empty() {
            write_with_retries(&store, std::mem::take(&mut records), rows).await;
        }
        for done in waiting.drain(..) {
            let _ = done.send(());
        }
    }
}

/// Files one message from the queue; the number of rows it brought.
fn take(
    message: Message,
    records: &mut Vec<Record>,
    waiting: &mut Vec<oneshot::Sender<()>>,
) -> usize {
    match message {
        Message::Record(record) => {
            let rows = record.rows.len();
            records.push(record);
            rows
        }
        Message::Sync(done) => {
            waiting.push(done);
            0
        }
    }
}

/// Writes `records` in one transaction, trying again for a while if the database is away.
async fn write_with_retries(store: &Store, records: Vec<Record>, rows: usize) {
    let records = Arc::new(records);
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match write(store, &records).await {
            Ok(()) => return,
            Err(err) if started.elapsed() < GIVE_UP_AFTER => {
                tracing::warn!(error = %err, rows, "could not write parking-right checks; will retry");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(err) => {
                tracing::error!(error = %err, rows, "parking-right checks could not be written and are lost");
                return;
            }
        }
    }
}

async fn write(store: &Store, records: &Arc<Vec<Record>>) -> Result<(), AppError> {
    let pool = match store.backend() {
        // In the writer's next batch, one prepared single-row INSERT per check: a multi-row
        // INSERT would have SQLite keep a statement journal of every page it touches.
        Backend::Sqlite(sqlite) => return sqlite.group.submit(SqliteChecks(records.clone())).await,
        Backend::Postgres(pool) => pool,
    };
    let count = records.iter().map(|r| r.rows.len()).sum();
    let mut principals = Vec::with_capacity(count);
    let mut plates = Vec::with_capacity(count);
    let mut lots = Vec::with_capacity(count);
    let mut zones = Vec::with_capacity(count);
    let mut at = Vec::with_capacity(count);
    let mut allowed = Vec::with_capacity(count);
    let mut grace = Vec::with_capacity(count);
    let mut kinds = Vec::with_capacity(count);
    let mut checked_at = Vec::with_capacity(count);
    for record in records.iter() {
        for (plate, lot, zone, instant, yes, in_grace, kind) in &record.rows {
            principals.push(record.principal_id);
            plates.push(plate.as_str());
            lots.push(*lot);
            zones.push(*zone);
            at.push(*instant);
            allowed.push(*yes);
            grace.push(*in_grace);
            kinds.push(kind.as_str());
            checked_at.push(record.now);
        }
    }
    // One statement: committed on its own.
    sqlx::query(INSERT_POSTGRES)
        .bind(&principals)
        .bind(&plates)
        .bind(&lots)
        .bind(&zones)
        .bind(&at)
        .bind(&allowed)
        .bind(&grace)
        .bind(&kinds)
        .bind(&checked_at)
        .execute(pool)
        .await?;
    Ok(())
}

/// Checks to write on SQLite, as a job of the group commit.
struct SqliteChecks(Arc<Vec<Record>>);

impl Job for SqliteChecks {
    type Output = ();

    fn run(&self, conn: &rusqlite::Connection) -> Result<(), AppError> {
        let mut insert = conn
            .prepare_cached(concat!(
                "INSERT INTO parking_right_checks (",
                columns!(),
                ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))
            .map_err(from_rusqlite)?;
        for record in self.0.iter() {
            for (plate, lot, zone, at, allowed, grace, kinds) in &record.rows {
                insert
                    .execute(rusqlite::params![
                        record.principal_id,
                        plate,
                        lot,
                        zone,
                        at,
                        allowed,
                        grace,
                        kinds,
                        record.now
                    ])
                    .map_err(from_rusqlite)?;
            }
        }
        Ok(())
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CheckView {
    pub id: i64,
    /// Who asked: the principal's id and name.
    pub principal_id: i64,
    pub principal_name: String,
    /// Normal form; `~` and a keyed hash once past the retention.
    pub license_number: String,
    pub parking_lot_id: Option<i64>,
    pub zone_code: Option<i64>,
    /// The instant asked about, RFC 3339 UTC.
    pub at: String,
    pub allowed: bool,
    pub grace: bool,
    /// The kinds of right that applied.
    pub kinds: Vec<String>,
    pub checked_at: String,
}

#[derive(sqlx::FromRow)]
struct CheckRow {
    id: i64,
    principal_id: i64,
    principal_name: Option<String>,
    license_norm: String,
    parking_lot_id: Option<i64>,
    zone_code: Option<i64>,
    at: i64,
    allowed: bool,
    grace: bool,
    kinds: String,
    checked_at: i64,
}

#[derive(Debug, Default)]
pub struct CheckFilter {
    pub plate: Option<String>,
    pub parking_lot_id: Option<i64>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

/// A page of checks, newest first, and how many match.
pub async fn list(
    store: &Store,
    filter: &CheckFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<CheckView>, i64), AppError> {
    const WHERE: &str = "($1 IS NULL OR c.license_norm = $1) AND ($2 IS NULL OR c.parking_lot_id = $2) \
         AND ($3 IS NULL OR c.checked_at >= $3) AND ($4 IS NULL OR c.checked_at < $4)";
    let (from, to) = (filter.from.map(to_micros), filter.to.map(to_micros));
    let (rows, total): (Vec<CheckRow>, i64) = read!(store, |db| {
        let rows = sqlx::query_as(&format!(
            "SELECT c.id, c.principal_id, p.name AS principal_name, c.license_norm, c.parking_lot_id, \
                    c.zone_code, c.at, c.allowed, c.grace, c.kinds, c.checked_at \
             FROM parking_right_checks c LEFT JOIN principals p ON p.id = c.principal_id \
             WHERE {WHERE} ORDER BY c.id DESC LIMIT $5 OFFSET $6"
        ))
        .bind(filter.plate.as_deref())
        .bind(filter.parking_lot_id)
        .bind(from)
        .bind(to)
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
        let total = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM parking_right_checks c WHERE {WHERE}"
        ))
        .bind(filter.plate.as_deref())
        .bind(filter.parking_lot_id)
        .bind(from)
        .bind(to)
        .fetch_one(db)
        .await?;
        (rows, total)
    });
    let views = rows
        .into_iter()
        .map(|r| CheckView {
            id: r.id,
            principal_id: r.principal_id,
            principal_name: r.principal_name.unwrap_or_default(),
            license_number: r.license_norm,
            parking_lot_id: r.parking_lot_id,
            zone_code: r.zone_code,
            at: from_micros(r.at).to_string(),
            allowed: r.allowed,
            grace: r.grace,
            kinds: r
                .kinds
                .split(',')
                .filter(|k| !k.is_empty())
                .map(str::to_owned)
                .collect(),
            checked_at: from_micros(r.checked_at).to_string(),
        })
        .collect();
    Ok((views, total))
}
