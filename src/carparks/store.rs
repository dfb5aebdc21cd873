//! Transactions (stays in a barrier car park) and their events, written together.

use jiff::Timestamp;

use super::Vehicle;
use crate::domain::time::{from_micros, to_micros};
use crate::events::bus::{Committed, EventBus};
use crate::events::store::{QueuedEvent, append_postgres, append_sqlite};
use crate::http::AppError;
use crate::read;
use crate::store::batch::{Batched, JobFuture, column};
use crate::store::group::Job;
use crate::store::{Param, Store, from_rusqlite, lookup};

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

crate::lookup_row! {
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

/// A vehicle's stays in a car park that meet `$condition`, latest entry first: the stays of
/// one vehicle at one lot are few, and the `transactions_vehicle` index finds them.
macro_rules! stays_sql {
    ($condition:literal) => {
        concat!(
            "SELECT id, parking_lot_id, ticket_type, ticket_no, provider_id, reference_no, \
             entry_at, entry_event_id, exit_at, exit_event_id, rate_no, duration_minutes, \
             amount_minor, currency_code FROM transactions \
             WHERE parking_lot_id = $1 AND ticket_type = $2 AND ticket_key = $3 AND ",
            $condition,
            " ORDER BY entry_at DESC, id DESC"
        )
    };
}

/// The stays of `vehicle` at `lot` that `sql` finds; `$4`, if `sql` has it, is `at`.
async fn stays(
    store: &Store,
    sql: &str,
    lot: i64,
    vehicle: &Vehicle,
    at: Option<Timestamp>,
) -> Result<Vec<Stay>, AppError> {
    let params = [
        Param::Int(lot),
        Param::Int(vehicle.ticket_type),
        Param::Text(&vehicle.key),
        Param::Int(at.map(to_micros).unwrap_or_default()),
    ];
    let given = if at.is_some() { 4 } else { 3 };
    let rows: Vec<StayRow> = lookup::all(store, sql, &params[..given]).await?;
    Ok(rows.into_iter().map(Stay::from).collect())
}

/// What an entry of `vehicle` at `entry_at` must know first, in one lookup: the stay that
/// began then (the same entry sent again), and the vehicle's open stay (it is inside already).
#[derive(Debug, Default)]
pub struct BeforeEntry {
    pub same: Option<Stay>,
    pub open: Option<Stay>,
}

pub async fn before_entry(
    store: &Store,
    lot: i64,
    vehicle: &Vehicle,
    entry_at: Timestamp,
) -> Result<BeforeEntry, AppError> {
    const SQL: &str = stays_sql!("(entry_at = $4 OR exit_at IS NULL)");
    let mut found = BeforeEntry::default();
    for stay in stays(store, SQL, lot, vehicle, Some(entry_at)).await? {
        if found.same.is_none() && stay.entry_at == entry_at {
            found.same = Some(stay);
        } else if found.open.is_none() && stay.exit.is_none() {
            found.open = Some(stay);
        }
    }
    Ok(found)
}

/// The vehicle's open stay in this car park.
pub async fn open(store: &Store, lot: i64, vehicle: &Vehicle) -> Result<Option<Stay>, AppError> {
    const SQL: &str = concat!(stays_sql!("exit_at IS NULL"), " LIMIT 1");
    Ok(stays(store, SQL, lot, vehicle, None)
        .await?
        .into_iter()
        .next())
}

/// The vehicle's last finished stay in this car park.
pub async fn last_closed(
    store: &Store,
    lot: i64,
    vehicle: &Vehicle,
) -> Result<Option<Stay>, AppError> {
    const SQL: &str = concat!(stays_sql!("exit_at IS NOT NULL"), " LIMIT 1");
    Ok(stays(store, SQL, lot, vehicle, None)
        .await?
        .into_iter()
        .next())
}

/// What an entry writes: a new stay and its TransactionStarted event.
pub struct NewStay<'a> {
    pub lot_id: i64,
    pub vehicle: &'a Vehicle,
    pub provider_id: Option<i64>,
    pub reference_no: &'a str,
    pub entry_at: Timestamp,
    pub event_id: &'a str,
    pub payload: &'a str,
}

/// An entry as a write: joins the current group commit on SQLite, the entries batcher's next
/// batch on PostgreSQL.
struct EntryJob {
    lot_id: i64,
    ticket_type: i64,
    ticket_no: String,
    key: String,
    reference_no: String,
    entry_at: i64,
    event: QueuedEvent,
    origin: String,
    bus: EventBus,
}

/// SQLite: an entry, in the group commit's transaction.
const INSERT_ENTRY: &str = "INSERT INTO transactions (parking_lot_id, ticket_type, ticket_no, \
     ticket_key, provider_id, reference_no, entry_at, entry_event_id) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id";

/// An exit as a write, like [`EntryJob`].
struct ExitJob {
    stay_id: i64,
    at: i64,
    rate_no: i64,
    duration_minutes: i64,
    amount_minor: i64,
    currency_code: String,
    event: QueuedEvent,
    origin: String,
    bus: EventBus,
}

