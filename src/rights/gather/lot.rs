//! Every plate allowed at a lot at an instant, for the handhelds' list of valid plates: the
//! lot's rights in one statement, in plate order, decided one plate at a time.

use futures_util::TryStreamExt;
use jiff::{SignedDuration, Timestamp};

use super::{LOT_RIGHTS_SQL, RightRow, Show, found};
use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::lots::Lot;
use crate::rights::decide;
use crate::store::lookup::LookupRow;
use crate::store::{Backend, Store};

/// Every plate (normal form, pseudonymised ones left out) that may park at `lot` at `at`,
/// grace included: the rights of the whole lot in one statement, decided plate by plate as
/// the rows arrive (in plate order), so only the plates allowed are ever held at once.
pub async fn allowed_at_lot(
    store: &Store,
    lot: &Lot,
    at: Timestamp,
    grace: SignedDuration,
) -> Result<Vec<String>, AppError> {
    let mut allowed = Allowed::new(lot.clone(), at, grace);
    let (from, until) = (to_micros(at), to_micros(allowed.since));
    match store.backend() {
        Backend::Sqlite(_) => {
            store
                .sqlite_read_blocking(move |conn| {
                    let mut statement = conn.prepare_cached(LOT_RIGHTS_SQL)?;
                    let rows = statement.query_map(
                        rusqlite::params![allowed.lot.id, from, until, from + 1],
                        RightRow::from_sqlite,
                    )?;
                    for row in rows {
                        if let Err(err) = allowed.push(row?) {
                            return Ok(Err(err));
                        }
                    }
                    Ok(allowed.finish())
                })
                .await?
        }
        Backend::Postgres(pool) => {
            let mut rows = sqlx::query_as::<_, RightRow>(LOT_RIGHTS_SQL)
                .bind(lot.id)
                .bind(from)
                .bind(until)
                .bind(from + 1)
                .fetch(pool);
            while let Some(row) = rows.try_next().await? {
                allowed.push(row)?;
            }
            allowed.finish()
        }
    }
}

/// The plates allowed at a lot, decided one plate at a time from rows in plate order.
struct Allowed {
    lot: Lot,
    at: Timestamp,
    grace: SignedDuration,
    /// When the grace period before `at` starts.
    since: Timestamp,
    /// The rows of the plate being read.
    rows: Vec<RightRow>,
    plates: Vec<String>,
}

impl Allowed {
    fn new(lot: Lot, at: Timestamp, grace: SignedDuration) -> Self {
        Self {
            lot,
            at,
            grace,
            since: at.checked_sub(grace).unwrap_or(at),
            rows: Vec::new(),
            plates: Vec::new(),
        }
    }

    fn push(&mut self, row: RightRow) -> Result<(), AppError> {
        if self
            .rows
            .first()
            .is_some_and(|first| first.plate != row.plate)
        {
            self.decide()?;
        }
        self.rows.push(row);
        Ok(())
    }

    /// Decides the plate whose rows were read last.
    fn decide(&mut self) -> Result<(), AppError> {
        let rows = std::mem::take(&mut self.rows);
        let Some(plate) = rows.first().map(|row| row.plate.clone()) else {
            return Ok(());
        };
        if plate.starts_with(crate::rights::privacy::PSEUDONYM_PREFIX) {
            return Ok(());
        }
        let found = found(rows, &self.lot, self.at, self.since, Show::StatusesOnly)?;
        if decide::verdict(&found.statuses, self.at, self.grace).allowed {
            self.plates.push(plate);
        }
        Ok(())
    }

    fn finish(mut self) -> Result<Vec<String>, AppError> {
        self.decide()?;
        Ok(self.plates)
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use super::Allowed;
    use crate::rights::gather::tests::{lot, ticket};

    #[test]
    fn a_lot_is_decided_plate_by_plate_from_rows_in_plate_order() {
        let lot = lot();
        let at: Timestamp = "2025-01-06T11:00:00Z".parse().unwrap();
        let mut allowed = Allowed::new(lot, at, SignedDuration::from_mins(5));
        let rows = [
            // an old right, then a current one: the plate is allowed
            ticket(
                "AAA111",
                "2025-01-06T08:00:00Z",
                Some("2025-01-06T09:00:00Z"),
            ),
            ticket("AAA111", "2025-01-06T10:00:00Z", None),
            // ended two minutes ago: in grace
            ticket(
                "BBB222",
                "2025-01-06T09:00:00Z",
                Some("2025-01-06T10:58:00Z"),
            ),
            // ended ten minutes ago: not allowed
            ticket(
                "CCC333",
                "2025-01-06T09:00:00Z",
                Some("2025-01-06T10:50:00Z"),
            ),
            // a pseudonymised plate never is listed
            ticket("~0123456789abcdef", "2025-01-06T10:00:00Z", None),
            // the last plate is decided when the rows end
            ticket(
                "ZZZ999",
                "2025-01-06T10:30:00Z",
                Some("2025-01-06T12:00:00Z"),
            ),
        ];
        for row in rows {
            allowed.push(row).unwrap();
        }
        assert_eq!(allowed.finish().unwrap(), ["AAA111", "BBB222", "ZZZ999"]);
    }
}
