//! Every current right, by plate, in memory: the answer to a check without a lookup in the
//! database (SQLite), kept current from `right_changes`, the plates whose rights changed in
//! commit order, written by triggers (migrations/sqlite/0006).
//!
//! A check uses the memory only when it holds everything up to the latest change committed. That
//! number is read again (`max(seq)`, where the lookup it replaces reads six tables) whenever this
//! process has written since it was last read, so what this process told a client is committed is
//! always in the answer; otherwise it serves for [`PROBE_SERVES`], the longest another process's
//! change (on the same file) can go unseen. When the memory cannot answer (still loading, behind,
//! or asked about an instant older than it keeps) the check reads the database as before and
//! wakes the task that catches the memory up.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Mutex, Notify};

use super::gather::{ALL_RIGHTS_SQL, PERMIT, PLATE_RIGHTS_SQL, RightRow, STAY, TICKET};
use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::store::{Backend, Store};

/// How often rights that ended longer ago than the memory keeps are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(15 * 60);
/// How often the memory looks for changes nobody woke it for (another process's writes).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// More changes than this behind, the memory is loaded whole again rather than plate by plate.
const MOST_PLATES_AT_ONCE: i64 = 10_000;
/// Fewer changes than this behind, a check catches the memory up itself rather than read the
/// database (unless a catch-up is under way).
const INLINE_MOST: i64 = 256;
/// The changes kept in `right_changes`: more than any instance reads plate by plate.
const CHANGES_KEPT: i64 = 100_000;
/// How often the changes beyond [`CHANGES_KEPT`] are deleted.
const FORGET_CHANGES_EVERY: Duration = Duration::from_secs(1);
/// The most changes deleted in one transaction: a few milliseconds of the writer's time, so
/// no other write (the check log's included) waits long behind it.
const FORGET_AT_ONCE: i64 = 10_000;
/// The most such transactions in one round.
const FORGET_ROUNDS: usize = 10;

/// The latest change committed (0: none yet).
pub const LATEST_CHANGE_SQL: &str = "SELECT COALESCE(MAX(seq), 0) FROM right_changes";
/// How long the latest change read for one check serves the next ones, while this process
/// writes nothing: the longest another process's change can go unseen.
const PROBE_SERVES: Duration = Duration::from_millis(10);

/// One right as the memory keeps it: only what a check shows or decides by.
#[derive(Debug, Clone, PartialEq)]
enum Right {
    Ticket {
        lot: i64,
        provider: Box<str>,
        ticket_id: Box<str>,
        start_at: i64,
        end_at: Option<i64>,
        seq: i64,
    },
    Stay {
        lot: i64,
        reference_no: Box<str>,
        entry_at: i64,
        exit_at: Option<i64>,
        seq: i64,
    },
    Permit(Box<PermitRight>),
}

#[derive(Debug, Clone, PartialEq)]
struct PermitRight {
    lot: i64,
    permit_id: Box<str>,
    definition_id: i64,
    name: Box<str>,
    time_zone: Box<str>,
    schedule: Box<str>,
    valid_from: Box<str>,
    valid_to: Box<str>,
    created_at: i64,
    starts_at: i64,
    ends_at: i64,
}

impl Right {
    fn from_row(row: RightRow) -> Option<Self> {
        Some(match row.kind {
            TICKET => Self::Ticket {
                lot: row.lot_id,
                provider: row.name.unwrap_or_default().into(),
                ticket_id: row.key.into(),
                start_at: row.start_at,
                end_at: row.end_at,
                seq: row.seq?,
            },
            STAY => Self::Stay {
                lot: row.lot_id,
                reference_no: row.key.into(),
                entry_at: row.start_at,
                exit_at: row.end_at,
                seq: row.seq?,
            },
            PERMIT => Self::Permit(Box::new(PermitRight {
                lot: row.lot_id,
                permit_id: row.key.into(),
                definition_id: row.definition_id?,
                name: row.name?.into(),
                time_zone: row.time_zone?.into(),
                schedule: row.schedule?.into(),
                valid_from: row.valid_from?.into(),
                valid_to: row.valid_to?.into(),
                created_at: row.start_at,
                starts_at: row.span_from?,
                ends_at: row.span_to?,
            })),
            _ => return None,
        })
    }

