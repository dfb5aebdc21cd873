//! Tickets in the database, keyed by (provider, ticketId): writing them here, listing them in
//! [`list`], each provider's count in [`counts`].

pub mod counts;
mod list;

pub use self::counts::{COUNT_FRESH_FOR, Counted};
pub use self::list::{StoredTicket, TicketFilter, list};

use jiff::Timestamp;

use super::event::ValidTicket;
use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::store::Store;
use crate::store::batch::{Batched, JobFuture, column};
use crate::store::group::Job;
use crate::write_tx;

/// What a CreateOrUpdate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Stored,
    /// The ticket was canceled before; it stays canceled and nothing changed.
    AlreadyCanceled,
}

/// What a TicketCanceled did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Canceled {
    Canceled,
    WasCanceled,
    NotFound,
}

/// A CreateOrUpdate as one statement.
struct UpsertJob {
    provider_id: i64,
    ticket_id: String,
    parking_lot_id: i64,
    license_raw: String,
    license_norm: String,
    start: i64,
    end: Option<i64>,
    amount: Option<i64>,
    vat_rate: Option<i64>,
    currency: Option<String>,
    now: i64,
}

/// The most rows in one multi-row upsert on SQLite. Each size is its own prepared statement,
/// kept in the writer's statement cache (see `WRITER_STATEMENTS` in the store).
pub const UPSERT_MAX_ROWS: usize = 64;

/// The columns bound for each row of [`upsert_sql`], in order.
const UPSERT_COLUMNS: usize = 12;

/// The columns a CreateOrUpdate writes, in the order both upserts give them.
macro_rules! upsert_into {
    () => {
        "INSERT INTO tickets (provider_id, ticket_id, parking_lot_id, license_raw, license_norm, \
         start_at, end_at, cost_amount, cost_vat_rate, cost_currency, created_at, updated_at, \
         status) "
    };
}

/// What an upsert does with a ticket that is there already: an active one gets every field
/// but `created_at` replaced, a canceled one is left alone. Returns (id, provider, ticketId)
/// of every row stored.
macro_rules! upsert_conflict {
    () => {
        " ON CONFLICT (provider_id, ticket_id) DO UPDATE SET \
         parking_lot_id = excluded.parking_lot_id, license_raw = excluded.license_raw, \
         license_norm = excluded.license_norm, start_at = excluded.start_at, \
         end_at = excluded.end_at, cost_amount = excluded.cost_amount, \
         cost_vat_rate = excluded.cost_vat_rate, cost_currency = excluded.cost_currency, \
         updated_at = excluded.updated_at \
         WHERE tickets.status = 'active' \
         RETURNING id, provider_id, ticket_id"
    };
}

/// CreateOrUpdates in one statement (SQLite): each row is inserted or updated as
/// `upsert_conflict!` says. One statement, so concurrent events on one ticket always leave
/// one consistent row; rows are applied in order, so a ticket sent twice in one group commit
/// ends as the later one.
fn upsert_sql(rows: usize) -> String {
    use std::fmt::Write;
    let mut sql = String::from(concat!(upsert_into!(), "VALUES "));
    for row in 0..rows {
        sql.push_str(if row == 0 { "(" } else { ", (" });
        for column in 0..UPSERT_COLUMNS {
            let _ = write!(sql, "?{}, ", row * UPSERT_COLUMNS + column + 1);
        }
        sql.push_str("'active')");
    }
    sql.push_str(upsert_conflict!());
    sql
}

/// [`upsert_sql`] of 1 to [`UPSERT_MAX_ROWS`] rows, written once: the statement cache is looked
/// up by its text, and writing it out again was a share of every batch.
static UPSERT_SQL: std::sync::LazyLock<Vec<String>> =
    std::sync::LazyLock::new(|| (1..=UPSERT_MAX_ROWS).map(upsert_sql).collect());

/// The same on PostgreSQL, for any number of rows: each column is bound as one array, so a
/// batch of any size is one prepared statement and a dozen parameters, where a row of
/// parameters per ticket made every batch size a statement of its own to parse and plan.
const UPSERT_POSTGRES: &str = concat!(
    upsert_into!(),
    "SELECT r.provider_id, r.ticket_id, r.parking_lot_id, r.license_raw, r.license_norm, \
            r.start_at, r.end_at, r.cost_amount, r.cost_vat_rate, r.cost_currency, r.now, \
            r.now, 'active' \
       FROM UNNEST($1::BIGINT[], $2::TEXT[], $3::BIGINT[], $4::TEXT[], $5::TEXT[], \
                   $6::BIGINT[], $7::BIGINT[], $8::BIGINT[], $9::BIGINT[], $10::TEXT[], \
                   $11::BIGINT[]) \
         AS r (provider_id, ticket_id, parking_lot_id, license_raw, license_norm, start_at, \
               end_at, cost_amount, cost_vat_rate, cost_currency, now)",
    upsert_conflict!()
);

/// A stored row as the upserts return it.
type StoredRow = (i64, i64, String);

