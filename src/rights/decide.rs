//! Deciding "may this vehicle park here now?" from the rights found, as plain functions.

use jiff::{SignedDuration, Timestamp};

/// Where a right stands at the instant asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It lets the vehicle park now, until then (`None`: open-ended).
    Active { until: Option<Timestamp> },
    /// It ended then, before the instant asked about.
    Ended { at: Timestamp },
    /// It has nothing to do with that instant.
    Inactive,
}

/// A right that holds from `start` until `end` (exclusive; `None` open-ended). Tickets and
/// car-park stays are such rights.
pub fn span_status(start: Timestamp, end: Option<Timestamp>, at: Timestamp) -> Status {
    if at < start {
        return Status::Inactive;
    }
    match end {
        None => Status::Active { until: None },
        Some(end) if at < end => Status::Active { until: Some(end) },
        Some(end) => Status::Ended { at: end },
    }
}

/// A permit's status from the stretches in which it covers the lot around `at`: `covered` must
/// span `[at - grace, at]` at least.
pub fn covered_status(covered: &[(Timestamp, Timestamp)], at: Timestamp) -> Status {
    if let Some((_, until)) = covered.iter().find(|(from, to)| *from <= at && at < *to) {
        return Status::Active {
            until: Some(*until),
        };
    }
    match covered
        .iter()
        .filter(|(_, to)| *to <= at)
        .map(|(_, to)| *to)
        .max()
    {
        Some(end) => Status::Ended { at: end },
        None => Status::Inactive,
    }
}

/// The answer for one vehicle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Allowed only because a right ended less than the grace period ago.
    pub grace: bool,
    /// When the best current right ends (in grace: when the grace ends); `None` if open-ended
    /// or not allowed.
    pub valid_until: Option<Timestamp>,
}

/// Combines the statuses of every right that was found.
pub fn verdict(statuses: &[Status], at: Timestamp, grace: SignedDuration) -> Verdict {
    let active: Vec<Option<Timestamp>> = statuses
        .iter()
        .filter_map(|s| match s {
            Status::Active { until } => Some(*until),
            _ => None,
        })
        .collect();
    if !active.is_empty() {
        let valid_until = if active.iter().any(Option::is_none) {
            None
        } else {
            active.iter().flatten().max().copied()
        };
        return Verdict {
            allowed: true,
            grace: false,
            valid_until,
        };
    }
    let graced = statuses
        .iter()
        .filter_map(|s| match s {
            Status::Ended { at: ended } => ended.checked_add(grace).ok(),
            _ => None,
        })
        .filter(|grace_end| *grace_end > at)
        .max();
    match graced {
        Some(grace_end) => Verdict {
            allowed: true,
            grace: true,
            valid_until: Some(grace_end),
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

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const FIVE: SignedDuration = SignedDuration::from_mins(5);

    #[test]
    fn spans_start_inclusive_and_end_exclusive() {
        let (start, end) = (ts("2025-01-06T10:00:00Z"), ts("2025-01-06T12:00:00Z"));
        assert_eq!(
            span_status(start, Some(end), ts("2025-01-06T09:59:59Z")),
            Status::Inactive
        );
        assert_eq!(
            span_status(start, Some(end), start),
            Status::Active { until: Some(end) }
        );
        assert_eq!(
            span_status(start, Some(end), end),
            Status::Ended { at: end }
        );
        assert_eq!(
            span_status(start, None, ts("2030-01-01T00:00:00Z")),
            Status::Active { until: None }
        );
    }

    #[test]
    fn the_best_right_decides_until_when() {
        let at = ts("2025-01-06T11:00:00Z");
        let a = Status::Active {
            until: Some(ts("2025-01-06T12:00:00Z")),
        };
        let b = Status::Active {
            until: Some(ts("2025-01-06T13:00:00Z")),
        };
        assert_eq!(
            verdict(&[a, b], at, FIVE).valid_until,
            Some(ts("2025-01-06T13:00:00Z"))
        );
        let open = Status::Active { until: None };
        assert_eq!(
            verdict(&[a, open], at, FIVE),
            Verdict {
                allowed: true,
                grace: false,
                valid_until: None
            }
        );
        assert_eq!(
            verdict(&[], at, FIVE),
            Verdict {
                allowed: false,
                grace: false,
                valid_until: None
            }
        );
    }

    #[test]
    fn grace_covers_rights_that_ended_just_before() {
        let end = ts("2025-01-06T12:00:00Z");
        let ended = [Status::Ended { at: end }];
        let within = verdict(&ended, ts("2025-01-06T12:04:59Z"), FIVE);
        assert_eq!(
            within,
            Verdict {
                allowed: true,
                grace: true,
                valid_until: Some(ts("2025-01-06T12:05:00Z"))
            }
        );
        assert!(!verdict(&ended, ts("2025-01-06T12:05:00Z"), FIVE).allowed);
        assert!(!verdict(&ended, ts("2025-01-06T12:01:00Z"), SignedDuration::ZERO).allowed);
        // a current right beats grace
        let now = verdict(
            &[Status::Ended { at: end }, Status::Active { until: None }],
            ts("2025-01-06T12:01:00Z"),
            FIVE,
        );
        assert!(!now.grace && now.allowed);
    }

    #[test]
    fn covered_stretches_give_permit_status() {
        let covered = [(ts("2025-01-06T04:00:00Z"), ts("2025-01-06T08:00:00Z"))];
        assert_eq!(
            covered_status(&covered, ts("2025-01-06T05:00:00Z")),
            Status::Active {
                until: Some(ts("2025-01-06T08:00:00Z"))
            }
        );
        assert_eq!(
            covered_status(&covered, ts("2025-01-06T08:00:00Z")),
            Status::Ended {
                at: ts("2025-01-06T08:00:00Z")
            }
        );
        assert_eq!(
            covered_status(&covered, ts("2025-01-06T03:59:00Z")),
            Status::Inactive
        );
    }
}
