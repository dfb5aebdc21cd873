//! What the rights memory hears on PostgreSQL: the plates whose rights changed, announced by
//! triggers on the channel `parkhub_rights` when their transaction commits (migrations/postgres
//! 0006; a statement's plates together), in commit order, to every instance.
//!
//! A notification arrives a little after its commit, so a process cannot tell from them alone
//! that its own write, committed and answered a moment ago, has been heard. It asks: it sends a
//! sync of its own on the channel, numbered with the writes it had committed by then
//! ([`crate::store::Store::writes_committed`]); PostgreSQL delivers it after every change
//! committed before it, so once it is heard back, so are those writes.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::http::AppError;

/// The channel the triggers announce changes on.
pub(super) const CHANNEL: &str = "parkhub_rights";

/// A sync not heard back after this long is sent again (the listener may have reconnected).
const SYNC_AGAIN_AFTER: Duration = Duration::from_secs(1);

/// What was heard and not yet read again.
pub(super) enum Changed {
    /// These plates.
    Plates(Vec<String>),
    /// Everything (a change many plates share, or notifications that may have been missed).
    Everything,
}

/// What the listener has heard (see the module's description).
#[derive(Default)]
pub(super) struct Heard(Mutex<State>);

#[derive(Default)]
struct State {
    /// LISTEN is in force: everything committed from now on will be heard.
    listening: bool,
    /// Notifications heard so far (plates, `*`, and each new LISTEN): the memory is current
    /// when it has read again what the first `received` of them named.
    received: i64,
    plates: BTreeSet<String>,
    everything: bool,
    /// This process's writes committed before the latest of its syncs heard back.
    synced: u64,
    /// The writes a check needs heard (the most asked for).
    wanted: u64,
    /// The latest sync sent: its number and when.
    sent: Option<(u64, Instant)>,
}

impl Heard {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// How many notifications the memory must have read to answer a check, if it may at all:
    /// `None` when not listening, or when this process's writes up to `writes` are not yet
    /// heard (asking for a sync).
    pub(super) fn latest(&self, writes: u64) -> Option<i64> {
        let mut state = self.state();
        if !state.listening {
            return None;
        }
        if state.synced < writes {
            state.wanted = state.wanted.max(writes);
            return None;
        }
        Some(state.received)
    }

    /// A sync to send now, if a check waits for one not already on its way: the number to send
    /// is `writes`, this process's writes committed so far.
    pub(super) fn sync_to_send(&self, writes: u64) -> Option<u64> {
        let mut state = self.state();
        if !state.listening || state.wanted <= state.synced {
            return None;
        }
        let on_its_way = state
            .sent
            .is_some_and(|(n, at)| n >= state.wanted && at.elapsed() < SYNC_AGAIN_AFTER);
        if on_its_way {
            return None;
        }
        state.sent = Some((writes, Instant::now()));
        Some(writes)
    }

    /// Takes what was heard and not read again, with the count of notifications it covers;
    /// everything when more than `most` plates (or when `loaded` is false).
    pub(super) fn take(&self, loaded: bool, most: usize) -> (i64, Changed) {
        let mut state = self.state();
        let plates = std::mem::take(&mut state.plates);
        let everything = std::mem::take(&mut state.everything);
        let changed = if everything || !loaded || plates.len() > most {
            Changed::Everything
        } else {
            Changed::Plates(plates.into_iter().collect())
        };
        (state.received, changed)
    }

    /// Gives back what [`Heard::take`] took, when reading it again failed.
    pub(super) fn put_back(&self, changed: Changed) {
        let mut state = self.state();
        match changed {
            Changed::Plates(plates) => state.plates.extend(plates),
            Changed::Everything => state.everything = true,
        }
    }

    /// One notification's payload: `p` and plates separated by commas, `*`, or `s` and a sync
    /// (`origin:writes`).
    /// Returns whether the memory has something to read again.
    fn heard(&self, payload: &str, origin: &str) -> bool {
        let mut state = self.state();
        if let Some(plates) = payload.strip_prefix('p') {
            state.received += 1;
            if !state.everything {
                state.plates.extend(
                    plates
                        .split(',')
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned),
                );
            }
            true
        } else if let Some(sync) = payload.strip_prefix('s') {
            if let Some((from, writes)) = sync.split_once(':') {
                if from == origin {
                    if let Ok(writes) = writes.parse::<u64>() {
                        state.synced = state.synced.max(writes);
                    }
                }
            }
            false
        } else {
            state.received += 1;
            state.everything = true;
            state.plates.clear();
            true
        }
    }

    /// LISTEN is in force (again): whatever was committed before may have been missed.
    fn listening(&self, listening: bool) {
        let mut state = self.state();
        state.listening = listening;
        if listening {
            state.received += 1;
            state.everything = true;
            state.plates.clear();
            // Syncs sent before may have been missed: send again when asked.
            state.sent = None;
        }
    }
}

