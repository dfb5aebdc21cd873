//! Finding every right a plate holds at a lot around an instant: tickets, permits and open
//! car-park stays, each by an indexed lookup on the plate's normal form and the lot.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::decide::{self, Status, Verdict};
use crate::domain::time::{from_micros, to_micros};
use crate::http::AppError;
use crate::lots::Lot;
use crate::permits::rules::covered_intervals;
use crate::permits::schedule::WindowSpec;
use crate::read;
use crate::store::Store;

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

#[derive(sqlx::FromRow)]
struct TicketRow {
    ticket_id: String,
    provider: String,
    start_at: i64,
    end_at: Option<i64>,
}

#[derive(sqlx::FromRow)]
struct StayRow {
    id: i64,
    reference_no: String,
    entry_at: i64,
    exit_at: Option<i64>,
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
    let zone = &lot.time_zone;
    // Three lookups at once, each on a connection of its own.
    let tickets = async {
        let tickets: Vec<TicketRow> = read!(store, |db| {
            sqlx::query_as(
                "SELECT t.ticket_id, p.name AS provider, t.start_at, t.end_at FROM tickets t \
                 JOIN principals p ON p.id = t.provider_id \
                 WHERE t.license_norm = $1 AND t.parking_lot_id = $2 AND t.status = 'active' \
                   AND t.start_at <= $3 AND (t.end_at IS NULL OR t.end_at > $4) ORDER BY t.start_at, t.id",
            )
            .bind(plate)
            .bind(lot.id)
            .bind(to_micros(at))
            .bind(to_micros(since))
            .fetch_all(db)
            .await?
        });
        Ok::<_, AppError>(tickets)
    };
    let stays = async {
        let stays: Vec<StayRow> = read!(store, |db| {
            sqlx::query_as(
                "SELECT id, reference_no, entry_at, exit_at FROM transactions \
                 WHERE ticket_key = $1 AND parking_lot_id = $2 AND ticket_type = 4 \
                   AND entry_at <= $3 AND (exit_at IS NULL OR exit_at > $4) ORDER BY entry_at, id",
            )
            .bind(plate)
            .bind(lot.id)
            .bind(to_micros(at))
            .bind(to_micros(since))
            .fetch_all(db)
            .await?
        });
        Ok::<_, AppError>(stays)
    };
    let held = crate::permits::store::held_by_plate(
        store,
        plate,
        lot.id,
        since,
        at.checked_add(SignedDuration::from_micros(1)).unwrap_or(at),
    );
    let (tickets, stays, held) = tokio::try_join!(tickets, stays, held)?;

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
        found.rights.push(RightView::Ticket {
            parking_lot_id: lot.id,
            provider: t.provider,
            ticket_id: t.ticket_id,
            start_date: zone.render(start),
            end_date: end.map(|e| zone.render(e)),
            ended_at: ended_at(&status),
        });
        found.statuses.push(status);
    }
    for permit in &held {
        let cover = permit.cover();
        let (status, window, window_ends) = match cover.covers(lot.id, at) {
            Some(hit) => (
                Status::Active { until: hit.until },
                hit.window
                    .and_then(|i| permit.schedule.to_specs().into_iter().nth(i)),
                hit.until,
            ),
            None => {
                let covered = covered_intervals(std::slice::from_ref(&cover), lot.id, since, at);
                (decide::covered_status(&covered, at), None, None)
            }
        };
        if status == Status::Inactive {
            continue;
        }
        found.rights.push(RightView::Permit {
            parking_lot_id: lot.id,
            permit_id: permit.permit_id.clone(),
            permit_definition_name: permit.definition_name.clone(),
            valid_from: permit.days.render_from(&permit.zone),
            valid_to: permit.days.render_to(&permit.zone),
            window,
            window_ends_at: window_ends.map(|w| zone.render(w)),
            ended_at: ended_at(&status),
        });
        found.statuses.push(status);
    }
    for s in stays {
        let status = decide::span_status(from_micros(s.entry_at), s.exit_at.map(from_micros), at);
        if status == Status::Inactive {
            continue;
        }
        found.rights.push(RightView::Transaction {
            parking_lot_id: lot.id,
            transaction_id: s.id,
            entry_time: zone.render(from_micros(s.entry_at)),
            reference_no: s.reference_no,
            ended_at: ended_at(&status),
        });
        found.statuses.push(status);
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
