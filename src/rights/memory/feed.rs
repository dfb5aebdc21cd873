//! The rights memory's reads and writes of the database: the latest change, the plates changed
//! since and the deletion of changes no instance needs (SQLite; PostgreSQL reads them by
//! transaction, see [`super::poll`]), and the rights of some plates or everyone's (both).

use std::collections::HashMap;

use futures_util::TryStreamExt;

use super::changes::{Gathering, NewTicket, PlateChanges};
use super::plates::{Building, Plates};
use super::right::Right;
use crate::http::AppError;
use crate::rights::gather::{
    ALL_RIGHTS_SQL, PLATE_RIGHTS_SQL, PLATES_RIGHTS_SQL, RightRow, SQLITE_PLATES_RIGHTS_SQL,
};
use crate::store::lookup::{self, LookupRow};
use crate::store::{Backend, Param, Store};

/// The latest change committed (0: none yet).
pub(super) const LATEST_CHANGE_SQL: &str = "SELECT COALESCE(MAX(seq), 0) FROM right_changes";
/// The changes kept in `right_changes`: more than any instance reads plate by plate
/// (`MOST_PLATES_AT_ONCE`), so the changes a catch-up reads are still there.
const CHANGES_KEPT: i64 = 200_000;
/// The most changes deleted in one transaction: a few milliseconds of the writer's time, so
/// no other write (the check log's included) waits long behind it.
const FORGET_AT_ONCE: i64 = 10_000;
/// The most such transactions in one round.
const FORGET_ROUNDS: usize = 10;

/// The latest change committed, read on a blocking thread.
pub(super) async fn latest_change(store: &Store) -> Result<i64, AppError> {
    store
        .sqlite_read_blocking(|conn| conn.query_row(LATEST_CHANGE_SQL, [], |row| row.get(0)))
        .await
}

/// The changes after `through` up to `latest`, each with the ticket it inserted as it is now
/// (read by its key), if that is what it did.
const CHANGES_SQL: &str = "SELECT c.plate, c.ticket, t.license_norm, t.status, t.ticket_id, \
            pr.name, t.start_at, t.end_at, t.parking_lot_id \
       FROM right_changes c \
       LEFT JOIN tickets t ON t.id = c.ticket \
       LEFT JOIN principals pr ON pr.id = t.provider_id \
      WHERE c.seq > ?1 AND c.seq <= ?2";

/// The plates changed after `through` up to `latest`; `None` if everything must be read again:
/// a change shared by many plates, or changes after `through` deleted already (another
/// process's deletion may run ahead of this process's memory). Changes are deleted oldest
/// first, so the oldest kept tells, read in the same transaction as the plates. A plate whose
/// only changes inserted tickets still there, still of the plate and active, gets those
/// tickets to add (as read now: a later change to one is read by a later catch-up); any other
/// change has the plate read again.
pub(super) async fn changed_plates(
    store: &Store,
    through: i64,
    latest: i64,
) -> Result<Option<PlateChanges>, AppError> {
    store
        .sqlite_read_blocking(move |conn| {
            let read = conn.unchecked_transaction()?;
            let oldest: Option<i64> =
                read.query_row("SELECT MIN(seq) FROM right_changes", [], |row| row.get(0))?;
            if oldest.is_none_or(|oldest| oldest > through + 1) {
                return Ok(None);
            }
            let mut statement = read.prepare_cached(CHANGES_SQL)?;
            let mut rows = statement.query([through, latest])?;
            let mut gathering = Gathering::default();
            while let Some(row) = rows.next()? {
                let ticket = NewTicket {
                    ticket: row.get(1)?,
                    now_of: row.get(2)?,
                    status: row.get(3)?,
                    ticket_id: row.get(4)?,
                    provider: row.get(5)?,
                    start_at: row.get(6)?,
                    end_at: row.get(7)?,
                    lot: row.get(8)?,
                };
                if !gathering.push(row.get(0)?, ticket) {
                    return Ok(None);
                }
            }
            Ok(Some(gathering.finish()))
        })
        .await
}

/// The rights of each of `plates`, every lot, that ended after `horizon` (or have not).
pub(super) async fn plate_rights(
    store: &Store,
    plates: Vec<String>,
    horizon: i64,
) -> Result<Vec<(String, Vec<Right>)>, AppError> {
    let pool = match store.backend() {
        Backend::Sqlite(_) => return sqlite_plate_rights(store, plates, horizon).await,
        Backend::Postgres(pool) => pool,
    };
    // One statement for all of them, one round trip.
    let mut read = ByPlate::new(plates.len());
    {
        let mut rows = sqlx::query_as::<_, RightRow>(PLATES_RIGHTS_SQL)
            .bind(&plates)
            .bind(horizon)
            .fetch(pool);
        while let Some(row) = rows.try_next().await? {
            read.push(row);
        }
    }
    Ok(read.of(plates))
}

