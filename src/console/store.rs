//! The console's read queries: per-lot figures, and searches across principals.

use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::read;
use crate::store::Store;

#[derive(sqlx::FromRow)]
pub struct LotRow {
    pub id: i64,
    pub name: String,
    pub zone_code: i64,
    pub time_zone: String,
    pub capacity: Option<i64>,
}

/// Every lot, and per lot id: vehicles inside, active tickets, permits valid now.
pub async fn overview(
    store: &Store,
    now: jiff::Timestamp,
) -> Result<(Vec<LotRow>, Vec<(i64, i64, i64, i64)>), AppError> {
    let now = to_micros(now);
    Ok(read!(store, |db| {
        let lots: Vec<LotRow> = sqlx::query_as(
            "SELECT id, name, zone_code, time_zone, capacity FROM parking_lots ORDER BY id",
        )
        .fetch_all(db)
        .await?;
        let counts: Vec<(i64, i64, i64, i64)> = sqlx::query_as(
            "SELECT l.id, \
                (SELECT COUNT(*) FROM transactions t WHERE t.parking_lot_id = l.id AND t.exit_at IS NULL), \
                (SELECT COUNT(*) FROM tickets k WHERE k.parking_lot_id = l.id AND k.status = 'active' \
                    AND k.start_at <= $1 AND (k.end_at IS NULL OR k.end_at > $1)), \
                (SELECT COUNT(*) FROM permits p \
                    JOIN permit_allocations a ON a.id = p.allocation_id \
                    JOIN permit_definition_lots dl ON dl.definition_id = a.definition_id \
                    WHERE dl.parking_lot_id = l.id AND p.deleted_at IS NULL \
                    AND p.starts_at <= $1 AND p.ends_at > $1) \
             FROM parking_lots l",
        )
        .bind(now)
        .fetch_all(db)
        .await?;
        (lots, counts)
    }))
}

pub struct TicketQuery {
    pub plate: Option<String>,
    pub provider_id: Option<i64>,
    pub lot_id: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub struct TicketRow {
    pub provider_id: i64,
    pub provider_name: String,
    pub ticket_id: String,
    pub parking_lot_id: i64,
    pub time_zone: String,
    pub license_raw: String,
    pub start_at: i64,
    pub end_at: Option<i64>,
    pub status: String,
    pub canceled_at: Option<i64>,
}

/// Tickets of every provider, newest start first; `from`/`to` keep those overlapping them.
pub async fn tickets(
    store: &Store,
    q: &TicketQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<TicketRow>, i64), AppError> {
    const WHERE: &str = "($1 IS NULL OR t.license_norm = $1) AND ($2 IS NULL OR t.provider_id = $2) \
         AND ($3 IS NULL OR t.parking_lot_id = $3) \
         AND ($4 IS NULL OR t.end_at IS NULL OR t.end_at > $4) AND ($5 IS NULL OR t.start_at < $5)";
    Ok(read!(store, |db| {
        let rows = sqlx::query_as(&format!(
            "SELECT t.provider_id, p.name AS provider_name, t.ticket_id, t.parking_lot_id, \
                    l.time_zone, t.license_raw, t.start_at, t.end_at, t.status, t.canceled_at \
             FROM tickets t JOIN principals p ON p.id = t.provider_id \
             JOIN parking_lots l ON l.id = t.parking_lot_id \
             WHERE {WHERE} ORDER BY t.start_at DESC, t.id DESC LIMIT $6 OFFSET $7"
        ))
        .bind(q.plate.as_deref())
        .bind(q.provider_id)
        .bind(q.lot_id)
        .bind(q.from)
        .bind(q.to)
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
        let total: i64 =
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM tickets t WHERE {WHERE}"))
                .bind(q.plate.as_deref())
                .bind(q.provider_id)
                .bind(q.lot_id)
                .bind(q.from)
                .bind(q.to)
                .fetch_one(db)
                .await?;
        (rows, total)
    }))
}

pub struct PermitQuery {
    pub email: Option<String>,
    pub tenant_id: Option<i64>,
    pub allocation_id: Option<String>,
}

#[derive(sqlx::FromRow)]
pub struct PermitRow {
    pub id: String,
    pub email: String,
    pub allocation_id: String,
    pub tenant_id: i64,
    pub tenant_name: String,
    pub definition_name: String,
    pub time_zone: String,
    pub valid_from: String,
    pub valid_to: String,
    pub activated_at: Option<i64>,
}

/// Permits that are not deleted, newest first.
pub async fn permits(
    store: &Store,
    q: &PermitQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<PermitRow>, i64), AppError> {
    const FROM: &str = "FROM permits p JOIN permit_allocations a ON a.id = p.allocation_id \
         JOIN principals t ON t.id = a.tenant_id JOIN permit_definitions d ON d.id = a.definition_id \
         WHERE p.deleted_at IS NULL AND ($1 IS NULL OR p.email = $1) \
         AND ($2 IS NULL OR a.tenant_id = $2) AND ($3 IS NULL OR p.allocation_id = $3)";
    Ok(read!(store, |db| {
        let rows = sqlx::query_as(&format!(
            "SELECT p.id, p.email, p.allocation_id, a.tenant_id, t.name AS tenant_name, \
                    d.name AS definition_name, d.time_zone, p.valid_from, p.valid_to, p.activated_at \
             {FROM} ORDER BY p.created_at DESC, p.id LIMIT $4 OFFSET $5"
        ))
        .bind(q.email.as_deref())
        .bind(q.tenant_id)
        .bind(q.allocation_id.as_deref())
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
        let total: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) {FROM}"))
            .bind(q.email.as_deref())
            .bind(q.tenant_id)
            .bind(q.allocation_id.as_deref())
            .fetch_one(db)
            .await?;
        (rows, total)
    }))
}

