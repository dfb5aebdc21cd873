//! Finding every right a plate holds at a lot around an instant: tickets, permits and open
//! car-park stays, each by an indexed lookup on the plate's normal form and the lot; and the
//! same for every plate of a lot at once, for the handhelds' list of valid plates ([`lot`]).

mod lot;

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::decide::{self, Status, Verdict};
use crate::domain::time::{from_micros, to_micros};
use crate::http::AppError;
use crate::lots::Lot;
use crate::permits::rules::covered_intervals;
use crate::permits::schedule::WindowSpec;
use crate::permits::store::{HeldPermit, HeldRow};
use crate::store::lookup;
use crate::store::{Param, Store};

pub use self::lot::allowed_at_lot;

/// One right that applies (or applied within the grace period), as the answer shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum RightView {
    #[serde(rename_all = "camelCase")]
    Ticket {
        parking_lot_id: i64,
        provider: String,
        ticket_id: String,
        start_date: String,
        end_date: Option<String>,
        /// Set when the right is over and only grace remains.
        #[serde(skip_serializing_if = "Option::is_none")]
        ended_at: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Permit {
        parking_lot_id: i64,
        #[serde(rename = "permit_id")]
        permit_id: String,
        permit_definition_name: String,
        valid_from: String,
        valid_to: String,
        /// The schedule window in force; null for an all-day permit.
        window: Option<WindowSpec>,
        /// When this stretch of permission ends.
        window_ends_at: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ended_at: Option<String>,
    },
    #[serde(rename_all = "camelCase")]
    Transaction {
        parking_lot_id: i64,
        transaction_id: i64,
        entry_time: String,
        reference_no: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        ended_at: Option<String>,
    },
}

/// Every right found, with its status at the instant asked about.
pub struct Found {
    pub statuses: Vec<Status>,
    pub rights: Vec<RightView>,
}

/// Every right at a lot, in one statement: one round trip, one wait for the database, where
/// three lookups cost three. `$tickets`, `$stays` and `$permits` choose the rows (one plate, or
/// every plate of the lot) and number the parameters. Columns a kind does not have are null
/// (typed in the first branch, which is what PostgreSQL goes by).
macro_rules! rights_sql {
    ($tickets:literal, $stays:literal, $permits:literal) => {
        concat!(
            "SELECT 0 AS kind, t.license_norm AS plate, t.ticket_id AS key, pr.name AS name, \
                   t.start_at AS start_at, t.end_at AS end_at, t.id AS seq, \
                   CAST(NULL AS BIGINT) AS definition_id, CAST(NULL AS TEXT) AS time_zone, \
                   CAST(NULL AS TEXT) AS schedule, CAST(NULL AS TEXT) AS valid_from, \
                   CAST(NULL AS TEXT) AS valid_to, t.parking_lot_id AS lot_id, \
                   CAST(NULL AS BIGINT) AS span_from, CAST(NULL AS BIGINT) AS span_to \
              FROM tickets t JOIN principals pr ON pr.id = t.provider_id \
             WHERE t.status = 'active' AND ",
            $tickets,
            " UNION ALL \
            SELECT 1, s.ticket_key, s.reference_no, NULL, s.entry_at, s.exit_at, s.id, NULL, NULL, \
                   NULL, NULL, NULL, s.parking_lot_id, NULL, NULL \
              FROM transactions s \
             WHERE s.ticket_type = 4 AND ",
            $stays,
            " UNION ALL \
            SELECT 2, v.license_norm, p.id, d.name, p.created_at, NULL, NULL, d.id, d.time_zone, \
                   d.schedule, p.valid_from, p.valid_to, dl.parking_lot_id, p.starts_at, p.ends_at",
            crate::held_permits_from!(),
            "WHERE p.deleted_at IS NULL AND ",
            $permits,
            " ORDER BY plate, kind, start_at, seq, key"
        )
    };
}

/// The rights of one plate ($1) at a lot ($2) that hold at $3 or ended after $4 (permits:
/// days touching [$4, $5)).
const RIGHTS_SQL: &str = rights_sql!(
    "t.license_norm = $1 AND t.parking_lot_id = $2 AND t.start_at <= $3 \
       AND (t.end_at IS NULL OR t.end_at > $4)",
    "s.ticket_key = $1 AND s.parking_lot_id = $2 AND s.entry_at <= $3 \
       AND (s.exit_at IS NULL OR s.exit_at > $4)",
    "v.license_norm = $1 AND dl.parking_lot_id = $2 AND p.starts_at < $5 AND p.ends_at > $4"
);