/// Sends a sync numbered `writes` (see the module's description).
pub(super) async fn send_sync(pool: &PgPool, origin: &str, writes: u64) -> Result<(), AppError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("s{origin}:{writes}"))
        .execute(pool)
        .await?;
    Ok(())
}

/// Listens until `stop`, telling `heard` what arrives and `wake` when there is something to read
/// again; connects again (after a pause) when the connection is lost.
pub(super) async fn listen(
    pool: PgPool,
    origin: String,
    heard: &Heard,
    wake: impl Fn(),
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let session = async {
            let mut listener = PgListener::connect_with(&pool).await?;
            listener.listen(CHANNEL).await?;
            heard.listening(true);
            wake();
            // try_recv, not recv: recv would connect again by itself, and the notifications
            // missed meanwhile would go unnoticed.
            while let Some(notification) = listener.try_recv().await? {
                if heard.heard(notification.payload(), &origin) {
                    wake();
                }
            }
            Ok::<(), sqlx::Error>(())
        };
        tokio::select! {
            result = session => {
                heard.listening(false);
                match result {
                    Ok(()) => tracing::warn!("the rights memory's listener lost its connection; connecting again"),
                    Err(err) => tracing::warn!(error = %err, "the rights memory's listener failed; connecting again"),
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ = crate::events::bus::stopping(&mut shutdown) => {
                heard.listening(false);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plates(changed: Changed) -> Option<Vec<String>> {
        match changed {
            Changed::Plates(plates) => Some(plates),
            Changed::Everything => None,
        }
    }

    #[test]
    fn nothing_is_current_before_listening_and_everything_is_read_when_it_starts() {
        let heard = Heard::default();
        assert_eq!(heard.latest(0), None);
        heard.listening(true);
        assert_eq!(heard.latest(0), Some(1));
        let (received, changed) = heard.take(true, 10);
        assert_eq!((received, plates(changed)), (1, None));
        assert!(heard.heard("pABC123", "me"));
        assert!(heard.heard("pXYZ9,~0a1b", "me"));
        assert!(heard.heard("pABC123", "me"));
        let (received, changed) = heard.take(true, 10);
        assert_eq!(received, 4);
        assert_eq!(
            plates(changed),
            Some(vec![
                "ABC123".to_owned(),
                "XYZ9".to_owned(),
                "~0a1b".to_owned()
            ])
        );
        assert!(heard.heard("*", "me"));
        assert!(heard.heard("pABC123", "me"));
        assert_eq!(plates(heard.take(true, 10).1), None, "a change of all");
        heard.listening(false);
        assert_eq!(heard.latest(0), None, "not listening: may have missed some");
    }

    #[test]
    fn too_many_plates_or_not_loaded_read_everything_and_a_failed_read_is_given_back() {
        let heard = Heard::default();
        heard.listening(true);
        heard.take(true, 10);
        heard.heard("pA1,B2", "me");
        heard.heard("pC3", "me");
        let (_, changed) = heard.take(true, 2);
        assert_eq!(plates(changed), None);
        heard.heard("pA1", "me");
        assert_eq!(plates(heard.take(false, 2).1), None);
        heard.heard("pA1", "me");
        let (_, changed) = heard.take(true, 2);
        heard.put_back(changed);
        assert_eq!(plates(heard.take(true, 2).1), Some(vec!["A1".to_owned()]));
    }

    #[test]
    fn own_writes_wait_for_their_sync_and_only_ours_count() {
        let heard = Heard::default();
        heard.listening(true);
        assert_eq!(heard.latest(0), Some(1));
        assert_eq!(heard.latest(3), None, "three writes not yet heard back");
        assert_eq!(heard.sync_to_send(4), Some(4));
        assert_eq!(heard.sync_to_send(4), None, "one on its way");
        assert!(!heard.heard("sother:9", "me"), "another instance's sync");
        assert_eq!(heard.latest(3), None);
        assert!(!heard.heard("sme:4", "me"));
        assert_eq!(heard.latest(3), Some(1));
        assert_eq!(heard.latest(4), Some(1));
        assert_eq!(heard.latest(5), None);
        assert_eq!(heard.sync_to_send(5), Some(5));
        heard.listening(true);
        assert_eq!(
            heard.sync_to_send(5),
            Some(5),
            "sent again after listening again"
        );
    }
}
