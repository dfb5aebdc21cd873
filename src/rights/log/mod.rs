//! The log of parking-right checks: who asked about which plate, where, for when, and the answer.

use jiff::Timestamp;

use crate::domain::time::to_micros;
use crate::http::AppError;
use std::sync::Arc;
use std::time::Duration;

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{mpsc, oneshot};

use crate::store::group::Job;
use crate::store::{Backend, Store, from_rusqlite};

mod indexing;
mod list;
pub use list::{CheckFilter, CheckView, list};

use self::indexing::{INDEX_CHUNK, Plan, PlateIndexing, index_waiting, index_with_retries};

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
/// a moment ([`linger`]) and writes them in one transaction, so an answer never waits for the
/// disk and a busy second costs a few commits. A check is in the database at most about a
/// tenth of a second after its answer; [`CheckLog::sync`] writes at once and waits for it, so this
/// instance's own listing always shows every check it answered. A crash can lose the checks of
/// that last moment, never an answer or any other write.
///
/// On SQLite a busy writer leaves the plate index to later (see [`PlateIndexing`]): the rows
/// are written at once and found by plate either way.
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
///
/// On SQLite, 10 ms: the rows a busy writer writes (without the plate index) are cheap, and
/// shorter commits keep the tail of every answer's latency short (rights-check's p99 at half
/// its rate: 1.3-1.9 ms at 10 ms, 2.1-3.4 ms at 25, 3.9-4.6 ms at 50, 4.4-24 ms at 100;
/// BENCHMARKS.md). A commit used to make every SQLite reader drop its page cache, which hurt
/// when checks read the database; they are answered from the rights memory now. On
/// PostgreSQL, 100 ms: each write is a statement of the server's, whose every row still goes
/// into the plate index, and shorter ones cost it throughput (20,800-21,400 checks/s at 10 ms
/// against 24,500-26,700 at 100 ms).
fn linger(store: &Store) -> Duration {
    match store.backend() {
        Backend::Sqlite(_) => Duration::from_millis(10),
        Backend::Postgres(_) => Duration::from_millis(100),
    }
}
/// How long a failing write is retried before its checks are given up (and logged).
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// No check for this long: index the rows waiting, a chunk at a time while none arrives.
const IDLE: Duration = Duration::from_millis(200);