/// SQLite: `jobs` in statements of at most [`UPSERT_MAX_ROWS`] rows, each kept prepared.
fn upsert_sqlite(
    conn: &rusqlite::Connection,
    jobs: &[&UpsertJob],
) -> Result<Vec<StoredRow>, rusqlite::Error> {
    let mut rows = Vec::with_capacity(jobs.len());
    for chunk in jobs.chunks(UPSERT_MAX_ROWS) {
        let mut statement = conn.prepare_cached(&UPSERT_SQL[chunk.len() - 1])?;
        for (i, job) in chunk.iter().enumerate() {
            let at = i * UPSERT_COLUMNS;
            statement.raw_bind_parameter(at + 1, job.provider_id)?;
            statement.raw_bind_parameter(at + 2, &job.ticket_id)?;
            statement.raw_bind_parameter(at + 3, job.parking_lot_id)?;
            statement.raw_bind_parameter(at + 4, &job.license_raw)?;
            statement.raw_bind_parameter(at + 5, &job.license_norm)?;
            statement.raw_bind_parameter(at + 6, job.start)?;
            statement.raw_bind_parameter(at + 7, job.end)?;
            statement.raw_bind_parameter(at + 8, job.amount)?;
            statement.raw_bind_parameter(at + 9, job.vat_rate)?;
            statement.raw_bind_parameter(at + 10, &job.currency)?;
            statement.raw_bind_parameter(at + 11, job.now)?;
            statement.raw_bind_parameter(at + 12, job.now)?;
        }
        let mut stored = statement.raw_query();
        while let Some(row) = stored.next()? {
            rows.push((row.get(0)?, row.get(1)?, row.get(2)?));
        }
    }
    Ok(rows)
}

/// PostgreSQL: `jobs` as one statement.
async fn upsert_postgres<'e, E>(
    executor: E,
    jobs: &[&UpsertJob],
) -> Result<Vec<StoredRow>, sqlx::Error>
where
    E: sqlx::Executor<'e, Database = sqlx::Postgres>,
{
    sqlx::query_as::<_, StoredRow>(UPSERT_POSTGRES)
        .bind(column(jobs, |j| j.provider_id))
        .bind(column(jobs, |j| j.ticket_id.as_str()))
        .bind(column(jobs, |j| j.parking_lot_id))
        .bind(column(jobs, |j| j.license_raw.as_str()))
        .bind(column(jobs, |j| j.license_norm.as_str()))
        .bind(column(jobs, |j| j.start))
        .bind(column(jobs, |j| j.end))
        .bind(column(jobs, |j| j.amount))
        .bind(column(jobs, |j| j.vat_rate))
        .bind(column(jobs, |j| j.currency.as_deref()))
        .bind(column(jobs, |j| j.now))
        .fetch_all(executor)
        .await
}

impl Job for UpsertJob {
    type Output = Option<i64>;

    fn run(&self, conn: &rusqlite::Connection) -> Result<Option<i64>, AppError> {
        Ok(Self::run_many(&[self], conn)?.pop().flatten())
    }

    fn run_many(jobs: &[&Self], conn: &rusqlite::Connection) -> Result<Vec<Option<i64>>, AppError> {
        let rows = upsert_sqlite(conn, jobs).map_err(crate::store::from_rusqlite)?;
        Ok(answers(jobs, rows))
    }
}

/// `jobs` as statements PostgreSQL can run: no ticket twice in one (an upsert cannot change a
/// row twice), so a ticket sent twice ends as the later one. Rows are sorted by key, so
/// concurrent statements lock rows in one order.
fn statements<'a>(jobs: &[&'a UpsertJob]) -> Vec<Vec<&'a UpsertJob>> {
    let mut statements: Vec<Vec<&UpsertJob>> = Vec::new();
    let mut current: Vec<&UpsertJob> = Vec::new();
    let mut keys = std::collections::HashSet::new();
    for &job in jobs {
        let key = (job.provider_id, job.ticket_id.as_str());
        if keys.contains(&key) {
            statements.push(std::mem::take(&mut current));
            keys.clear();
        }
        keys.insert(key);
        current.push(job);
    }
    if !current.is_empty() {
        statements.push(current);
    }
    for statement in &mut statements {
        statement.sort_by(|a, b| (a.provider_id, &a.ticket_id).cmp(&(b.provider_id, &b.ticket_id)));
    }
    statements
}

/// Which of `jobs` were stored, and as which row.
fn answers(jobs: &[&UpsertJob], rows: Vec<StoredRow>) -> Vec<Option<i64>> {
    let stored: std::collections::HashMap<(i64, String), i64> = rows
        .into_iter()
        .map(|(id, provider_id, ticket_id)| ((provider_id, ticket_id), id))
        .collect();
    jobs.iter()
        .map(|job| {
            stored
                .get(&(job.provider_id, job.ticket_id.clone()))
                .copied()
        })
        .collect()
}

impl Batched for UpsertJob {
    type Output = Option<i64>;