pub struct TransactionQuery {
    /// The plate's normal form, and the text as sent (barcodes are matched as sent).
    pub vehicle: Option<(String, String)>,
    pub lot_id: Option<i64>,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

#[derive(sqlx::FromRow)]
pub struct TransactionRow {
    pub id: i64,
    pub parking_lot_id: i64,
    pub time_zone: String,
    pub ticket_no: String,
    pub ticket_type: i64,
    pub provider_id: Option<i64>,
    pub reference_no: String,
    pub entry_at: i64,
    pub exit_at: Option<i64>,
    pub duration_minutes: Option<i64>,
    pub amount_minor: Option<i64>,
    pub currency_code: Option<String>,
}

/// Stays, newest entry first; `from`/`to` keep those overlapping them.
pub async fn transactions(
    store: &Store,
    q: &TransactionQuery,
    limit: i64,
    offset: i64,
) -> Result<(Vec<TransactionRow>, i64), AppError> {
    const WHERE: &str = "($1 IS NULL OR t.ticket_key = $1 OR t.ticket_key = $2) \
         AND ($3 IS NULL OR t.parking_lot_id = $3) \
         AND ($4 IS NULL OR t.exit_at IS NULL OR t.exit_at > $4) AND ($5 IS NULL OR t.entry_at < $5)";
    let (norm, raw) = match &q.vehicle {
        Some((norm, raw)) => (Some(norm.as_str()), Some(raw.as_str())),
        None => (None, None),
    };
    Ok(read!(store, |db| {
        let rows = sqlx::query_as(&format!(
            "SELECT t.id, t.parking_lot_id, l.time_zone, t.ticket_no, t.ticket_type, t.provider_id, \
                    t.reference_no, t.entry_at, t.exit_at, t.duration_minutes, t.amount_minor, \
                    t.currency_code \
             FROM transactions t JOIN parking_lots l ON l.id = t.parking_lot_id \
             WHERE {WHERE} ORDER BY t.entry_at DESC, t.id DESC LIMIT $6 OFFSET $7"
        ))
        .bind(norm)
        .bind(raw)
        .bind(q.lot_id)
        .bind(q.from)
        .bind(q.to)
        .bind(limit)
        .bind(offset)
        .fetch_all(db)
        .await?;
        let total: i64 = sqlx::query_scalar(&format!(
            "SELECT COUNT(*) FROM transactions t WHERE {WHERE}"
        ))
        .bind(norm)
        .bind(raw)
        .bind(q.lot_id)
        .bind(q.from)
        .bind(q.to)
        .fetch_one(db)
        .await?;
        (rows, total)
    }))
}

/// The lot's capacity and time zone, and its stays that overlap `[since, until]`.
#[allow(clippy::type_complexity)]
pub async fn stays_between(
    store: &Store,
    lot_id: i64,
    since: i64,
    until: i64,
) -> Result<Option<(Option<i64>, String, Vec<(i64, Option<i64>)>)>, AppError> {
    Ok(read!(store, |db| {
        let lot: Option<(Option<i64>, String)> =
            sqlx::query_as("SELECT capacity, time_zone FROM parking_lots WHERE id = $1")
                .bind(lot_id)
                .fetch_optional(db)
                .await?;
        match lot {
            None => None,
            Some((capacity, zone)) => {
                let stays: Vec<(i64, Option<i64>)> = sqlx::query_as(
                    "SELECT entry_at, exit_at FROM transactions WHERE parking_lot_id = $1 \
                     AND entry_at <= $3 AND (exit_at IS NULL OR exit_at > $2)",
                )
                .bind(lot_id)
                .bind(since)
                .bind(until)
                .fetch_all(db)
                .await?;
                Some((capacity, zone, stays))
            }
        }
    }))
}
