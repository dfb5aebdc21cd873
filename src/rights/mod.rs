//! Parking rights: one answer to "may this vehicle park here now?", drawn from providers'
//! tickets, tenants' permits and open car-park stays together, for enforcement.

pub mod api;
pub mod decide;
pub mod gather;
pub mod log;
pub mod privacy;

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp};

use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::lots::Lot;
use crate::read;
use crate::store::Store;

pub use api::routes;

/// Plates that may hold a right at `lot` around `at` (to be decided one by one).
pub async fn candidates(
    store: &Store,
    lot: &Lot,
    at: Timestamp,
    grace: SignedDuration,
) -> Result<BTreeSet<String>, AppError> {
    let since = to_micros(at.checked_sub(grace).unwrap_or(at));
    let now = to_micros(at);
    let (tickets, stays): (Vec<String>, Vec<String>) = read!(store, |db| {
        let tickets = sqlx::query_scalar(
            "SELECT DISTINCT license_norm FROM tickets WHERE parking_lot_id = $1 AND status = 'active' \
               AND start_at <= $2 AND (end_at IS NULL OR end_at > $3)",
        )
        .bind(lot.id)
        .bind(now)
        .bind(since)
        .fetch_all(db)
        .await?;
        let stays = sqlx::query_scalar(
            "SELECT DISTINCT ticket_key FROM transactions WHERE parking_lot_id = $1 AND ticket_type = 4 \
               AND entry_at <= $2 AND (exit_at IS NULL OR exit_at > $3)",
        )
        .bind(lot.id)
        .bind(now)
        .bind(since)
        .fetch_all(db)
        .await?;
        (tickets, stays)
    });
    let from = at.checked_sub(grace).unwrap_or(at);
    let to = at.checked_add(SignedDuration::from_micros(1)).unwrap_or(at);
    let permits = crate::permits::store::held_at_lot(store, lot.id, from, to).await?;
    Ok(tickets
        .into_iter()
        .chain(stays)
        .chain(permits.into_iter().map(|(plate, _)| plate))
        .filter(|p| !p.starts_with('~'))
        .collect())
}