/// SQLite: an exit, in the group commit's transaction; changes nothing if the stay was closed.
const CLOSE_STAY: &str = "UPDATE transactions SET exit_at = ?2, exit_event_id = ?3, rate_no = ?4, \
     duration_minutes = ?5, amount_minor = ?6, currency_code = ?7 \
     WHERE id = ?1 AND exit_at IS NULL";

/// Tells this process's subscribers of a committed event: from the batch, in the order its
/// events were numbered, before any writer is answered (answered writers run in any order, and
/// a subscriber that met a gap would read the database for it).
fn announce(bus: &EventBus, event: &QueuedEvent, seq: i64) {
    bus.committed(Committed {
        seq,
        provider_id: event.provider_id,
        payload: event.payload.clone(),
    });
}

impl Job for EntryJob {
    type Output = (i64, i64);

    fn committed(&self, &(_, seq): &(i64, i64)) {
        announce(&self.bus, &self.event, seq);
    }

    fn run(&self, conn: &rusqlite::Connection) -> Result<(i64, i64), AppError> {
        let id: i64 = conn
            .prepare_cached(INSERT_ENTRY)
            .and_then(|mut insert| {
                insert.query_row(
                    rusqlite::params![
                        self.lot_id,
                        self.ticket_type,
                        self.ticket_no,
                        self.key,
                        self.event.provider_id,
                        self.reference_no,
                        self.entry_at,
                        self.event.event_id
                    ],
                    |row| row.get(0),
                )
            })
            .map_err(from_rusqlite)?;
        let seq = append_sqlite(conn, &[&self.event]).map_err(from_rusqlite)?;
        let seq = seq.first().copied().ok_or_else(|| {
            AppError::internal(anyhow::anyhow!("the entry's event got no number"))
        })?;
        Ok((id, seq))
    }
}

impl Job for ExitJob {
    type Output = Option<i64>;

    fn committed(&self, seq: &Option<i64>) {
        if let Some(seq) = *seq {
            announce(&self.bus, &self.event, seq);
        }
    }

    fn run(&self, conn: &rusqlite::Connection) -> Result<Option<i64>, AppError> {
        let closed = conn
            .prepare_cached(CLOSE_STAY)
            .and_then(|mut update| {
                update.execute(rusqlite::params![
                    self.stay_id,
                    self.at,
                    self.event.event_id,
                    self.rate_no,
                    self.duration_minutes,
                    self.amount_minor,
                    self.currency_code
                ])
            })
            .map_err(from_rusqlite)?;
        if closed == 0 {
            return Ok(None);
        }
        let seq = append_sqlite(conn, &[&self.event]).map_err(from_rusqlite)?;
        Ok(seq.first().copied())
    }
}

/// PostgreSQL: a batch's entries as one statement, each column bound as one array.
const INSERT_ENTRIES: &str = "INSERT INTO transactions (parking_lot_id, ticket_type, ticket_no, \
     ticket_key, provider_id, reference_no, entry_at, entry_event_id) \
     SELECT * FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::TEXT[], $5::BIGINT[], \
                          $6::TEXT[], $7::BIGINT[], $8::TEXT[]) \
     RETURNING id, entry_event_id";

/// PostgreSQL: a batch's exits as one statement. A stay named twice is closed once, by one of
/// them; which one is told by the exit event it kept.
const CLOSE_STAYS: &str = "UPDATE transactions t SET exit_at = r.exit_at, \
     exit_event_id = r.event_id, rate_no = r.rate_no, duration_minutes = r.duration_minutes, \
     amount_minor = r.amount_minor, currency_code = r.currency_code \
     FROM UNNEST($1::BIGINT[], $2::BIGINT[], $3::TEXT[], $4::BIGINT[], $5::BIGINT[], \
                 $6::BIGINT[], $7::TEXT[]) \
          AS r (id, exit_at, event_id, rate_no, duration_minutes, amount_minor, currency_code) \
     WHERE t.id = r.id AND t.exit_at IS NULL \
     RETURNING t.exit_event_id";

impl Batched for EntryJob {
    type Output = (i64, i64);

    fn committed(&self, &(_, seq): &(i64, i64)) {
        announce(&self.bus, &self.event, seq);
    }