    /// The row the database would have given for `plate`.
    fn to_row(&self, plate: &str) -> RightRow {
        let row = |kind, key: &str, lot| RightRow {
            kind,
            plate: plate.to_owned(),
            key: key.to_owned(),
            name: None,
            start_at: 0,
            end_at: None,
            seq: None,
            definition_id: None,
            time_zone: None,
            schedule: None,
            valid_from: None,
            valid_to: None,
            lot_id: lot,
            span_from: None,
            span_to: None,
        };
        match self {
            Self::Ticket {
                lot,
                provider,
                ticket_id,
                start_at,
                end_at,
                seq,
            } => RightRow {
                name: Some(provider.to_string()),
                start_at: *start_at,
                end_at: *end_at,
                seq: Some(*seq),
                ..row(TICKET, ticket_id, *lot)
            },
            Self::Stay {
                lot,
                reference_no,
                entry_at,
                exit_at,
                seq,
            } => RightRow {
                start_at: *entry_at,
                end_at: *exit_at,
                seq: Some(*seq),
                ..row(STAY, reference_no, *lot)
            },
            Self::Permit(p) => RightRow {
                name: Some(p.name.to_string()),
                start_at: p.created_at,
                definition_id: Some(p.definition_id),
                time_zone: Some(p.time_zone.to_string()),
                schedule: Some(p.schedule.to_string()),
                valid_from: Some(p.valid_from.to_string()),
                valid_to: Some(p.valid_to.to_string()),
                span_from: Some(p.starts_at),
                span_to: Some(p.ends_at),
                ..row(PERMIT, &p.permit_id, p.lot)
            },
        }
    }

    /// Whether the check's statement would select this right: at `lot`, begun by `from`, not
    /// ended by `until` (the start of the grace period).
    fn applies(&self, want: i64, from: i64, until: i64) -> bool {
        match self {
            Self::Ticket {
                lot,
                start_at,
                end_at,
                ..
            }
            | Self::Stay {
                lot,
                entry_at: start_at,
                exit_at: end_at,
                ..
            } => *lot == want && *start_at <= from && end_at.is_none_or(|end| end > until),
            Self::Permit(p) => p.lot == want && p.starts_at <= from && p.ends_at > until,
        }
    }

    /// Whether it ended before `horizon` (and so no longer matters to a check the memory answers).
    fn over_before(&self, horizon: i64) -> bool {
        match self {
            Self::Ticket { end_at, .. }
            | Self::Stay {
                exit_at: end_at, ..
            } => end_at.is_some_and(|end| end <= horizon),
            Self::Permit(p) => p.ends_at <= horizon,
        }
    }
}

/// The rights of every plate, as of change `through`.
#[derive(Default)]
struct Plates {
    by_plate: HashMap<Box<str>, Box<[Right]>>,
    /// Every change up to this number is in `by_plate`.
    through: i64,
    /// Rights that ended before this instant (unix µs) may be missing.
    horizon: i64,
    loaded: bool,
}

impl Plates {
    /// Rows in the order the statement gives them (by plate, then as a check orders them).
    fn from_rows(rows: impl IntoIterator<Item = RightRow>, through: i64, horizon: i64) -> Self {
        let mut plates = Self {
            through,
            horizon,
            loaded: true,
            ..Self::default()
        };
        let mut current: Option<(String, Vec<Right>)> = None;
        for row in rows {
            if current
                .as_ref()
                .is_some_and(|(plate, _)| *plate != row.plate)
            {
                plates.put(current.take());
            }
            let (_, rights) = current.get_or_insert_with(|| (row.plate.clone(), Vec::new()));
            rights.extend(Right::from_row(row));
        }
        plates.put(current);
        plates
    }

    fn put(&mut self, plate: Option<(String, Vec<Right>)>) {
        if let Some((plate, rights)) = plate {
            if rights.is_empty() {
                self.by_plate.remove(plate.as_str());
            } else {
                self.by_plate
                    .insert(plate.into_boxed_str(), rights.into_boxed_slice());
            }
        }
    }

    fn prune(&mut self, horizon: i64) {
        self.by_plate.retain(|_, rights| {
            if rights.iter().any(|r| r.over_before(horizon)) {
                let kept: Vec<Right> = rights
                    .iter()
                    .filter(|r| !r.over_before(horizon))
                    .cloned()
                    .collect();
                *rights = kept.into_boxed_slice();
            }
            !rights.is_empty()
        });
        self.horizon = self.horizon.max(horizon);
    }
}