/// The same for every plate at a lot ($1), the instants as $2, $3 and $4.
const LOT_RIGHTS_SQL: &str = rights_sql!(
    "t.parking_lot_id = $1 AND t.start_at <= $2 AND (t.end_at IS NULL OR t.end_at > $3)",
    "s.parking_lot_id = $1 AND s.entry_at <= $2 AND (s.exit_at IS NULL OR s.exit_at > $3)",
    "dl.parking_lot_id = $1 AND p.starts_at < $4 AND p.ends_at > $3"
);

/// The rights of one plate ($1) at every lot that ended after $2 (or have not): what the
/// rights memory keeps of a plate.
pub(super) const PLATE_RIGHTS_SQL: &str = rights_sql!(
    "t.license_norm = $1 AND (t.end_at IS NULL OR t.end_at > $2)",
    "s.ticket_key = $1 AND (s.exit_at IS NULL OR s.exit_at > $2)",
    "v.license_norm = $1 AND p.ends_at > $2"
);

/// The same for several plates ($1, an array; PostgreSQL).
pub(super) const PLATES_RIGHTS_SQL: &str = rights_sql!(
    "t.license_norm = ANY($1) AND (t.end_at IS NULL OR t.end_at > $2)",
    "s.ticket_key = ANY($1) AND (s.exit_at IS NULL OR s.exit_at > $2)",
    "v.license_norm = ANY($1) AND p.ends_at > $2"
);

/// The same for several plates on SQLite ($1, a JSON array of them): one statement for them
/// all, cheaper a plate than a statement each (BENCHMARKS.md).
pub(super) const SQLITE_PLATES_RIGHTS_SQL: &str = rights_sql!(
    "t.license_norm IN (SELECT value FROM json_each($1)) AND (t.end_at IS NULL OR t.end_at > $2)",
    "s.ticket_key IN (SELECT value FROM json_each($1)) AND (s.exit_at IS NULL OR s.exit_at > $2)",
    "v.license_norm IN (SELECT value FROM json_each($1)) AND p.ends_at > $2"
);

/// The same for every plate.
pub(super) const ALL_RIGHTS_SQL: &str = rights_sql!(
    "(t.end_at IS NULL OR t.end_at > $1)",
    "(s.exit_at IS NULL OR s.exit_at > $1)",
    "p.ends_at > $1"
);

pub(super) const TICKET: i32 = 0;
pub(super) const STAY: i32 = 1;
pub(super) const PERMIT: i32 = 2;

crate::lookup_row! {
    /// One row of [`rights_sql!`]: `key` is the ticket id, the stay's reference number or the
    /// permit id; `name` the provider or the permit definition; `start_at`/`end_at` the span of
    /// a ticket or stay.
    pub(super) struct RightRow {
        pub(super) kind: i32,
        pub(super) plate: String,
        pub(super) key: String,
        pub(super) name: Option<String>,
        pub(super) start_at: i64,
        pub(super) end_at: Option<i64>,
        pub(super) seq: Option<i64>,
        pub(super) definition_id: Option<i64>,
        pub(super) time_zone: Option<String>,
        pub(super) schedule: Option<String>,
        pub(super) valid_from: Option<String>,
        pub(super) valid_to: Option<String>,
        pub(super) lot_id: i64,
        /// A permit's span ([starts_at, ends_at)); null for the other kinds.
        pub(super) span_from: Option<i64>,
        pub(super) span_to: Option<i64>,
    }
}

impl RightRow {
    /// A row of `kind` with only what every kind has; the rest null or zero.
    pub(super) fn bare(kind: i32, plate: &str, key: &str, lot_id: i64) -> Self {
        Self {
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
            lot_id,
            span_from: None,
            span_to: None,
        }
    }

    fn into_permit(self, lot: i64) -> Result<HeldPermit, AppError> {
        let missing = || AppError::internal(anyhow::anyhow!("a permit row without its definition"));
        HeldRow {
            license_norm: self.plate,
            id: self.key,
            definition_id: self.definition_id.ok_or_else(missing)?,
            name: self.name.ok_or_else(missing)?,
            time_zone: self.time_zone.ok_or_else(missing)?,
            schedule: self.schedule.ok_or_else(missing)?,
            valid_from: self.valid_from.ok_or_else(missing)?,
            valid_to: self.valid_to.ok_or_else(missing)?,
        }
        .into_held(lot)
        .map(|(_, permit)| permit)
    }
}

