//! The rights memory's reads and writes of the database: the latest change, the plates changed
//! since and the deletion of changes no instance needs (SQLite; PostgreSQL reads them by
//! transaction, see [`super::poll`]), and the rights of some plates or everyone's (both).

use std::collections::{BTreeSet, HashMap};

use futures_util::TryStreamExt;

use super::plates::{Building, Plates, Right};
use crate::http::AppError;
use crate::rights::gather::{ALL_RIGHTS_SQL, PLATE_RIGHTS_SQL, PLATES_RIGHTS_SQL, RightRow};
use crate::store::{Backend, Store};

/// The latest change committed (0: none yet).
pub(super) const LATEST_CHANGE_SQL: &str = "SELECT COALESCE(MAX(seq), 0) FROM right_changes";
/// The changes kept in `right_changes`: more than any instance reads plate by plate.
const CHANGES_KEPT: i64 = 100_000;
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

/// The plates changed after `through` up to `latest`; `None` if everything must be read again.
pub(super) async fn changed_plates(
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
    let mut read: HashMap<String, Vec<Right>> = HashMap::with_capacity(plates.len());
    {
        let mut rows = sqlx::query_as::<_, RightRow>(PLATES_RIGHTS_SQL)
            .bind(&plates)
            .bind(horizon)
            .fetch(pool);
        while let Some(row) = rows.try_next().await? {
            let rights = read.entry(row.plate.clone()).or_default();
            rights.extend(Right::from_row(row));
        }
    }
    Ok(plates
        .into_iter()
        .map(|plate| {
            let rights = read.remove(&plate).unwrap_or_default();
            (plate, rights)
        })
        .collect())
}

/// The rights of `plate`, every lot, that ended after `horizon` (or have not): on SQLite read
/// where it is asked, as a check's lookup is.
pub(super) async fn one_plate_rights(
    store: &Store,
    plate: &str,
    horizon: i64,
) -> Result<Vec<Right>, AppError> {
    match store.backend() {
        Backend::Sqlite(db) => db
            .inline
            .read(|conn| sqlite_rights_of(conn, plate, horizon)),
        Backend::Postgres(pool) => {
            let rows: Vec<RightRow> = sqlx::query_as(PLATE_RIGHTS_SQL)
                .bind(plate)
                .bind(horizon)
                .fetch_all(pool)
                .await?;
            Ok(rows.into_iter().filter_map(Right::from_row).collect())
        }
    }
}

/// [`one_plate_rights`] on an SQLite connection.
fn sqlite_rights_of(
    conn: &rusqlite::Connection,
    plate: &str,
    horizon: i64,
) -> rusqlite::Result<Vec<Right>> {
    let mut rights = Vec::new();
    let mut statement = conn.prepare_cached(PLATE_RIGHTS_SQL)?;
    for row in statement.query_map(rusqlite::params![plate, horizon], RightRow::from_sqlite)? {
        rights.extend(Right::from_row(row?));
    }
    Ok(rights)
}

async fn sqlite_plate_rights(
    store: &Store,
    plates: Vec<String>,
    horizon: i64,
) -> Result<Vec<(String, Vec<Right>)>, AppError> {
    store
        .sqlite_read_blocking(move |conn| {
            // One read transaction for them all. Each statement on its own would begin a read
            // of its own, and SQLite empties a connection's page cache whenever a read begins
            // after another connection's commit: under a stream of writes every plate read
            // its index pages from the file again (4 preads a ticket in ticket-ingest).
            let snapshot = conn.unchecked_transaction()?;
            let mut read = Vec::with_capacity(plates.len());
            for plate in plates {
                let rights = sqlite_rights_of(&snapshot, &plate, horizon)?;
                read.push((plate, rights));
            }
            snapshot.finish()?;
            Ok(read)
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