/// Why the memory cannot answer a check.
#[derive(Debug, PartialEq, Eq)]
enum Behind {
    /// A few changes: worth catching up at once.
    Few,
    /// Not loaded, or too far behind: the task catches up.
    Many,
    /// The instant is older than the memory keeps.
    TooOld,
}

/// The latest change as last read, with what this process had written by then.
struct Probe {
    /// The writer's loans ended (see [`crate::store::lender::Lender::loans_ended`]) before it
    /// was read.
    writes: u64,
    latest: i64,
    at: Instant,
}

/// The rights memory of one process.
#[derive(Default)]
pub struct RightsMemory {
    /// The latest change read by a check, if any.
    probe: std::sync::Mutex<Option<Probe>>,
    plates: RwLock<Plates>,
    /// One catch-up at a time, so an older read never overwrites a newer one.
    catching_up: Mutex<()>,
    wake: Notify,
    /// How far back it keeps rights that ended, in µs (see `ServeConfig::rights_memory_keep`).
    keep: AtomicI64,
    /// Checks answered from memory, and those that read the database (for `/metrics`).
    pub from_memory: Counter,
    pub from_database: Counter,
    /// Plates it holds rights for, as of its last catch-up (for `/metrics`).
    pub plates_held: Gauge,
}

impl RightsMemory {
    /// The latest change committed, as a check needs it: read again if this process has
    /// written since it was last read (`writes`: the writer's loans ended so far) or that was
    /// more than [`PROBE_SERVES`] ago (another process may have written).
    pub(super) fn latest(
        &self,
        writes: u64,
        read: impl FnOnce() -> Result<i64, AppError>,
    ) -> Result<i64, AppError> {
        if let Ok(probe) = self.probe.lock() {
            if let Some(p) = probe.as_ref() {
                if p.writes == writes && p.at.elapsed() < PROBE_SERVES {
                    return Ok(p.latest);
                }
            }
        }
        let latest = read()?;
        if let Ok(mut probe) = self.probe.lock() {
            if probe.as_ref().is_none_or(|p| p.latest <= latest) {
                *probe = Some(Probe {
                    writes,
                    latest,
                    at: Instant::now(),
                });
            }
        }
        Ok(latest)
    }

    /// The rows of `plate` at `lot` that the check's statement would give for `from` and
    /// `until` (the start of the grace period), if the memory holds every change up to `latest`
    /// (catching up first when only a few plates changed and no one else is catching up) and
    /// every right that ended after `until`; `None`: ask the database.
    pub(super) async fn rows(
        &self,
        store: &Store,
        plate: &str,
        lot: i64,
        (from, until): (i64, i64),
        latest: i64,
    ) -> Result<Option<Vec<RightRow>>, AppError> {
        let mut rows = self.current_rows(plate, lot, from, until, latest);
        if let Err(Behind::Few) = rows {
            if let Ok(_one) = self.catching_up.try_lock() {
                self.catch_up_alone(store).await?;
                rows = self.current_rows(plate, lot, from, until, latest);
            }
        }
        match rows {
            Ok(rows) => {
                self.from_memory.inc();
                Ok(Some(rows))
            }
            Err(behind) => {
                if behind != Behind::TooOld {
                    self.wake.notify_one();
                }
                self.from_database.inc();
                Ok(None)
            }
        }
    }