impl CheckLog {
    /// Starts the writer; it ends when every handle is gone (call [`CheckLog::sync`] first
    /// to be sure everything is written).
    /// `to_index` shows how many rows wait for the plate index.
    pub fn spawn(store: Store, to_index: Gauge) -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        tokio::spawn(writer(store, receiver, to_index));
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

async fn writer(store: Store, mut queue: mpsc::Receiver<Message>, to_index: Gauge) {
    let mut indexing = PlateIndexing::start(&store).await;
    to_index.set(indexing.waiting as i64);
    let mut records: Vec<Record> = Vec::new();
    let mut waiting: Vec<oneshot::Sender<()>> = Vec::new();
    loop {
        let first = if indexing.waiting > 0 {
            match tokio::time::timeout(IDLE, queue.recv()).await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(_) => {
                    // No check for a while: index a chunk, and more while none arrives.
                    while indexing.waiting > 0 && queue.is_empty() {
                        let chunk = indexing.waiting.min(INDEX_CHUNK);
                        if !index_with_retries(&store, &mut indexing, chunk).await {
                            break;
                        }
                        to_index.set(indexing.waiting as i64);
                    }
                    continue;
                }
            }
        } else {
            match queue.recv().await {
                Some(message) => message,
                None => break,
            }
        };
        let mut rows = take(first, &mut records, &mut waiting);
        // Gather for a moment (see `linger`). Someone waiting, a full batch or the last handle
        // gone ends the wait early.
        let until = tokio::time::Instant::now() + linger(&store);
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
            let plan = indexing.plan(rows);
            let batch = Batch {
                records: std::mem::take(&mut records),
                plan,
            };
            if let Some(indexed) = write_with_retries(&store, batch, rows).await {
                indexing.written(rows, plan, indexed);
                to_index.set(indexing.waiting as i64);
            }
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

/// Checks to write in one transaction, and what to do about the plate index.
struct Batch {
    records: Vec<Record>,
    plan: Plan,
}

/// Writes `batch` in one transaction, trying again for a while if the database is away; how
/// many waiting rows it indexed, or `None` if it gave up.
async fn write_with_retries(store: &Store, batch: Batch, rows: usize) -> Option<u64> {
    let batch = Arc::new(batch);
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(50);
    loop {
        match write(store, &batch).await {
            Ok(indexed) => return Some(indexed),
            Err(err) if started.elapsed() < GIVE_UP_AFTER => {
                tracing::warn!(error = %err, rows, "could not write parking-right checks; will retry");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Err(err) => {
                tracing::error!(error = %err, rows, "parking-right checks could not be written and are lost");
                return None;
            }
        }
    }
}

async fn write(store: &Store, batch: &Arc<Batch>) -> Result<u64, AppError> {
    let pool = match store.backend() {
        // In the writer's next batch, one prepared single-row INSERT per check: a multi-row
        // INSERT would have SQLite keep a statement journal of every page it touches.
        Backend::Sqlite(sqlite) => return sqlite.group.submit(SqliteChecks(batch.clone())).await,
        Backend::Postgres(pool) => pool,
    };
    let records = &batch.records;
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
    Ok(0)
}

/// Checks to write on SQLite, as a job of the group commit.
struct SqliteChecks(Arc<Batch>);

impl Job for SqliteChecks {
    type Output = u64;

    fn run(&self, conn: &rusqlite::Connection) -> Result<u64, AppError> {
        let mut insert = conn
            .prepare_cached(concat!(
                "INSERT INTO parking_right_checks (",
                columns!(),
                ", plate_indexed) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))
            .map_err(from_rusqlite)?;
        let index_new = self.0.plan.index_new;
        for record in self.0.records.iter() {
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
                        record.now,
                        index_new
                    ])
                    .map_err(from_rusqlite)?;
            }
        }
        index_waiting(conn, self.0.plan.index_waiting)
    }
}

#[cfg(test)]
mod tests {
    use super::indexing::IndexWaiting;
    use super::*;
    use crate::store::StoreOptions;

    /// `n` checks of `plate` at lot 12, `at` seconds past the epoch.
    fn checks(plate: &str, n: usize, at: i64) -> Vec<Check<'_>> {
        (0..n)
            .map(|i| Check {
                plate,
                parking_lot_id: Some(12),
                zone_code: None,
                at: Timestamp::from_second(at + i as i64).unwrap(),
                allowed: i % 2 == 0,
                grace: false,
                kinds: "ticket".to_owned(),
            })
            .collect()
    }

    async fn waiting(store: &Store) -> i64 {
        store
            .sqlite_read_blocking(|conn| {
                conn.query_row(
                    "SELECT COUNT(*) FROM parking_right_checks WHERE NOT plate_indexed",
                    [],
                    |row| row.get(0),
                )
            })
            .await
            .unwrap()
    }

    /// Lists `plate`'s checks: (id, at) newest first, and the count.
    async fn by_plate(store: &Store, plate: &str) -> (Vec<(i64, String)>, i64) {
        let filter = CheckFilter {
            plate: Some(plate.to_owned()),
            ..CheckFilter::default()
        };
        let (page, total) = list(store, &filter, 1000, 0).await.unwrap();
        (page.into_iter().map(|c| (c.id, c.at)).collect(), total)
    }

    #[tokio::test]
    async fn rows_written_without_the_plate_index_are_listed_by_plate_and_indexed_later() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        let Backend::Sqlite(sqlite) = store.backend() else {
            unreachable!()
        };
        let record = |plate, n, at| Record {
            principal_id: 1,
            rows: checks(plate, n, at)
                .iter()
                .map(|c| {
                    let at = to_micros(c.at);
                    (
                        c.plate.to_owned(),
                        c.parking_lot_id,
                        c.zone_code,
                        at,
                        c.allowed,
                        c.grace,
                        c.kinds.clone(),
                    )
                })
                .collect(),
            now: to_micros(Timestamp::now()),
        };
        let write = |records: Vec<Record>, index_new, index_waiting| {
            sqlite.group.submit(SqliteChecks(Arc::new(Batch {
                records,
                plan: Plan {
                    index_new,
                    index_waiting,
                },
            })))
        };
        // indexed ones, then a busy round of two plates left out of the index
        write(vec![record("ABC123", 3, 0)], true, 0).await.unwrap();
        write(
            vec![record("ABC123", 4, 100), record("XYZ999", 200, 0)],
            false,
            0,
        )
        .await
        .unwrap();
        assert_eq!(waiting(&store).await, 204);
        let (before, total) = by_plate(&store, "ABC123").await;
        assert_eq!(total, 7);
        let times: Vec<&str> = before.iter().map(|(_, at)| at.as_str()).collect();
        assert_eq!(
            times,
            [
                "1970-01-01T00:01:43Z",
                "1970-01-01T00:01:42Z",
                "1970-01-01T00:01:41Z",
                "1970-01-01T00:01:40Z",
                "1970-01-01T00:00:02Z",
                "1970-01-01T00:00:01Z",
                "1970-01-01T00:00:00Z"
            ],
            "every check of the plate, newest first (same checked_at: by id)"
        );
        let filter = CheckFilter {
            plate: Some("ABC123".to_owned()),
            ..CheckFilter::default()
        };
        let (second, total) = list(&store, &filter, 2, 2).await.unwrap();
        assert_eq!(
            (second[0].id, second[1].id, total),
            (before[2].0, before[3].0, 7)
        );
        // a quiet round indexes its own rows and the oldest waiting ones
        let indexed = write(vec![record("ABC123", 1, 200)], true, 150)
            .await
            .unwrap();
        assert_eq!((indexed, waiting(&store).await), (150, 54));
        assert_eq!(by_plate(&store, "ABC123").await.1, 8);
        assert_eq!(by_plate(&store, "XYZ999").await.1, 200);
        let rest = sqlite
            .group
            .submit(IndexWaiting(INDEX_CHUNK))
            .await
            .unwrap();
        assert_eq!((rest, waiting(&store).await), (54, 0));
        let (after, total) = by_plate(&store, "ABC123").await;
        assert_eq!(
            (&after[1..], total),
            (&before[..], 8),
            "the same answer, from the index"
        );
    }