    /// One statement, committed on its own, in the usual case; several in one transaction
    /// when the batch is large or sends a ticket twice.
    fn run_together<'a>(
        pool: &'a sqlx::PgPool,
        jobs: &'a [&'a Self],
    ) -> JobFuture<'a, Vec<Option<i64>>> {
        Box::pin(async move {
            let mut rows: Vec<StoredRow> = Vec::with_capacity(jobs.len());
            match statements(jobs).as_slice() {
                [one] => rows = upsert_postgres(pool, one).await?,
                many => {
                    let mut tx = pool.begin().await?;
                    for statement in many {
                        rows.extend(upsert_postgres(&mut *tx, statement).await?);
                    }
                    tx.commit().await?;
                }
            }
            Ok(answers(jobs, rows))
        })
    }
}

/// Creates the provider's ticket, or replaces every field of it but `createdAt`. On SQLite the
/// write joins the current group commit: many requests, one transaction, one fsync.
pub async fn upsert(
    store: &Store,
    provider_id: i64,
    ticket: &ValidTicket,
) -> Result<Upserted, AppError> {
    let cost = ticket.cost.as_ref();
    let job = UpsertJob {
        provider_id,
        ticket_id: ticket.ticket_id.as_str().to_owned(),
        parking_lot_id: ticket.parking_lot_id,
        license_raw: ticket.plate.raw().to_owned(),
        license_norm: ticket.plate.normal().to_owned(),
        start: to_micros(ticket.start),
        end: ticket.end.map(to_micros),
        amount: cost.map(|c| c.amount_incl_vat),
        vat_rate: cost.map(|c| c.vat_rate),
        currency: cost.map(|c| c.currency.as_str().to_owned()),
        now: to_micros(Timestamp::now()),
    };
    // Gathered with the other upserts waiting now: one statement, one commit.
    Ok(match store.submit(job).await? {
        Some(_) => Upserted::Stored,
        None => Upserted::AlreadyCanceled,
    })
}

/// Cancels the provider's ticket; canceling twice is fine.
pub async fn cancel(
    store: &Store,
    provider_id: i64,
    ticket_id: &str,
) -> Result<Canceled, AppError> {
    let now = to_micros(Timestamp::now());
    let outcome = write_tx!(store, |tx| {
        let changed = sqlx::query(
            "UPDATE tickets SET status = 'canceled', canceled_at = $3, updated_at = $3 \
             WHERE provider_id = $1 AND ticket_id = $2 AND status = 'active'",
        )
        .bind(provider_id)
        .bind(ticket_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if changed == 1 {
            Canceled::Canceled
        } else {
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM tickets WHERE provider_id = $1 AND ticket_id = $2",
            )
            .bind(provider_id)
            .bind(ticket_id)
            .fetch_optional(&mut *tx)
            .await?;
            if exists.is_some() {
                Canceled::WasCanceled
            } else {
                Canceled::NotFound
            }
        }
    });
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(provider_id: i64, ticket_id: &str) -> UpsertJob {
        UpsertJob {
            provider_id,
            ticket_id: ticket_id.to_owned(),
            parking_lot_id: 1,
            license_raw: "ABC123".into(),
            license_norm: "ABC123".into(),
            start: 0,
            end: None,
            amount: None,
            vat_rate: None,
            currency: None,
            now: 0,
        }
    }

    fn keys(statements: &[Vec<&UpsertJob>]) -> Vec<Vec<(i64, String)>> {
        statements
            .iter()
            .map(|s| {
                s.iter()
                    .map(|j| (j.provider_id, j.ticket_id.clone()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_ticket_sent_twice_goes_into_a_later_statement() {
        let jobs = [job(2, "b"), job(1, "a"), job(2, "b"), job(1, "c")];
        let refs: Vec<&UpsertJob> = jobs.iter().collect();
        let split = statements(&refs);
        assert_eq!(
            keys(&split),
            vec![
                vec![(1, "a".to_owned()), (2, "b".to_owned())],
                vec![(1, "c".to_owned()), (2, "b".to_owned())],
            ]
        );
        // the later copy of "b" is the one in the later statement
        assert!(std::ptr::eq(split[1][1], &jobs[2]));
    }

    #[test]
    fn one_provider_id_is_not_another_providers() {
        let jobs = [job(1, "a"), job(2, "a")];
        let refs: Vec<&UpsertJob> = jobs.iter().collect();
        assert_eq!(statements(&refs).len(), 1);
    }

    #[test]
    fn distinct_tickets_are_one_statement_whatever_their_number() {
        let jobs: Vec<UpsertJob> = (0..UPSERT_MAX_ROWS * 4 + 1)
            .map(|i| job(1, &format!("t{i:04}")))
            .collect();
        let refs: Vec<&UpsertJob> = jobs.iter().collect();
        let sizes: Vec<usize> = statements(&refs).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![UPSERT_MAX_ROWS * 4 + 1]);
    }

    #[test]
    fn answers_follow_the_jobs_not_the_rows() {
        let jobs = [job(1, "a"), job(1, "gone"), job(2, "a")];
        let refs: Vec<&UpsertJob> = jobs.iter().collect();
        let rows = vec![(20, 2, "a".to_owned()), (10, 1, "a".to_owned())];
        assert_eq!(answers(&refs, rows), vec![Some(10), None, Some(20)]);
    }
}
