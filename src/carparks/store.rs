//! Transactions (stays in a barrier car park) and their events, written together.

use jiff::Timestamp;

use super::Vehicle;
use crate::domain::time::{from_micros, to_micros};
use crate::events::store::{NewEvent, Outbox};
use crate::http::AppError;
use crate::store::Store;
use crate::{read, write_tx};

#[derive(Debug, Clone, PartialEq)]
pub struct Exit {
    pub at: Timestamp,
    pub event_id: String,
    pub rate_no: i64,
    pub duration_minutes: i64,
    pub amount_minor: i64,
    pub currency_code: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stay {
    pub id: i64,
    pub lot_id: i64,
    pub ticket_type: i64,
    pub ticket_no: String,
    pub provider_id: Option<i64>,
    pub reference_no: String,
    pub entry_at: Timestamp,
    pub entry_event_id: String,
    pub exit: Option<Exit>,
}

#[derive(sqlx::FromRow)]
struct StayRow {
    id: i64,
    parking_lot_id: i64,
    ticket_type: i64,
    ticket_no: String,
    provider_id: Option<i64>,
    reference_no: String,
    entry_at: i64,
    entry_event_id: String,
    exit_at: Option<i64>,
    exit_event_id: Option<String>,
    rate_no: Option<i64>,
    duration_minutes: Option<i64>,
    amount_minor: Option<i64>,
    currency_code: Option<String>,
}

impl From<StayRow> for Stay {
    fn from(r: StayRow) -> Self {
        let exit = match (r.exit_at, r.exit_event_id) {
            (Some(at), Some(event_id)) => Some(Exit {
                at: from_micros(at),
                event_id,
                rate_no: r.rate_no.unwrap_or(0),
                duration_minutes: r.duration_minutes.unwrap_or(0),
                amount_minor: r.amount_minor.unwrap_or(0),
                currency_code: r.currency_code.unwrap_or_default(),
            }),
            _ => None,
        };
        Self {
            id: r.id,
            lot_id: r.parking_lot_id,
            ticket_type: r.ticket_type,
            ticket_no: r.ticket_no,
            provider_id: r.provider_id,
            reference_no: r.reference_no,
            entry_at: from_micros(r.entry_at),
            entry_event_id: r.entry_event_id,
            exit,
        }
    }
}

const COLUMNS: &str = "id, parking_lot_id, ticket_type, ticket_no, provider_id, reference_no, entry_at, \
     entry_event_id, exit_at, exit_event_id, rate_no, duration_minutes, amount_minor, currency_code";

async fn one(
    store: &Store,
    condition: &str,
    lot: i64,
    vehicle: &Vehicle,
    at: Option<i64>,
) -> Result<Option<Stay>, AppError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM transactions \
         WHERE parking_lot_id = $1 AND ticket_type = $2 AND ticket_key = $3 AND {condition} \
         ORDER BY entry_at DESC, id DESC LIMIT 1"
    );
    let row: Option<StayRow> = read!(store, |db| {
        let query = sqlx::query_as(&sql)
            .bind(lot)
            .bind(vehicle.ticket_type)
            .bind(&vehicle.key);
        match at {
            Some(at) => query.bind(at).fetch_optional(db).await?,
            None => query.fetch_optional(db).await?,
        }
    });
    Ok(row.map(Stay::from))
}

/// The stay of this vehicle in this car park that began at `entry_at`.
pub async fn by_entry(
    store: &Store,
    lot: i64,
    vehicle: &Vehicle,
    entry_at: Timestamp,
) -> Result<Option<Stay>, AppError> {
    one(
        store,
        "entry_at = $4",
        lot,
        vehicle,
        Some(to_micros(entry_at)),
    )
    .await
}

/// The vehicle's open stay in this car park.
pub async fn open(store: &Store, lot: i64, vehicle: &Vehicle) -> Result<Option<Stay>, AppError> {
    one(store, "exit_at IS NULL", lot, vehicle, None).await
}

/// The vehicle's last finished stay in this car park.
pub async fn last_closed(
    store: &Store,
    lot: i64,
    vehicle: &Vehicle,
) -> Result<Option<Stay>, AppError> {
    one(store, "exit_at IS NOT NULL", lot, vehicle, None).await
}

/// A new stay and its TransactionStarted event, in one transaction. Returns the stay's id and
/// the event's sequence number.
pub struct NewStay<'a> {
    pub lot_id: i64,
    pub vehicle: &'a Vehicle,
    pub provider_id: Option<i64>,
    pub reference_no: &'a str,
    pub entry_at: Timestamp,
    pub event_id: &'a str,
    pub payload: &'a str,
}

pub async fn insert_entry(store: &Store, new: &NewStay<'_>) -> Result<(i64, i64), AppError> {
    Ok(write_tx!(store, |tx| {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO transactions (parking_lot_id, ticket_type, ticket_no, ticket_key, provider_id, \
                 reference_no, entry_at, entry_event_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(new.lot_id)
        .bind(new.vehicle.ticket_type)
        .bind(&new.vehicle.ticket_no)
        .bind(&new.vehicle.key)
        .bind(new.provider_id)
        .bind(new.reference_no)
        .bind(to_micros(new.entry_at))
        .bind(new.event_id)
        .fetch_one(&mut *tx)
        .await?;
        let event = NewEvent {
            event_id: new.event_id,
            provider_id: new.provider_id,
            payload: new.payload,
            origin: store.origin(),
        };
        let seq = tx.append(&event).await?;
        (id, seq)
    }))
}

/// Closes an open stay and writes its TransactionCompleted event, in one transaction. `None`
/// when the stay was no longer open (another exit won).
pub async fn close(
    store: &Store,
    stay: &Stay,
    exit: &Exit,
    payload: &str,
) -> Result<Option<i64>, AppError> {
    Ok(write_tx!(store, |tx| {
        let closed = sqlx::query(
            "UPDATE transactions SET exit_at = $2, exit_event_id = $3, rate_no = $4, duration_minutes = $5, \
                 amount_minor = $6, currency_code = $7 WHERE id = $1 AND exit_at IS NULL",
        )
        .bind(stay.id)
        .bind(to_micros(exit.at))
        .bind(&exit.event_id)
        .bind(exit.rate_no)
        .bind(exit.duration_minutes)
        .bind(exit.amount_minor)
        .bind(&exit.currency_code)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if closed == 0 {
            None
        } else {
            let event = NewEvent {
                event_id: &exit.event_id,
                provider_id: stay.provider_id,
                payload,
                origin: store.origin(),
            };
            Some(tx.append(&event).await?)
        }
    }))
}

#[derive(Debug, sqlx::FromRow)]
pub struct OccupancyRow {
    pub id: i64,
    pub name: String,
    pub facility_no: i64,
    pub carpark_no: i64,
    pub capacity: Option<i64>,
    pub inside: i64,
}

/// Every barrier car park with the number of vehicles inside.
pub async fn occupancy(store: &Store) -> Result<Vec<OccupancyRow>, AppError> {
    Ok(read!(store, |db| {
        sqlx::query_as(
            "SELECT l.id, l.name, l.facility_no, l.carpark_no, l.capacity, \
                    (SELECT COUNT(*) FROM transactions t WHERE t.parking_lot_id = l.id AND t.exit_at IS NULL) AS inside \
             FROM parking_lots l WHERE l.facility_no IS NOT NULL AND l.carpark_no IS NOT NULL ORDER BY l.id",
        )
        .fetch_all(db)
        .await?
    }))
}
