//! Limits on what one caller may use: requests per second per token (429 with `Retry-After`)
//! and open TransactionMonitor sockets per principal. Both are kept per instance: with several
//! instances behind a balancer, each enforces them on its own share of the traffic.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use super::AppError;

/// A token may make `per_second` requests a second on average, and up to `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub per_second: NonZeroU32,
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_second` on average with bursts of as many; `None` for 0 (no limit).
    pub fn per_second(per_second: u32) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        Some(Self {
            per_second,
            burst: per_second,
        })
    }
}

/// Per-token request rate limiting.
pub struct RateLimiter {
    limiter: Option<DefaultKeyedRateLimiter<i64>>,
    clock: DefaultClock,
}

impl RateLimiter {
    pub fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limiter: limit.map(|l| {
                governor::RateLimiter::keyed(Quota::per_second(l.per_second).allow_burst(l.burst))
            }),
            clock: DefaultClock::default(),
        }
    }

    /// Counts one request of `token_id`: a 429 naming when to retry once it is over its rate.
    pub fn check(&self, token_id: i64) -> Result<(), AppError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter.check_key(&token_id).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            AppError::TooManyRequests {
                message: "this token is over its request rate; retry after the number of \
                          seconds in Retry-After"
                    .into(),
                retry_after: wait,
            }
        })
    }

    /// Forgets tokens that have been quiet long enough to be back at a full burst.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Counts open sockets per principal.
#[derive(Clone)]
pub struct SocketLimiter {
    max_per_principal: usize,
    open: Arc<Mutex<HashMap<i64, usize>>>,
}

/// One open socket of a principal; dropping it frees its place.
pub struct SocketPermit {
    principal_id: i64,
    open: Arc<Mutex<HashMap<i64, usize>>>,
}

impl SocketLimiter {
    pub fn new(max_per_principal: usize) -> Self {
        Self {
            max_per_principal,
            open: Arc::default(),
        }
    }

    /// A place for one more socket of `principal_id`, or a 429 when it has the most it may.
    pub fn acquire(&self, principal_id: i64) -> Result<SocketPermit, AppError> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(principal_id).or_insert(0);
        if *count >= self.max_per_principal {
            return Err(AppError::TooManyRequests {
                message: format!(
                    "this principal already has {} open TransactionMonitor sockets, the most \
                     allowed; close one first",
                    self.max_per_principal
                ),
                retry_after: Duration::from_secs(1),
            });
        }
        *count += 1;
        Ok(SocketPermit {
            principal_id,
            open: self.open.clone(),
        })
    }
}

impl Drop for SocketPermit {
    fn drop(&mut self) {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.principal_id) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.principal_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_over_its_burst_waits_and_others_do_not() {
        let limiter = RateLimiter::new(RateLimit::per_second(2));
        assert!(limiter.check(1).is_ok());
        assert!(limiter.check(1).is_ok());
        match limiter.check(1) {
            Err(AppError::TooManyRequests { retry_after, .. }) => {
                assert!(retry_after > Duration::ZERO && retry_after <= Duration::from_secs(1))
            }
            other => panic!("expected a 429, got {other:?}"),
        }
        assert!(limiter.check(2).is_ok(), "another token has its own budget");
    }

    #[test]
    fn no_limit_when_zero() {
        assert_eq!(RateLimit::per_second(0), None);
        let limiter = RateLimiter::new(None);
        assert!((0..10_000).all(|_| limiter.check(1).is_ok()));
    }

    #[test]
    fn socket_places_come_back_when_permits_drop() {
        let sockets = SocketLimiter::new(2);
        let a = sockets.acquire(7).expect("first");
        let _b = sockets.acquire(7).expect("second");
        assert!(sockets.acquire(7).is_err());
        assert!(
            sockets.acquire(8).is_ok(),
            "another principal has its own places"
        );
        drop(a);
        assert!(sockets.acquire(7).is_ok());
    }
}