/// Rights rows gathered by plate, each plate's in the order the statement gave them.
struct ByPlate(HashMap<String, Vec<Right>>);

impl ByPlate {
    fn new(plates: usize) -> Self {
        Self(HashMap::with_capacity(plates))
    }

    fn push(&mut self, row: RightRow) {
        let rights = self.0.entry(row.plate.clone()).or_default();
        rights.extend(Right::from_row(row));
    }

    /// Each of `plates` with its rights (none if no row named it).
    fn of(mut self, plates: Vec<String>) -> Vec<(String, Vec<Right>)> {
        plates
            .into_iter()
            .map(|plate| {
                let rights = self.0.remove(&plate).unwrap_or_default();
                (plate, rights)
            })
            .collect()
    }
}

/// The rights of `plate`, every lot, that ended after `horizon` (or have not): on SQLite read
/// where it is asked, as a check's lookup is.
pub(super) async fn one_plate_rights(
    store: &Store,
    plate: &str,
    horizon: i64,
) -> Result<Vec<Right>, AppError> {
    let rows: Vec<RightRow> = lookup::all(
        store,
        PLATE_RIGHTS_SQL,
        &[Param::Text(plate), Param::Int(horizon)],
    )
    .await?;
    Ok(rows.into_iter().filter_map(Right::from_row).collect())
}

async fn sqlite_plate_rights(
    store: &Store,
    plates: Vec<String>,
    horizon: i64,
) -> Result<Vec<(String, Vec<Right>)>, AppError> {
    store
        .sqlite_read_blocking(move |conn| {
            // One statement for them all, so one read transaction too: a read per plate
            // began again after each commit, and SQLite empties a connection's page cache
            // whenever a read begins after another connection's commit (4 preads a ticket in
            // ticket-ingest when each plate was a statement of its own).
            let asked = serde_json::to_string(&plates)
                .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
            let mut read = ByPlate::new(plates.len());
            let mut statement = conn.prepare_cached(SQLITE_PLATES_RIGHTS_SQL)?;
            let rows =
                statement.query_map(rusqlite::params![asked, horizon], RightRow::from_sqlite)?;
            for row in rows {
                read.push(row?);
            }
            Ok(read.of(plates))
        })
        .await
}

/// Every right that ended after `horizon` (or has not), as of change `through` or later, read
/// and kept plate by plate as the rows arrive (in plate order).
pub(super) async fn all_rights(
    store: &Store,
    through: i64,
    horizon: i64,
) -> Result<Plates, AppError> {
    let pool = match store.backend() {
        Backend::Sqlite(_) => return sqlite_all_rights(store, through, horizon).await,
        Backend::Postgres(pool) => pool,
    };
    let mut building = Building::new(through, horizon);
    let mut rows = sqlx::query_as::<_, RightRow>(ALL_RIGHTS_SQL)
        .bind(horizon)
        .fetch(pool);
    while let Some(row) = rows.try_next().await? {
        building.push(row);
    }
    Ok(building.finish())
}