    /// One transaction: the stays in one statement, in key order (two batches that insert the
    /// same vehicle wait for each other rather than deadlock), then their events in another.
    fn run_together<'a>(
        pool: &'a sqlx::PgPool,
        jobs: &'a [&'a Self],
    ) -> JobFuture<'a, Vec<(i64, i64)>> {
        Box::pin(async move {
            let mut sorted = jobs.to_vec();
            sorted.sort_by(|a, b| {
                (a.lot_id, a.ticket_type, &a.key).cmp(&(b.lot_id, b.ticket_type, &b.key))
            });
            let mut tx = pool.begin().await?;
            let stored: Vec<(i64, String)> = sqlx::query_as(INSERT_ENTRIES)
                .bind(column(&sorted, |job| job.lot_id))
                .bind(column(&sorted, |job| job.ticket_type))
                .bind(column(&sorted, |job| job.ticket_no.as_str()))
                .bind(column(&sorted, |job| job.key.as_str()))
                .bind(column(&sorted, |job| job.event.provider_id))
                .bind(column(&sorted, |job| job.reference_no.as_str()))
                .bind(column(&sorted, |job| job.entry_at))
                .bind(column(&sorted, |job| job.event.event_id.as_str()))
                .fetch_all(&mut *tx)
                .await?;
            let ids: std::collections::HashMap<String, i64> =
                stored.into_iter().map(|(id, event)| (event, id)).collect();
            let events: Vec<&QueuedEvent> = jobs.iter().map(|job| &job.event).collect();
            let origin = jobs.first().map_or("", |job| job.origin.as_str());
            let seqs = append_postgres(&mut tx, &events, origin).await?;
            tx.commit().await?;
            jobs.iter()
                .zip(seqs)
                .map(|(job, seq)| match ids.get(&job.event.event_id) {
                    Some(&id) => Ok((id, seq)),
                    None => Err(AppError::internal(anyhow::anyhow!(
                        "the entry of event {} was not stored",
                        job.event.event_id
                    ))),
                })
                .collect()
        })
    }
}

impl Batched for ExitJob {
    type Output = Option<i64>;

    fn committed(&self, seq: &Option<i64>) {
        if let Some(seq) = *seq {
            announce(&self.bus, &self.event, seq);
        }
    }

    /// One transaction: the stays closed in one statement, then the events of those that were
    /// still open in another.
    fn run_together<'a>(
        pool: &'a sqlx::PgPool,
        jobs: &'a [&'a Self],
    ) -> JobFuture<'a, Vec<Option<i64>>> {
        Box::pin(async move {
            let mut sorted = jobs.to_vec();
            sorted.sort_by_key(|job| job.stay_id);
            let mut tx = pool.begin().await?;
            let kept: std::collections::HashSet<String> = sqlx::query_scalar(CLOSE_STAYS)
                .bind(column(&sorted, |job| job.stay_id))
                .bind(column(&sorted, |job| job.at))
                .bind(column(&sorted, |job| job.event.event_id.as_str()))
                .bind(column(&sorted, |job| job.rate_no))
                .bind(column(&sorted, |job| job.duration_minutes))
                .bind(column(&sorted, |job| job.amount_minor))
                .bind(column(&sorted, |job| job.currency_code.as_str()))
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
            let closed: Vec<bool> = jobs
                .iter()
                .map(|job| kept.contains(&job.event.event_id))
                .collect();
            let events: Vec<&QueuedEvent> = jobs
                .iter()
                .zip(&closed)
                .filter(|(_, closed)| **closed)
                .map(|(job, _)| &job.event)
                .collect();
            let origin = jobs.first().map_or("", |job| job.origin.as_str());
            let mut seqs = append_postgres(&mut tx, &events, origin).await?.into_iter();
            tx.commit().await?;
            Ok(closed
                .into_iter()
                .map(|closed| if closed { seqs.next() } else { None })
                .collect())
        })
    }
}

/// Writes a new stay and its TransactionStarted event, which `bus` announces to this process's
/// subscribers once committed. Returns the stay's id.
pub async fn insert_entry(
    store: &Store,
    bus: &EventBus,
    new: &NewStay<'_>,
) -> Result<i64, AppError> {
    let job = EntryJob {
        lot_id: new.lot_id,
        ticket_type: new.vehicle.ticket_type,
        ticket_no: new.vehicle.ticket_no.clone(),
        key: new.vehicle.key.clone(),
        reference_no: new.reference_no.to_owned(),
        entry_at: to_micros(new.entry_at),
        event: QueuedEvent {
            event_id: new.event_id.to_owned(),
            provider_id: new.provider_id,
            payload: new.payload.to_owned(),
        },
        origin: store.origin().to_owned(),
        bus: bus.clone(),
    };
    let (id, _) = store.submit(job).await?;
    Ok(id)
}

/// Closes an open stay and writes its TransactionCompleted event, which `bus` announces to this
/// process's subscribers once committed. `None` when the stay was no longer open (another exit
/// won).
pub async fn close(
    store: &Store,
    bus: &EventBus,
    stay: &Stay,
    exit: &Exit,
    payload: &str,
) -> Result<Option<i64>, AppError> {
    let job = ExitJob {
        stay_id: stay.id,
        at: to_micros(exit.at),
        rate_no: exit.rate_no,
        duration_minutes: exit.duration_minutes,
        amount_minor: exit.amount_minor,
        currency_code: exit.currency_code.clone(),
        event: QueuedEvent {
            event_id: exit.event_id.clone(),
            provider_id: stay.provider_id,
            payload: payload.to_owned(),
        },
        origin: store.origin().to_owned(),
        bus: bus.clone(),
    };
    store.submit(job).await
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