    fn current_rows(
        &self,
        plate: &str,
        lot: i64,
        from: i64,
        until: i64,
        latest: i64,
    ) -> Result<Vec<RightRow>, Behind> {
        let plates = self.plates.read().map_err(|_| Behind::Many)?;
        if !plates.loaded || latest - plates.through > INLINE_MOST {
            return Err(Behind::Many);
        }
        if plates.through < latest {
            return Err(Behind::Few);
        }
        if until < plates.horizon {
            return Err(Behind::TooOld);
        }
        Ok(plates
            .by_plate
            .get(plate)
            .map(|rights| {
                rights
                    .iter()
                    .filter(|r| r.applies(lot, from, until))
                    .map(|r| r.to_row(plate))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// Reads what changed since the memory was last current (or everything, the first time or
    /// when much changed) and applies it.
    pub async fn catch_up(&self, store: &Store) -> Result<(), AppError> {
        let _one = self.catching_up.lock().await;
        self.catch_up_alone(store).await
    }

    /// [`Self::catch_up`], for a caller holding `catching_up`.
    async fn catch_up_alone(&self, store: &Store) -> Result<(), AppError> {
        let (loaded, through, horizon) = match self.plates.read() {
            Ok(p) => (p.loaded, p.through, p.horizon),
            Err(_) => (false, 0, 0),
        };
        let latest = latest_change(store).await?;
        if loaded && latest <= through {
            return Ok(());
        }
        let changed = if loaded && latest - through <= MOST_PLATES_AT_ONCE {
            changed_plates(store, through, latest).await?
        } else {
            None
        };
        match changed {
            Some(plates) => {
                let rows = plate_rights(store, plates.clone(), horizon).await?;
                let mut fresh: HashMap<String, Vec<Right>> =
                    plates.into_iter().map(|p| (p, Vec::new())).collect();
                for row in rows {
                    if let Some(rights) = fresh.get_mut(&row.plate) {
                        rights.extend(Right::from_row(row));
                    }
                }
                let mut memory = self.write()?;
                for (plate, rights) in fresh {
                    memory.put(Some((plate, rights)));
                }
                memory.through = latest;
            }
            None => {
                *self.write()? = all_rights(store, latest, self.horizon()).await?;
            }
        }
        self.plates_held.set(self.plates() as i64);
        Ok(())
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Plates>, AppError> {
        self.plates
            .write()
            .map_err(|_| AppError::internal(anyhow::anyhow!("the rights memory was poisoned")))
    }

    /// Drops the rights that ended longer ago than it keeps.
    fn prune(&self) -> Result<(), AppError> {
        let horizon = self.horizon();
        self.write()?.prune(horizon);
        self.plates_held.set(self.plates() as i64);
        Ok(())
    }

    /// The instant before which it need not keep rights that ended (unix µs).
    fn horizon(&self) -> i64 {
        to_micros(Timestamp::now()).saturating_sub(self.keep.load(Ordering::Relaxed))
    }

    /// How many plates it holds a right for.
    pub fn plates(&self) -> usize {
        self.plates.read().map(|p| p.by_plate.len()).unwrap_or(0)
    }

    /// Keeps the memory current until `shutdown`: at once, whenever a check finds it behind, and
    /// every [`LOOK_EVERY`]; keeps rights that ended up to `keep` ago; drops older ones and the changes no instance needs.
    /// SQLite only: on PostgreSQL checks read the database.
    pub fn spawn(
        self: Arc<Self>,
        store: Store,
        keep: Duration,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        if !matches!(store.backend(), Backend::Sqlite(_)) {
            return;
        }
        let keep = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
        self.keep.store(keep, Ordering::Relaxed);
        tokio::spawn(async move {
            let mut pruned = tokio::time::Instant::now();
            let mut forgot = tokio::time::Instant::now();
            loop {
                if let Err(err) = self.catch_up(&store).await {
                    tracing::warn!(error = %err, "could not bring the rights memory up to date; checks read the database");
                }
                if pruned.elapsed() >= PRUNE_EVERY {
                    pruned = tokio::time::Instant::now();
                    if let Err(err) = self.prune() {
                        tracing::warn!(error = %err, "could not prune the rights memory");
                    }
                }
                if forgot.elapsed() >= FORGET_CHANGES_EVERY {
                    forgot = tokio::time::Instant::now();
                    if let Err(err) = forget_old_changes(&store).await {
                        tracing::warn!(error = %err, "could not delete old right changes");
                    }
                }
                tokio::select! {
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(LOOK_EVERY) => {}
                    _ = crate::events::bus::stopping(&mut shutdown) => return,
                }
            }
        });
    }
}

async fn latest_change(store: &Store) -> Result<i64, AppError> {
    store
        .sqlite_read_blocking(|conn| conn.query_row(LATEST_CHANGE_SQL, [], |row| row.get(0)))
        .await
}

/// The plates changed after `through` up to `latest`; `None` if everything must be read again.
async fn changed_plates(
    store: &Store,
    through: i64,
    latest: i64,
) -> Result<Option<Vec<String>>, AppError> {
    store
        .sqlite_read_blocking(move |conn| {
            let mut statement = conn
                .prepare_cached("SELECT plate FROM right_changes WHERE seq > ?1 AND seq <= ?2")?;
            let rows =
                statement.query_map([through, latest], |row| row.get::<_, Option<String>>(0))?;
            let mut plates = BTreeSet::new();
            for plate in rows {
                match plate? {
                    Some(plate) => plates.insert(plate),
                    None => return Ok(None),
                };
            }
            Ok(Some(plates.into_iter().collect()))
        })
        .await
}

/// The rights of `plates`, every lot, that ended after `horizon` (or have not).
async fn plate_rights(
    store: &Store,
    plates: Vec<String>,
    horizon: i64,
) -> Result<Vec<RightRow>, AppError> {
    store
        .sqlite_read_blocking(move |conn| {
            let mut statement = conn.prepare_cached(PLATE_RIGHTS_SQL)?;
            let mut rows = Vec::new();
            for plate in &plates {
                for row in
                    statement.query_map(rusqlite::params![plate, horizon], RightRow::from_sqlite)?
                {
                    rows.push(row?);
                }
            }
            Ok(rows)
        })
        .await
}

/// Every right that ended after `horizon` (or has not), as of change `through` or later, read
/// and kept plate by plate as the rows arrive (in plate order).
async fn all_rights(store: &Store, through: i64, horizon: i64) -> Result<Plates, AppError> {
    store
        .sqlite_read_blocking(move |conn| {
            let mut statement = conn.prepare(ALL_RIGHTS_SQL)?;
            let mut failed = None;
            let rows = statement
                .query_map([horizon], RightRow::from_sqlite)?
                .map_while(|row| row.map_err(|err| failed = Some(err)).ok());
            let plates = Plates::from_rows(rows, through, horizon);
            match failed {
                Some(err) => Err(err),
                None => Ok(plates),
            }
        })
        .await
}

/// Deletes all but the latest [`CHANGES_KEPT`] changes, [`FORGET_AT_ONCE`] at a time (a
/// million rows deleted in one transaction held the writer, and so the check log, for seconds).
async fn forget_old_changes(store: &Store) -> Result<(), AppError> {
    if let Backend::Sqlite(db) = store.backend() {
        for _ in 0..FORGET_ROUNDS {
            let mut conn = db.writer.acquire().await?;
            let deleted = sqlx::query(
                "DELETE FROM right_changes WHERE seq <= MIN( \
                     (SELECT MAX(seq) FROM right_changes) - $1, \
                     (SELECT MIN(seq) FROM right_changes) + $2)",
            )
            .bind(CHANGES_KEPT)
            .bind(FORGET_AT_ONCE - 1)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if deleted < FORGET_AT_ONCE as u64 {
                break;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(plate: &str, lot: i64, start_at: i64, end_at: Option<i64>) -> RightRow {
        RightRow {
            kind: TICKET,
            plate: plate.to_owned(),
            key: format!("t-{plate}-{start_at}"),
            name: Some("provider".to_owned()),
            start_at,
            end_at,
            seq: Some(start_at),
            definition_id: None,
            time_zone: None,
            schedule: None,
            valid_from: None,
            valid_to: None,
            lot_id: lot,
            span_from: None,
            span_to: None,
        }
    }

    fn permit(plate: &str, lot: i64, starts_at: i64, ends_at: i64) -> RightRow {
        RightRow {
            kind: PERMIT,
            definition_id: Some(7),
            name: Some("Mornings".to_owned()),
            time_zone: Some("Europe/Stockholm".to_owned()),
            schedule: Some("[]".to_owned()),
            valid_from: Some("2025-01-01".to_owned()),
            valid_to: Some("2025-12-31".to_owned()),
            seq: None,
            end_at: None,
            span_from: Some(starts_at),
            span_to: Some(ends_at),
            ..ticket(plate, lot, 1, None)
        }
    }

    fn keys(rows: &[RightRow]) -> Vec<&str> {
        rows.iter().map(|r| r.key.as_str()).collect()
    }

    fn memory(rows: Vec<RightRow>, through: i64, horizon: i64) -> RightsMemory {
        let memory = RightsMemory::default();
        *memory.plates.write().unwrap() = Plates::from_rows(rows, through, horizon);
        memory
    }

    #[test]
    fn rows_are_kept_by_plate_in_the_order_read_and_come_back_as_read() {
        let rows = vec![
            ticket("AAA111", 12, 10, Some(20)),
            ticket("AAA111", 14, 15, None),
            permit("AAA111", 12, 0, 100),
            ticket("BBB222", 12, 5, None),
        ];
        let plates = Plates::from_rows(rows, 3, 0);
        assert_eq!(plates.by_plate.len(), 2);
        assert_eq!(plates.by_plate["AAA111"].len(), 3);
        let back = plates.by_plate["AAA111"][2].to_row("AAA111");
        let original = permit("AAA111", 12, 0, 100);
        assert_eq!(
            (
                back.kind,
                back.key,
                back.schedule,
                back.span_from,
                back.span_to
            ),
            (
                original.kind,
                original.key,
                original.schedule,
                original.span_from,
                original.span_to
            )
        );
    }

    /// The edges the statement has: begun at `from` counts, ended at `until` does not; a
    /// permit's span is [starts_at, ends_at).
    #[test]
    fn a_right_applies_as_the_statement_selects_it() {
        let m = memory(
            vec![
                ticket("AAA111", 12, 10, Some(20)),
                ticket("AAA111", 14, 10, None),
                permit("AAA111", 12, 30, 40),
            ],
            1,
            0,
        );
        let rows = |from, until| {
            keys(&m.current_rows("AAA111", 12, from, until, 1).unwrap())
                .into_iter()
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(rows(10, 10), ["t-AAA111-10"]);
        assert_eq!(rows(9, 9), Vec::<String>::new());
        assert_eq!(rows(25, 19), ["t-AAA111-10"], "ended within the grace");
        assert_eq!(rows(25, 20), Vec::<String>::new());
        assert_eq!(rows(30, 30), ["t-AAA111-1"]);
        assert_eq!(rows(50, 39), ["t-AAA111-1"]);
        assert_eq!(rows(50, 40), Vec::<String>::new());
        assert!(m.current_rows("ZZZ999", 12, 10, 10, 1).unwrap().is_empty());
    }

    #[test]
    fn it_answers_only_when_current_and_keeping_the_instant() {
        let m = memory(vec![ticket("AAA111", 12, 10, Some(20))], 5, 8);
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 10, 5).map(|r| r.len()),
            Ok(1)
        );
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 10, 4).map(|r| r.len()),
            Ok(1)
        );
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 10, 6).err(),
            Some(Behind::Few)
        );
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 10, 5 + INLINE_MOST + 1)
                .err(),
            Some(Behind::Many)
        );
        assert_eq!(
            m.current_rows("AAA111", 12, 10, 7, 5).err(),
            Some(Behind::TooOld)
        );
        let empty = RightsMemory::default();
        assert_eq!(
            empty.current_rows("AAA111", 12, 10, 10, 0).err(),
            Some(Behind::Many)
        );
    }

    #[test]
    fn pruning_drops_what_ended_and_plates_left_with_nothing() {
        let mut plates = Plates::from_rows(
            vec![
                ticket("AAA111", 12, 10, Some(20)),
                ticket("AAA111", 12, 30, None),
                ticket("BBB222", 12, 10, Some(20)),
                permit("CCC333", 12, 0, 20),
                permit("DDD444", 12, 0, 21),
            ],
            1,
            0,
        );
        plates.prune(20);
        assert_eq!(plates.horizon, 20);
        let mut left: Vec<(&str, usize)> = plates
            .by_plate
            .iter()
            .map(|(plate, rights)| (&**plate, rights.len()))
            .collect();
        left.sort();
        assert_eq!(left, [("AAA111", 1), ("DDD444", 1)]);
    }

    #[test]
    fn the_latest_change_is_read_again_after_this_process_writes_or_a_while() {
        let memory = RightsMemory::default();
        let reads = std::cell::Cell::new(0);
        let read = |value: i64| {
            let reads = &reads;
            move || {
                reads.set(reads.get() + 1);
                Ok(value)
            }
        };
        assert_eq!(memory.latest(1, read(5)).unwrap(), 5);
        assert_eq!(
            memory.latest(1, read(6)).unwrap(),
            5,
            "served from the last read"
        );
        assert_eq!(reads.get(), 1);
        assert_eq!(memory.latest(2, read(7)).unwrap(), 7, "this process wrote");
        std::thread::sleep(PROBE_SERVES);
        assert_eq!(memory.latest(2, read(8)).unwrap(), 8, "another may have");
        assert_eq!(reads.get(), 3);
    }

    #[test]
    fn a_plate_read_again_with_nothing_left_is_forgotten() {
        let mut plates = Plates::from_rows(vec![ticket("AAA111", 12, 10, None)], 1, 0);
        plates.put(Some(("AAA111".to_owned(), Vec::new())));
        assert!(plates.by_plate.is_empty());
    }
}