async fn sqlite_all_rights(store: &Store, through: i64, horizon: i64) -> Result<Plates, AppError> {
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
pub(super) async fn forget_old_changes(store: &Store) -> Result<(), AppError> {
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
pub(super) mod tests {
    use super::*;
    use crate::store::StoreOptions;

    /// Tickets and stays of a few plates, written straight into the tables.
    pub(in crate::rights::memory) async fn store_with_rights(url: &str) -> Store {
        let store = Store::connect(url, &StoreOptions::default())
            .await
            .expect("connect");
        store.migrate().await.expect("migrate");
        let statements = [
            "INSERT INTO principals (id, role, name, all_lots, created_at) \
             VALUES (901, 'provider', 'easypark', TRUE, 0)",
            "INSERT INTO parking_lots (id, name, zone_code, time_zone, created_at, updated_at, \
                 grace_minutes) VALUES (912, 'a', 1, 'Europe/Stockholm', 0, 0, 0), \
                 (913, 'b', 1, 'Europe/Stockholm', 0, 0, 0)",
            "INSERT INTO tickets (provider_id, ticket_id, parking_lot_id, license_raw, \
                 license_norm, start_at, end_at, status, created_at, updated_at) VALUES \
                 (901, 'a-1', 912, 'AAA1', 'AAA1', 100, 500, 'active', 0, 0), \
                 (901, 'a-2', 913, 'AAA1', 'AAA1', 50, NULL, 'active', 0, 0), \
                 (901, 'a-old', 912, 'AAA1', 'AAA1', 10, 20, 'active', 0, 0), \
                 (901, 'b-1', 912, 'BBB2', 'BBB2', 100, 500, 'canceled', 0, 0), \
                 (901, 'c-1', 913, 'CCC3', 'CCC3', 300, 900, 'active', 0, 0)",
            "INSERT INTO transactions (parking_lot_id, ticket_type, ticket_no, ticket_key, \
                 reference_no, entry_at, entry_event_id, exit_at) VALUES \
                 (912, 4, 'CCC 3', 'CCC3', 'r-1', 200, 'e-1', NULL), \
                 (913, 4, 'DDD4', 'DDD4', 'r-2', 150, 'e-2', 700)",
        ];
        let Backend::Sqlite(db) = store.backend() else {
            panic!("an SQLite store");
        };
        let mut writer = db.writer.acquire().await.expect("the writer");
        for statement in statements {
            sqlx::query(statement)
                .execute(&mut *writer)
                .await
                .expect(statement);
        }
        drop(writer);
        store
    }

    async fn read_together_as_each_alone(url: &str) {
        let store = store_with_rights(url).await;
        let plates: Vec<String> = ["AAA1", "BBB2", "CCC3", "DDD4", "NONE9"]
            .map(String::from)
            .to_vec();
        let horizon = 30;
        let together = plate_rights(&store, plates.clone(), horizon)
            .await
            .expect("together");
        let asked: Vec<&str> = together.iter().map(|(plate, _)| plate.as_str()).collect();
        assert_eq!(asked, plates, "each plate once, in the order asked");
        for (plate, rights) in &together {
            let alone = one_plate_rights(&store, plate, horizon)
                .await
                .expect("alone");
            assert_eq!(rights, &alone, "{plate}");
        }
        let count = |plate: &str| {
            together
                .iter()
                .find(|(p, _)| p == plate)
                .map(|(_, r)| r.len())
        };
        // AAA1: two tickets (the one that ended before the horizon is not kept), BBB2: its
        // only ticket is canceled, CCC3: a ticket and a stay, DDD4: a stay, NONE9: nothing.
        assert_eq!(
            ["AAA1", "BBB2", "CCC3", "DDD4", "NONE9"].map(count),
            [Some(2), Some(0), Some(2), Some(1), Some(0)]
        );
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changes_deleted_before_they_were_read_mean_everything_is_read_again() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("rights.db").display());
        let store = store_with_rights(&url).await;
        let latest = latest_change(&store).await.expect("the latest change");
        // Five tickets and two stays of plates AAA1, BBB2, CCC3 and DDD4: changes 1-7.
        assert_eq!(latest, 7);
        let store = &store;
        let changed = |through| async move {
            changed_plates(store, through, latest)
                .await
                .expect("read")
                .map(|c| {
                    let added: Vec<(String, usize)> =
                        c.added.into_iter().map(|(p, r)| (p, r.len())).collect();
                    (c.forget, added)
                })
        };
        let plates = |list: &[&str]| list.iter().map(|p| p.to_string()).collect::<Vec<_>>();
        // AAA1 only got new tickets: they are added. BBB2's is canceled, CCC3 got a stay too,
        // DDD4 only a stay: read again.
        let all = (
            plates(&["BBB2", "CCC3", "DDD4"]),
            vec![("AAA1".to_owned(), 3)],
        );
        assert_eq!(changed(0).await, Some(all));
        let from_5 = (plates(&["CCC3", "DDD4"]), Vec::new());
        assert_eq!(changed(4).await, Some(from_5.clone()));
        // Another process deletes the oldest changes, up to change 4.
        let Backend::Sqlite(db) = store.backend() else {
            panic!("an SQLite store");
        };
        sqlx::query("DELETE FROM right_changes WHERE seq <= 4")
            .execute(&db.writer)
            .await
            .expect("delete");
        assert_eq!(changed(4).await, Some(from_5));
        assert_eq!(changed(3).await, None, "change 4 is gone");
        assert_eq!(changed(0).await, None);
        store.close().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn plates_read_together_have_the_rights_each_has_alone_sqlite() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("rights.db").display());
        read_together_as_each_alone(&url).await;
    }
}
