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

/// A value a filter binds.
enum Param<'a> {
    Text(&'a str),
    Int(i64),
}

impl CheckFilter {
    /// The conditions of the filters given (`$1`, `$2` … in order) and what they bind: a
    /// filter not given is left out of the SQL rather than written as `$n IS NULL OR …`,
    /// which no planner answers from an index (SQLite scanned the whole log for any filter).
    fn conditions(&self) -> (String, Vec<Param<'_>>) {
        let given = [
            ("c.license_norm = ", self.plate.as_deref().map(Param::Text)),
            ("c.parking_lot_id = ", self.parking_lot_id.map(Param::Int)),
            (
                "c.checked_at >= ",
                self.from.map(|t| Param::Int(to_micros(t))),
            ),
            ("c.checked_at < ", self.to.map(|t| Param::Int(to_micros(t)))),
        ];
        let mut sql = String::new();
        let mut params = Vec::new();
        for (condition, param) in given {
            let Some(param) = param else { continue };
            params.push(param);
            sql.push_str(if params.len() == 1 {
                " WHERE "
            } else {
                " AND "
            });
            sql.push_str(&format!("{condition}${}", params.len()));
        }
        (sql, params)
    }

    /// The page's statement (newest first; `LIMIT` and `OFFSET` the last two parameters),
    /// the count's, and the filters' parameters.
    fn statements(&self) -> (String, String, Vec<Param<'_>>) {
        let (conditions, params) = self.conditions();
        let limit = params.len() + 1;
        let page = format!(
            "SELECT c.id, c.principal_id, p.name AS principal_name, c.license_norm, \
                    c.parking_lot_id, c.zone_code, c.at, c.allowed, c.grace, c.kinds, c.checked_at \
             FROM parking_right_checks c LEFT JOIN principals p ON p.id = c.principal_id\
             {conditions} ORDER BY c.checked_at DESC, c.id DESC LIMIT ${limit} OFFSET ${}",
            limit + 1
        );
        let count = format!("SELECT COUNT(*) FROM parking_right_checks c{conditions}");
        (page, count, params)
    }
}

/// Binds `$params` to `$query` in order.
macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match *param {
                Param::Text(text) => query.bind(text),
                Param::Int(int) => query.bind(int),
            };
        }
        query
    }};
}

/// A page of checks, newest first, and how many match. Each filter has an index that also
/// gives the order ((plate | lot, checked_at), checked_at), so a page and its count read only
/// the checks that match.
pub async fn list(
    store: &Store,
    filter: &CheckFilter,
    limit: i64,
    offset: i64,
) -> Result<(Vec<CheckView>, i64), AppError> {
    let (page_sql, count_sql, params) = filter.statements();
    let (rows, total): (Vec<CheckRow>, i64) = read!(store, |db| {
        let rows = bind_all!(sqlx::query_as(&page_sql), &params)
            .bind(limit)
            .bind(offset)
            .fetch_all(db)
            .await?;
        let total = bind_all!(sqlx::query_scalar(&count_sql), &params)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreOptions;

    /// Every combination of the four filters.
    fn filters() -> Vec<CheckFilter> {
        (0..16u8)
            .map(|bits| CheckFilter {
                plate: (bits & 1 != 0).then(|| "ABC123".to_owned()),
                parking_lot_id: (bits & 2 != 0).then_some(12),
                from: (bits & 4 != 0).then_some(Timestamp::UNIX_EPOCH),
                to: (bits & 8 != 0).then(Timestamp::now),
            })
            .collect()
    }

    #[test]
    fn only_the_filters_given_are_in_the_sql_numbered_in_order() {
        let filter = CheckFilter {
            plate: Some("ABC123".to_owned()),
            parking_lot_id: None,
            from: None,
            to: Some(Timestamp::UNIX_EPOCH),
        };
        let (page, count, params) = filter.statements();
        assert!(
            page.contains(" WHERE c.license_norm = $1 AND c.checked_at < $2 ORDER BY"),
            "{page}"
        );
        assert!(page.ends_with("LIMIT $3 OFFSET $4"), "{page}");
        assert!(
            count.ends_with(" WHERE c.license_norm = $1 AND c.checked_at < $2"),
            "{count}"
        );
        assert!(matches!(params[..], [Param::Text("ABC123"), Param::Int(0)]));
        let none = CheckFilter::default();
        let (page, count, params) = none.statements();
        assert!(!page.contains("WHERE") && !count.contains("WHERE"));
        assert!(page.ends_with("LIMIT $1 OFFSET $2"), "{page}");
        assert!(params.is_empty());
    }

    /// SQLite's plan for `sql` with `params` (and two more for `LIMIT`/`OFFSET` if asked for).
    async fn plan(store: &Store, sql: String, params: Vec<Option<i64>>) -> Vec<String> {
        store
            .sqlite_read_blocking(move |conn| {
                let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
                let params = rusqlite::params_from_iter(params);
                statement
                    .query_map(params, |row| row.get::<_, String>(3))?
                    .collect()
            })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn every_filter_reads_an_index_in_the_order_listed() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("log.db").display());
        let store = Store::open(&url, &StoreOptions::default()).await.unwrap();
        for filter in filters() {
            let (page, count, params) = filter.statements();
            let values = |extra: usize| vec![Some(1); params.len() + extra];
            let page_plan = plan(&store, page, values(2)).await;
            assert!(
                page_plan.iter().any(|step| step.contains("INDEX"))
                    && !page_plan.iter().any(|step| step.contains("TEMP B-TREE")),
                "{filter:?}: the page is read from an index in its order: {page_plan:?}"
            );
            let count_plan = plan(&store, count, values(0)).await;
            let given = !params.is_empty();
            assert!(
                count_plan.iter().any(|step| step.starts_with("SEARCH")) == given,
                "{filter:?}: the count searches an index when filtered: {count_plan:?}"
            );
        }
    }
}