/// The rights of `plate` (normal form) at `lot` that apply at `at` or ended within `grace`.
pub async fn rights_at(
    store: &Store,
    plate: &str,
    lot: &Lot,
    at: Timestamp,
    grace: SignedDuration,
) -> Result<Found, AppError> {
    let since = at.checked_sub(grace).unwrap_or(at);
    let (from, until) = (to_micros(at), to_micros(since));
    // The check enforcement waits for: from the rights memory when it holds every change
    // committed, else one indexed lookup (on SQLite run where it is asked).
    let memory = &store.caches().rights;
    let rows: Vec<RightRow> = match memory.rows(store, plate, lot.id, (from, until)).await? {
        Some(rows) => rows,
        None => {
            lookup::all(
                store,
                RIGHTS_SQL,
                &[
                    Param::Text(plate),
                    Param::Int(lot.id),
                    Param::Int(from),
                    Param::Int(until),
                    Param::Int(from + 1),
                ],
            )
            .await?
        }
    };
    found(rows, lot, at, since, Show::Rights)
}

/// What [`found`] gives besides the statuses.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Show {
    /// Each right as the answer shows it, times rendered in the lot's zone.
    Rights,
    /// Nothing: a list of valid plates decides a million plates and shows none of their rights.
    StatusesOnly,
}

/// The rights in `rows` (of one plate at `lot`) with their status at `at`, those that ended
/// before `since` (the start of the grace period) left out.
fn found(
    rows: Vec<RightRow>,
    lot: &Lot,
    at: Timestamp,
    since: Timestamp,
    show: Show,
) -> Result<Found, AppError> {
    let zone = &lot.time_zone;
    let mut tickets = Vec::new();
    let mut stays = Vec::new();
    let mut held = Vec::new();
    for row in rows {
        match row.kind {
            TICKET => tickets.push(row),
            STAY => stays.push(row),
            PERMIT => held.push(row.into_permit(lot.id)?),
            other => {
                return Err(AppError::internal(anyhow::anyhow!(
                    "a right of unknown kind {other}"
                )));
            }
        }
    }

    let mut found = Found {
        statuses: Vec::new(),
        rights: Vec::new(),
    };
    let ended_at = |status: &Status| match status {
        Status::Ended { at } => Some(zone.render(*at)),
        _ => None,
    };
    for t in tickets {
        let (start, end) = (from_micros(t.start_at), t.end_at.map(from_micros));
        let status = decide::span_status(start, end, at);
        if status == Status::Inactive {
            continue;
        }
        found.statuses.push(status);
        if show == Show::StatusesOnly {
            continue;
        }
        found.rights.push(RightView::Ticket {
            parking_lot_id: lot.id,
            provider: t.name.unwrap_or_default(),
            ticket_id: t.key,
            start_date: zone.render(start),
            end_date: end.map(|e| zone.render(e)),
            ended_at: ended_at(&status),
        });
    }
    for permit in &held {
        let cover = permit.cover();
        let (status, window, window_ends) = match cover.covers(lot.id, at) {
            Some(hit) => (Status::Active { until: hit.until }, hit.window, hit.until),
            None => {
                let covered = covered_intervals(std::slice::from_ref(&cover), lot.id, since, at);
                (decide::covered_status(&covered, at), None, None)
            }
        };
        if status == Status::Inactive {
            continue;
        }
        found.statuses.push(status);
        if show == Show::StatusesOnly {
            continue;
        }
        found.rights.push(RightView::Permit {
            parking_lot_id: lot.id,
            permit_id: permit.permit_id.clone(),
            permit_definition_name: permit.definition_name.clone(),
            valid_from: permit.days.render_from(&permit.zone),
            valid_to: permit.days.render_to(&permit.zone),
            window: window.and_then(|i| permit.schedule.to_specs().into_iter().nth(i)),
            window_ends_at: window_ends.map(|w| zone.render(w)),
            ended_at: ended_at(&status),
        });
    }
    for s in stays {
        let status = decide::span_status(from_micros(s.start_at), s.end_at.map(from_micros), at);
        if status == Status::Inactive {
            continue;
        }
        found.statuses.push(status);
        if show == Show::StatusesOnly {
            continue;
        }
        found.rights.push(RightView::Transaction {
            parking_lot_id: lot.id,
            transaction_id: s.seq.unwrap_or_default(),
            entry_time: zone.render(from_micros(s.start_at)),
            reference_no: s.key,
            ended_at: ended_at(&status),
        });
    }
    Ok(found)
}