    #[tokio::test]
    async fn the_writer_indexes_the_rows_of_a_busy_round_once_checks_stop() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        let to_index = Gauge::default();
        let log = CheckLog::spawn(store.clone(), to_index.clone());
        log.record(1, &checks("ABC123", 500, 0)).await.unwrap();
        log.sync().await.unwrap();
        assert_eq!(by_plate(&store, "ABC123").await.1, 500);
        // written before the idle pause ends, indexed after it; the gauge follows once the
        // writer has the indexing's answer, moments after the rows are committed
        let started = std::time::Instant::now();
        while waiting(&store).await > 0 || to_index.get() > 0 {
            assert!(started.elapsed() < Duration::from_secs(10), "never indexed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(by_plate(&store, "ABC123").await.1, 500);
        // a restart finds rows a previous run left waiting
        let Backend::Sqlite(sqlite) = store.backend() else {
            unreachable!()
        };
        sqlite.group.submit(Unindex).await.unwrap();
        let started = PlateIndexing::start(&store).await;
        assert_eq!((started.waiting, started.quiet_rows), (500, 10));
        let to_index = Gauge::default();
        let _log = CheckLog::spawn(store.clone(), to_index.clone());
        let started = std::time::Instant::now();
        while waiting(&store).await > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never indexed after a restart"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes every row out of the plate index, as a crash after a busy second leaves them.
    struct Unindex;

    impl Job for Unindex {
        type Output = ();

        fn run(&self, conn: &rusqlite::Connection) -> Result<(), AppError> {
            conn.execute("UPDATE parking_right_checks SET plate_indexed = FALSE", [])
                .map_err(from_rusqlite)?;
            Ok(())
        }
    }
}
