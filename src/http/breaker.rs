//! Failing fast while PostgreSQL is unreachable. Without this, every request waits the whole
//! connection timeout (5 s) before its 503, and piles up meanwhile. After a request found the
//! database unavailable, the breaker opens for a second: requests are refused at once with
//! the same JSON 503. Then one request is let through to probe; if it succeeds the breaker
//! closes, if not it stays open another second. SQLite is never refused this way (a full disk
//! still lets reads through).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::AppError;
use crate::app::AppState;
use crate::store::BackendKind;

const OPEN_FOR: Duration = Duration::from_secs(1);

/// Open until a moment (microseconds since `epoch`); 0 when closed.
pub struct Breaker {
    epoch: Instant,
    open_until: AtomicU64,
}

impl Default for Breaker {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            open_until: AtomicU64::new(0),
        }
    }
}

impl Breaker {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    fn reopen_from(&self, now: u64) -> u64 {
        now.saturating_add(OPEN_FOR.as_micros() as u64).max(1)
    }

    /// May a request go to the database? Closed: yes. Open: no, except one probe per second.
    pub fn admit(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now();
        now >= until
            && self
                .open_until
                .compare_exchange(
                    until,
                    self.reopen_from(now),
                    Ordering::AcqRel,
                    Ordering::Acquire,
                )
                .is_ok()
    }

    /// What a request that went through learned about the database.
    pub fn record(&self, database_unavailable: bool) {
        if database_unavailable {
            self.open_until
                .store(self.reopen_from(self.now()), Ordering::Release);
        } else {
            self.open_until.store(0, Ordering::Release);
        }
    }
}

/// The middleware: refuses at once while the breaker is open (PostgreSQL only; `/healthz` and
/// `/readyz` always go through, they report on the database themselves).
pub async fn fail_fast(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path();
    if state.store.kind() != BackendKind::Postgres || path == "/healthz" || path == "/readyz" {
        return next.run(request).await;
    }
    if !state.breaker.admit() {
        return AppError::Unavailable(anyhow::anyhow!(
            "refused at once: the database was unreachable moments ago"
        ))
        .into_response();
    }
    let response = next.run(request).await;
    let status = response.status();
    // 503 is only ever the database being unavailable; anything else means it answered
    // (or was not needed, which is no news either way).
    if status == StatusCode::SERVICE_UNAVAILABLE {
        state.breaker.record(true);
    } else if status.is_success() {
        state.breaker.record(false);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_on_unavailable_probes_once_a_second_and_closes_on_success() {
        let breaker = Breaker::default();
        assert!(
            breaker.admit() && breaker.admit(),
            "closed: everything goes"
        );
        breaker.record(true);
        assert!(!breaker.admit(), "open: refused at once");
        std::thread::sleep(OPEN_FOR + Duration::from_millis(20));
        assert!(breaker.admit(), "after a second: one probe");
        assert!(!breaker.admit(), "only one");
        breaker.record(false);
        assert!(
            breaker.admit() && breaker.admit(),
            "the probe succeeded: closed"
        );
    }
}
