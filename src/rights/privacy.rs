//! Pseudonymising plates past their retention: in check records, tickets and car-park stays,
//! the plate is replaced by `~` and a keyed hash (HMAC-SHA256 with a key kept in the database),
//! so old records still count and group, but no longer name a vehicle.

use std::time::Duration;

use hmac::{Hmac, Mac};
use jiff::Timestamp;
use rand::RngCore;
use sha2::Sha256;

use crate::domain::time::to_micros;
use crate::events::EventBus;
use crate::events::bus::spawn_expiry;
use crate::http::AppError;
use crate::store::Store;
use crate::{read, write_tx};

const KEY_SETTING: &str = "pseudonym_key";
const BATCH: i64 = 1000;

/// What every pseudonym starts with (no plate's normal form does: it is letters and digits).
pub const PSEUDONYM_PREFIX: char = '~';

/// The keyed hash that replaces a plate: `~` and 32 hex digits.
pub fn pseudonym(key: &[u8], plate: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return PSEUDONYM_PREFIX.into();
    };
    mac.update(plate.as_bytes());
    let digest = mac.finalize().into_bytes();
    format!("{PSEUDONYM_PREFIX}{}", &hex::encode(digest)[..32])
}

/// The pseudonymisation key, made on first use.
async fn key(store: &Store) -> Result<Vec<u8>, AppError> {
    let mut fresh = [0u8; 32];
    rand::rng().fill_bytes(&mut fresh);
    let candidate = hex::encode(fresh);
    let stored: String = write_tx!(store, |tx| {
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(KEY_SETTING)
        .bind(&candidate)
        .execute(&mut *tx)
        .await?;
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(KEY_SETTING)
            .fetch_one(&mut *tx)
            .await?
    });
    hex::decode(stored).map_err(AppError::internal)
}

/// Pseudonymises every plate older than `before`; returns how many records changed.
pub async fn pseudonymise(store: &Store, before: Timestamp) -> Result<u64, AppError> {
    let key = key(store).await?;
    let cutoff = to_micros(before);
    // (what to select, how to update one row) per kind of record
    let kinds: [(&str, &str); 3] = [
        (
            "SELECT id, license_norm FROM parking_right_checks WHERE checked_at < $1 AND license_norm NOT LIKE '~%' LIMIT $2",
            "UPDATE parking_right_checks SET license_norm = $2 WHERE id = $1",
        ),
        (
            "SELECT id, license_norm FROM tickets WHERE COALESCE(end_at, canceled_at) < $1 AND license_norm NOT LIKE '~%' LIMIT $2",
            "UPDATE tickets SET license_norm = $2, license_raw = $2 WHERE id = $1",
        ),
        (
            "SELECT id, ticket_key AS license_norm FROM transactions WHERE exit_at < $1 AND ticket_type = 4 AND ticket_key NOT LIKE '~%' LIMIT $2",
            "UPDATE transactions SET ticket_key = $2, ticket_no = $2 WHERE id = $1",
        ),
    ];
    let mut changed = 0;
    for (select, update) in kinds {
        loop {
            let rows: Vec<(i64, String)> = read!(store, |db| {
                sqlx::query_as(select)
                    .bind(cutoff)
                    .bind(BATCH)
                    .fetch_all(db)
                    .await?
            });
            if rows.is_empty() {
                break;
            }
            let n = rows.len() as u64;
            write_tx!(store, |tx| {
                for (id, plate) in &rows {
                    sqlx::query(update)
                        .bind(id)
                        .bind(pseudonym(&key, plate))
                        .execute(&mut *tx)
                        .await?;
                }
            });
            changed += n;
            if n < BATCH as u64 {
                break;
            }
        }
    }
    Ok(changed)
}

/// Runs [`pseudonymise`] for records older than `retention`, every `interval`, until shutdown.
pub fn spawn(store: Store, bus: EventBus, retention: Duration, interval: Duration) {
    spawn_expiry(
        &bus,
        retention,
        interval,
        "pseudonymised plates past their retention",
        move |before| {
            let store = store.clone();
            async move { pseudonymise(&store, before).await }
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pseudonyms_are_stable_keyed_and_unrecognisable() {
        let a = pseudonym(b"key one", "ABC123");
        assert_eq!(a, pseudonym(b"key one", "ABC123"));
        assert_ne!(a, pseudonym(b"key two", "ABC123"));
        assert_ne!(a, pseudonym(b"key one", "ABC124"));
        assert!(a.starts_with('~') && a.len() == 33 && !a.contains("ABC"));
    }
}
