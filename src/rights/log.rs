//! The log of parking-right checks: who asked about which plate, where, for when, and the answer.

use jiff::Timestamp;
use serde::Serialize;

use crate::domain::time::{from_micros, to_micros};
use crate::http::AppError;
use crate::read;
use crate::store::group::{Job, JobFuture};
use crate::store::{Backend, Store};

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

/// Checks to record, owned so they can join a group commit.
struct Record {
    principal_id: i64,
    rows: Vec<Row>,
    now: i64,
}

type Row = (String, Option<i64>, Option<i64>, i64, bool, bool, String);

/// One row's insert, written once for both backends.
fn insert_query<'q, DB>(
    principal_id: i64,
    row: &'q Row,
    now: i64,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    sqlx::query(
        "INSERT INTO parking_right_checks (principal_id, license_norm, parking_lot_id, zone_code, at, \
             allowed, grace, kinds, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(principal_id)
    .bind(row.0.as_str())
    .bind(row.1)
    .bind(row.2)
    .bind(row.3)
    .bind(row.4)
    .bind(row.5)
    .bind(row.6.as_str())
    .bind(now)
}

impl Job for Record {
    type Output = ();

    fn run<'c>(&'c self, conn: &'c mut sqlx::SqliteConnection) -> JobFuture<'c, ()> {
        Box::pin(async move {
            for row in &self.rows {
                insert_query::<sqlx::Sqlite>(self.principal_id, row, self.now)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
    }
}

/// Records checks made by `principal_id`, before the answer goes out. On SQLite they join the
/// current group commit, so concurrent checks share one fsync.
pub async fn record(
    store: &Store,
    principal_id: i64,
    checks: &[Check<'_>],
) -> Result<(), AppError> {
    let job = Record {
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
    match store.backend() {
        Backend::Sqlite(sqlite) => sqlite.group.submit(job).await,
        Backend::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            for row in &job.rows {
                insert_query::<sqlx::Postgres>(job.principal_id, row, job.now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await?;
            Ok(())
        }
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
