//! Every current right, by plate, in memory: the answer to a check without a lookup in the
//! database, kept current from the plates whose rights changed, which triggers record (SQLite:
//! the table `right_changes`, in commit order, migrations/sqlite/0006; PostgreSQL: the same
//! table by transaction, read by [`poll`], migrations/postgres/0006). A plate whose rights
//! changed is forgotten, and read again by the first check that asks for it (or by the task,
//! once many are), so a write costs the memory no read; a new ticket, whose change
//! names it (migrations/*/0008), is added to what the memory holds of its plate instead, read
//! by its key with the change, so ingest does not have every plate read again.
//!
//! A check uses the memory only when it holds every change committed that it must see: every
//! change this process told a client was committed, and another's within moments. On SQLite the
//! latest change (`max(seq)`, where the lookup it replaces reads six tables) is read again
//! whenever this process has written since it was last read; otherwise it serves for
//! [`PROBE_SERVES`], the longest another process's change (on the same file) can go unseen. On
//! PostgreSQL the memory must have applied a poll that began after this process's latest write
//! and no more than [`POLL_SERVES`] ago (a check polls, one at a time, when there is none; the
//! task polls ahead while checks arrive, so they seldom wait). When the memory cannot answer
//! (still loading, behind, or asked about an instant older than it keeps) the check reads the
//! database as before and wakes the task that catches the memory up ([`catch_up`]).

mod catch_up;
mod changes;
mod feed;
mod plates;
mod poll;
mod right;

use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{Mutex, Notify};

use self::feed::one_plate_rights;
use self::plates::{Plates, Unknown, rows_at};
use self::poll::Polls;
use super::gather::RightRow;
use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::store::{Backend, Store};

/// How often rights that ended longer ago than the memory keeps are dropped.
const PRUNE_EVERY: Duration = Duration::from_secs(15 * 60);
/// How often the memory looks for changes nobody woke it for (another process's writes).
const LOOK_EVERY: Duration = Duration::from_secs(1);
/// PostgreSQL, while checks arrive: how often the task polls, so a check seldom finds the
/// latest poll older than [`POLL_SERVES`] and waits for one of its own.
const POLL_AHEAD_EVERY: Duration = Duration::from_millis(20);
/// More changes than this behind, the memory is loaded whole again rather than plate by plate.
/// Forgetting a plate costs next to nothing and a whole load of a million plates seconds, so
/// this is well above what one look finds during a burst of writes: at 10,000, tickets
/// ingested at 15,000-20,000 a second between two looks (one a second, when no check asks)
/// had the memory loaded whole again and again, and ingest into a database of a million
/// rights ran at two thirds of the rate into an empty one (BENCHMARKS.md). On SQLite, less
/// than the changes `right_changes` keeps (`feed::CHANGES_KEPT`).
const MOST_PLATES_AT_ONCE: i64 = 100_000;
/// Fewer changes than this behind, a check catches the memory up itself rather than read the
/// database (unless a catch-up is under way).
const INLINE_MOST: i64 = 256;
/// More plates than this whose rights changed unread, the task reads them again (fewer: the
/// checks that ask for them do, and the task every [`PRUNE_EVERY`], or once a look finds
/// nothing new and more than [`QUIET_REFILL_ABOVE`] are left).
const REFILL_ABOVE: usize = 50_000;
/// More plates than this left to read again when the writes have quieted down (a burst or a
/// bulk load is over), the task reads them all: each would otherwise send a check to the
/// database. Fewer are left to the checks that ask.
const QUIET_REFILL_ABOVE: usize = 1_000;
/// More plates than this to read again after a catch-up, it loads everything instead: a
/// bulk load of a million rights arriving as many small catch-ups (PostgreSQL polls found
/// 40,000 plates a second of the benchmark's preload) would otherwise leave most plates to
/// be read one batch at a time, and checks reading the database meanwhile.
const MOST_UNKNOWN: usize = 2 * REFILL_ABOVE;
/// Plates read again in one statement (PostgreSQL) or one blocking read (SQLite).
const REFILL_AT_ONCE: usize = 5_000;
/// How often the changes no instance needs are deleted.
const FORGET_CHANGES_EVERY: Duration = Duration::from_secs(1);