/// The answer for one plate over one or more lots (a zone): the rights at every lot, decided
/// together; each lot's own grace applies to its rights.
pub async fn answer(
    store: &Store,
    plate: &str,
    lots: &[Lot],
    at: Timestamp,
) -> Result<(Verdict, Vec<RightView>), AppError> {
    let mut statuses = Vec::new();
    let mut rights = Vec::new();
    let mut verdicts = Vec::new();
    for lot in lots {
        let grace = SignedDuration::from_mins(lot.grace_minutes);
        let found = rights_at(store, plate, lot, at, grace).await?;
        verdicts.push(decide::verdict(&found.statuses, at, grace));
        statuses.extend(found.statuses);
        rights.extend(found.rights);
    }
    Ok((combine(&verdicts), rights))
}

/// One verdict over several lots: allowed anywhere; a current right beats grace everywhere.
fn combine(verdicts: &[Verdict]) -> Verdict {
    let current: Vec<&Verdict> = verdicts.iter().filter(|v| v.allowed && !v.grace).collect();
    if !current.is_empty() {
        let valid_until = if current.iter().any(|v| v.valid_until.is_none()) {
            None
        } else {
            current.iter().filter_map(|v| v.valid_until).max()
        };
        return Verdict {
            allowed: true,
            grace: false,
            valid_until,
        };
    }
    match verdicts
        .iter()
        .filter(|v| v.grace)
        .filter_map(|v| v.valid_until)
        .max()
    {
        Some(until) => Verdict {
            allowed: true,
            grace: true,
            valid_until: Some(until),
        },
        None => Verdict {
            allowed: false,
            grace: false,
            valid_until: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::time::TimeZoneName;

    pub(super) fn ticket(plate: &str, start: &str, end: Option<&str>) -> RightRow {
        let micros = |s: &str| to_micros(s.parse::<Timestamp>().unwrap());
        RightRow {
            name: Some("provider".to_owned()),
            start_at: micros(start),
            end_at: end.map(micros),
            seq: Some(1),
            ..RightRow::bare(TICKET, plate, &format!("t-{plate}-{start}"), 12)
        }
    }

    pub(super) fn lot() -> Lot {
        Lot {
            id: 12,
            name: "Lot".to_owned(),
            zone_code: 12,
            time_zone: TimeZoneName::parse("Europe/Stockholm").unwrap(),
            carpark: None,
            grace_minutes: 5,
        }
    }

    #[test]
    fn statuses_alone_are_those_the_answer_shows() {
        let at: Timestamp = "2025-01-06T11:00:00Z".parse().unwrap();
        let since = at - SignedDuration::from_mins(5);
        let rows = || {
            vec![
                ticket("AAA111", "2025-01-06T12:00:00Z", None),
                ticket(
                    "AAA111",
                    "2025-01-06T09:00:00Z",
                    Some("2025-01-06T10:58:00Z"),
                ),
                ticket("AAA111", "2025-01-06T10:00:00Z", None),
                RightRow {
                    start_at: to_micros("2025-01-06T10:40:00Z".parse::<Timestamp>().unwrap()),
                    seq: Some(7),
                    ..RightRow::bare(STAY, "AAA111", "r-7", 12)
                },
            ]
        };
        let shown = found(rows(), &lot(), at, since, Show::Rights).unwrap();
        let only = found(rows(), &lot(), at, since, Show::StatusesOnly).unwrap();
        assert_eq!(
            shown.rights.len(),
            3,
            "the ticket not begun yet is left out"
        );
        assert_eq!(shown.statuses, only.statuses);
        assert!(only.rights.is_empty());
        assert_eq!(
            decide::verdict(&only.statuses, at, SignedDuration::from_mins(5)),
            decide::verdict(&shown.statuses, at, SignedDuration::from_mins(5))
        );
    }
}