/// How long the latest change read for one check serves the next ones, while this process
/// writes nothing: the longest another process's change can go unseen.
const PROBE_SERVES: Duration = Duration::from_millis(10);
/// PostgreSQL: how long a poll serves checks, the longest another instance's change can go
/// unseen. Longer than [`PROBE_SERVES`]: a poll is a round trip to a server busy with the
/// checks' own load, and checks that find it too old wait for the next (with a bound of 10 ms
/// the benchmark's checks at half rate had a p99 in the service of 6.4-12.8 ms).
const POLL_SERVES: Duration = Duration::from_millis(100);

/// Why the memory cannot answer a check.
#[derive(Debug, PartialEq, Eq)]
enum Behind {
    /// A few changes: worth catching up at once.
    Few,
    /// Not loaded, or too far behind: the task catches up.
    Many,
    /// The instant is older than the memory keeps.
    TooOld,
    /// The plate's rights changed since they were read.
    Unknown(Unknown),
}

/// What a catch-up may read.
#[derive(PartialEq, Eq)]
enum Reading {
    /// A check's: the rights of a few plates, no more.
    PlatesOnly,
    /// The task's: everything, if that is what changed.
    Anything,
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
    /// SQLite: the latest change read by a check, if any.
    probe: std::sync::Mutex<Option<Probe>>,
    /// PostgreSQL: what the polls found.
    polls: Polls,
    /// PostgreSQL: one poll at a time, so their snapshots follow one another.
    polling: Mutex<()>,
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
    /// Plates whose rights changed and are not read again yet (for `/metrics`).
    pub plates_unknown: Gauge,
    /// Times it was loaded whole: the first time, after much changed, or when changes shared
    /// by many plates were (for `/metrics`).
    pub loads: Counter,
}

impl RightsMemory {
    /// The latest change committed, as a check needs it: read again (by `read`) if this
    /// process has written since it was last read (`writes`: the writer's loans ended so far)
    /// or that was more than [`PROBE_SERVES`] ago (another process may have written).
    fn latest(
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
    /// `until` (the start of the grace period), if the memory holds every change committed
    /// (catching up first when only a few plates changed and no one else is catching up) and
    /// every right that ended after `until`; `None`: ask the database.
    pub(super) async fn rows(
        &self,
        store: &Store,
        plate: &str,
        lot: i64,
        (from, until): (i64, i64),
    ) -> Result<Option<Vec<RightRow>>, AppError> {
        let latest = match store.backend() {
            Backend::Sqlite(db) => self.latest(db.writer.loans_ended(), || {
                db.inline.read(|conn| {
                    conn.prepare_cached(feed::LATEST_CHANGE_SQL)?
                        .query_row([], |row| row.get(0))
                })
            })?,
            Backend::Postgres(pool) => self.polled(store, pool).await?,
        };
        let mut rows = self.current_rows(plate, lot, from, until, latest);
        if let Err(Behind::Few) = rows {
            if let Ok(_one) = self.catching_up.try_lock() {
                self.catch_up_alone(store, Reading::PlatesOnly).await?;
                rows = self.current_rows(plate, lot, from, until, latest);
            }
        }
        match rows {
            Ok(rows) => {
                self.from_memory.inc();
                Ok(Some(rows))
            }
            Err(Behind::Unknown(mark)) => {
                self.from_database.inc();
                self.read_plate(store, plate, mark, lot, (from, until))
                    .await
                    .map(Some)
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
        plates
            .rows_at(plate, lot, from, until)
            .map_err(Behind::Unknown)
    }

    /// Reads the rights of `plate`, which changed (`mark`) since they were read, keeps them
    /// (unless it changed again meanwhile) and answers the check from them.
    async fn read_plate(
        &self,
        store: &Store,
        plate: &str,
        mark: Unknown,
        lot: i64,
        (from, until): (i64, i64),
    ) -> Result<Vec<RightRow>, AppError> {
        let horizon = self.plates.read().map(|p| p.horizon).unwrap_or(0);
        let rights = one_plate_rights(store, plate, horizon).await?;
        let rows = rows_at(&rights, plate, lot, from, until);
        let mut memory = self.write()?;
        if memory.put_if_unchanged(plate, mark, rights) {
            self.counted(&memory);
        }
        Ok(rows)
    }

    fn write(&self) -> Result<std::sync::RwLockWriteGuard<'_, Plates>, AppError> {
        self.plates
            .write()
            .map_err(|_| AppError::internal(anyhow::anyhow!("the rights memory was poisoned")))
    }

    /// The change (SQLite) or poll (PostgreSQL) it is current through.
    fn through(&self) -> Option<i64> {
        self.plates.read().ok().map(|memory| memory.through)
    }

    /// Plates it is to read again.
    fn unknown_len(&self) -> usize {
        self.plates.read().map_or(0, |memory| memory.unknown_len())
    }

    /// Drops the rights that ended longer ago than it keeps.
    fn prune(&self) -> Result<(), AppError> {
        let horizon = self.horizon();
        self.write()?.prune(horizon);
        self.count();
        Ok(())
    }

    /// The instant before which it need not keep rights that ended (unix µs).
    fn horizon(&self) -> i64 {
        to_micros(Timestamp::now()).saturating_sub(self.keep.load(Ordering::Relaxed))
    }

    /// Shows in `/metrics` how many plates `memory` holds and how many it is to read again.
    fn counted(&self, memory: &Plates) {
        self.plates_held.set(memory.len() as i64);
        self.plates_unknown.set(memory.unknown_len() as i64);
    }

    /// [`Self::counted`] of what it holds now.
    fn count(&self) {
        if let Ok(memory) = self.plates.read() {
            self.counted(&memory);
        }
    }

    /// PostgreSQL: the polls the memory must have applied to answer a check now: the latest
    /// poll's, if it began after this process's latest write and less than [`POLL_SERVES`]
    /// ago; otherwise this one's (waiting for a poll under way, which may serve: reading the
    /// database instead, when polls are slow, slowed them more, until checks took seconds).
    async fn polled(&self, store: &Store, pool: &sqlx::PgPool) -> Result<i64, AppError> {
        let writes = store.writes_committed();
        if let Some(latest) = self.polls.latest(writes, POLL_SERVES) {
            return Ok(latest);
        }
        let _one = self.polling.lock().await;
        if let Some(latest) = self.polls.latest(writes, POLL_SERVES) {
            return Ok(latest);
        }
        let writes = store.writes_committed();
        poll::poll(pool, &self.polls, writes, MOST_PLATES_AT_ONCE as usize).await
    }
}

#[cfg(test)]
mod tests {
    use super::feed::tests::store_with_rights;
    use super::plates::tests::ticket;
    use super::*;

    fn memory(rows: Vec<RightRow>, through: i64, horizon: i64) -> RightsMemory {
        let memory = RightsMemory::default();
        *memory.plates.write().unwrap() = Plates::from_rows(rows, through, horizon);
        memory
    }

    /// Open stays of plates `BULK{first}` … `BULK{last}` (and their changes), in one statement:
    /// changes that have the memory read their plates again.
    async fn bulk_of_stays(store: &Store, first: i64, last: i64) {
        let bulk = format!(
            "WITH RECURSIVE n (i) AS (SELECT {first} UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
             INSERT INTO transactions (parking_lot_id, ticket_type, ticket_no, ticket_key, \
                 reference_no, entry_at, entry_event_id, exit_at) \
             SELECT 912, 4, 'BULK' || i, 'BULK' || i, 'r-bulk-' || i, 0, 'e-bulk-' || i, NULL \
               FROM n"
        );
        write(store, &[&bulk]).await;
    }

    /// Runs each of `statements` on the writer.
    async fn write(store: &Store, statements: &[&str]) {
        let Backend::Sqlite(db) = store.backend() else {
            panic!("an SQLite store");
        };
        for statement in statements {
            sqlx::query(statement)
                .execute(&db.writer)
                .await
                .expect(statement);
        }
    }

    /// Kind, key, span and row of every right of `plate` at `lot`, as a check would list them.
    type Listed = Vec<(i32, String, i64, Option<i64>, Option<i64>)>;

    fn listed(rows: Vec<RightRow>) -> Listed {
        rows.into_iter()
            .map(|r| (r.kind, r.key, r.start_at, r.end_at, r.seq))
            .collect()
    }

    /// What the memory holds of `plate` at `lot` and what the database has, every right.
    async fn held_and_stored(
        memory: &RightsMemory,
        store: &Store,
        plate: &str,
        lot: i64,
    ) -> (Listed, Listed) {
        let all = (i64::MAX - 1, i64::MIN + 1);
        let held = memory
            .plates
            .read()
            .expect("the memory")
            .rows_at(plate, lot, all.0, all.1)
            .expect("known");
        let stored = one_plate_rights(store, plate, i64::MIN)
            .await
            .expect("read");
        (
            listed(held),
            listed(rows_at(&stored, plate, lot, all.0, all.1)),
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn new_tickets_are_added_to_what_it_holds_and_other_changes_forget_the_plate() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("rights.db").display());
        let store = store_with_rights(&url).await;
        let memory = RightsMemory::default();
        memory.keep.store(i64::MAX, Ordering::Relaxed);
        memory.catch_up(&store).await.expect("the first load");
        // CCC3 changed; a check reads it again after a new ticket of it was committed, before
        // the memory catches up with that ticket's change.
        memory
            .write()
            .expect("the memory")
            .forget("CCC3".to_owned());
        let insert = |id: &str, lot: i64, plate: &str, start: i64, end: &str| {
            format!(
                "INSERT INTO tickets (provider_id, ticket_id, parking_lot_id, license_raw, \
                     license_norm, start_at, end_at, status, created_at, updated_at) \
                 VALUES (901, '{id}', {lot}, '{plate}', '{plate}', {start}, {end}, 'active', 0, 0)"
            )
        };
        write(
            &store,
            &[
                // Before AAA1's ticket from 100 at lot 912, and after its stay-less others.
                &insert("a-3", 912, "AAA1", 60, "NULL"),
                &insert("a-4", 912, "AAA1", 100, "900"),
                &insert("n-1", 913, "NEW5", 10, "NULL"),
                &insert("c-2", 912, "CCC3", 250, "NULL"),
                // Canceled, or deleted, after it was made: read again.
                &insert("b-2", 912, "BBB2", 100, "NULL"),
                "UPDATE tickets SET status = 'canceled' WHERE ticket_id = 'b-2'",
                &insert("e-1", 912, "EEE5", 100, "NULL"),
                "DELETE FROM tickets WHERE ticket_id = 'e-1'",
            ],
        )
        .await;
        let Err(mark) = memory
            .plates
            .read()
            .expect("the memory")
            .rows_at("CCC3", 912, 0, 0)
        else {
            panic!("CCC3 is known");
        };
        memory
            .read_plate(&store, "CCC3", mark, 912, (0, 0))
            .await
            .expect("the check's read");
        memory.catch_up(&store).await.expect("a catch-up");
        let mut unknown: Vec<String> = memory
            .plates
            .read()
            .expect("the memory")
            .some_unknown(10)
            .into_iter()
            .map(|(plate, _)| plate)
            .collect();
        unknown.sort();
        assert_eq!(unknown, ["BBB2", "EEE5"]);
        for (plate, lot, count) in [("AAA1", 912, 4), ("NEW5", 913, 1), ("CCC3", 912, 2)] {
            let (held, stored) = held_and_stored(&memory, &store, plate, lot).await;
            assert_eq!(held, stored, "{plate} at {lot}");
            assert_eq!(held.len(), count, "{plate} at {lot}: {held:?}");
        }
        assert_eq!(memory.loads.get(), 1, "not loaded whole again");
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_are_taken_in_plate_by_plate_until_too_many_plates_are_left_to_read() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("rights.db").display());
        // Provider 901 and lot 912, and rights of AAA1 and CCC3 that have not ended.
        let store = store_with_rights(&url).await;
        let memory = RightsMemory::default();
        memory.catch_up(&store).await.expect("the first load");
        assert_eq!(memory.loads.get(), 1);
        {
            let mut plates = memory.write().expect("the memory");
            for i in 0..10_000 {
                plates.forget(format!("ASKED{i}"));
            }
        }
        // 50,000 changes, 60,000 plates to read again: plate by plate.
        bulk_of_stays(&store, 1, 50_000).await;
        memory.catch_up(&store).await.expect("a catch-up");
        assert_eq!((memory.loads.get(), memory.unknown_len()), (1, 60_000));
        // 50,000 more would leave 110,000: everything is read again instead.
        bulk_of_stays(&store, 50_001, 100_000).await;
        memory.catch_up(&store).await.expect("a catch-up");
        assert_eq!((memory.loads.get(), memory.unknown_len()), (2, 0));
        let held = memory.plates.read().expect("the memory").len();
        assert_eq!(held, 100_000 + 2, "every bulk plate, and AAA1 and CCC3");
        store.close().await;
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
}
