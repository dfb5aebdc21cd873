//! The rules of permits, as plain functions: which days a permit covers, how its dates are
//! defaulted and checked against its allocation, how they are rendered, and whether a permit
//! lets a vehicle park at a lot at an instant.

use jiff::Timestamp;
use jiff::civil::Date;

use super::schedule::{InForce, Schedule};
use crate::domain::time::boundary_instant;
use crate::domain::{DateTimeInput, TimeZoneName};
use crate::http::FieldErrors;

/// A date as a client sends it: `YYYY-MM-DD`, or a date-time whose local date (in `zone`) is
/// meant.
pub fn parse_date(text: &str, zone: &TimeZoneName) -> Result<Date, String> {
    let text = text.trim();
    if text.len() == 10 {
        return text
            .parse::<Date>()
            .map_err(|_| "must be a date YYYY-MM-DD or an ISO 8601 date-time".to_string());
    }
    match DateTimeInput::parse(text) {
        Ok(DateTimeInput::Absolute(ts)) => Ok(zone.zoned(ts).date()),
        Ok(DateTimeInput::Local(dt)) => Ok(dt.date()),
        Err(_) => Err("must be a date YYYY-MM-DD or an ISO 8601 date-time".into()),
    }
}

/// The local date of `at` in `zone`: what "today" means for a permit.
pub fn local_date(at: Timestamp, zone: &TimeZoneName) -> Date {
    zone.zoned(at).date()
}

/// The first and last day of a permit or an allocation (both included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Days {
    pub from: Date,
    pub to: Date,
}

impl Days {
    pub fn contains(&self, date: Date) -> bool {
        self.from <= date && date <= self.to
    }

    pub fn overlaps(&self, other: &Days) -> bool {
        self.from <= other.to && other.from <= self.to
    }

    /// Still counting towards a quota on `today`: not ended yet.
    pub fn counts_on(&self, today: Date) -> bool {
        self.to >= today
    }

    /// The instants these days span in `zone`: from 00:00 of the first day to 00:00 of the day
    /// after the last (exclusive).
    pub fn instants(&self, zone: &TimeZoneName) -> (Timestamp, Timestamp) {
        let start = boundary_instant(self.from.at(0, 0, 0, 0), zone).unwrap_or(Timestamp::MIN);
        let end = self
            .to
            .tomorrow()
            .ok()
            .and_then(|d| boundary_instant(d.at(0, 0, 0, 0), zone))
            .unwrap_or(Timestamp::MAX);
        (start, end)
    }

    /// `2018-06-19T00:00:00+0100`: the first day at 00:00:00 local, as the permit seed shows.
    pub fn render_from(&self, zone: &TimeZoneName) -> String {
        render_local(self.from, 0, 0, 0, zone)
    }

    /// `2028-01-13T23:59:59+0100`: the last day at 23:59:59 local.
    pub fn render_to(&self, zone: &TimeZoneName) -> String {
        render_local(self.to, 23, 59, 59, zone)
    }
}

fn render_local(date: Date, h: i8, m: i8, s: i8, zone: &TimeZoneName) -> String {
    match boundary_instant(date.at(h, m, s, 0), zone) {
        Some(ts) => zone.render_compact(ts),
        None => format!("{date}T{h:02}:{m:02}:{s:02}"),
    }
}

/// The days of a new permit: `valid_from` defaults to today (or the allocation's start, if
/// later), `valid_to` to the allocation's end; both must lie inside the allocation.
pub fn new_permit_days(
    from: Option<Date>,
    to: Option<Date>,
    allocation: Days,
    today: Date,
) -> Result<Days, FieldErrors> {
    let days = Days {
        from: from.unwrap_or(today.max(allocation.from)),
        to: to.unwrap_or(allocation.to),
    };
    check_inside(days, allocation)?;
    Ok(days)
}

/// The days of a permit after an update: `valid_from` may stay as it is, or move to today or a
/// later day; absent fields stay.
pub fn updated_permit_days(
    current: Days,
    from: Option<Date>,
    to: Option<Date>,
    allocation: Days,
    today: Date,
) -> Result<Days, FieldErrors> {
    if let Some(from) = from
        && from != current.from
        && from < today
    {
        let mut errors = FieldErrors::new();
        errors.add(
            "valid_from",
            "must be the same date as before, today or a future date",
        );
        return Err(errors);
    }
    let days = Days {
        from: from.unwrap_or(current.from),
        to: to.unwrap_or(current.to),
    };
    check_inside(days, allocation)?;
    Ok(days)
}

fn check_inside(days: Days, allocation: Days) -> Result<(), FieldErrors> {
    let mut errors = FieldErrors::new();
    if days.from < allocation.from {
        errors.add(
            "valid_from",
            format!(
                "must not be before the allocation starts ({})",
                allocation.from
            ),
        );
    }
    if days.to > allocation.to {
        errors.add(
            "valid_to",
            format!("must not be after the allocation ends ({})", allocation.to),
        );
    }
    if days.to < days.from {
        errors.add("valid_to", "must not be before valid_from");
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// What a permit needs to decide whether it lets a vehicle park somewhere at some instant.
#[derive(Debug, Clone)]
pub struct PermitCover<'a> {
    pub days: Days,
    pub zone: &'a TimeZoneName,
    pub lots: &'a [i64],
    pub schedule: &'a Schedule,
}

impl PermitCover<'_> {
    /// Does this permit cover `lot` at `at`? When it does, which window is in force and when
    /// that stretch ends: the window's end, else the end of the permit's last day.
    pub fn covers(&self, lot: i64, at: Timestamp) -> Option<InForce> {
        if !self.lots.contains(&lot) {
            return None;
        }
        let local = self.zone.zoned(at);
        if !self.days.contains(local.date()) {
            return None;
        }
        let mut hit =
            self.schedule
                .in_force(self.zone, local.date(), local.time(), self.days.to)?;
        if hit.until.is_none() {
            hit.until = Some(self.days.instants(self.zone).1);
        }
        Some(hit)
    }
}

/// The stretches of `[from, to)` in which any of `permits` covers `lot`, merged and in order.
/// Windows start and end on whole minutes, so a minute that is not covered is skipped whole.
pub fn covered_intervals(
    permits: &[PermitCover<'_>],
    lot: i64,
    from: Timestamp,
    to: Timestamp,
) -> Vec<(Timestamp, Timestamp)> {
    const MINUTE_US: i64 = 60_000_000;
    let mut out: Vec<(Timestamp, Timestamp)> = Vec::new();
    if permits.is_empty() {
        return out;
    }
    let mut at = from;
    while at < to {
        let hit = permits
            .iter()
            .filter_map(|p| p.covers(lot, at))
            .filter_map(|h| h.until)
            .max();
        match hit {
            Some(until) if until > at => {
                let until = until.min(to);
                match out.last_mut() {
                    Some(last) if last.1 == at => last.1 = until,
                    _ => out.push((at, until)),
                }
                at = until;
            }
            _ => {
                let us = at.as_microsecond();
                let next = (us.div_euclid(MINUTE_US) + 1) * MINUTE_US;
                at = Timestamp::from_microsecond(next).unwrap_or(to);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::permits::schedule::WindowSpec;
    use jiff::civil::date;

    fn sthlm() -> TimeZoneName {
        TimeZoneName::stockholm()
    }

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const ALLOC: Days = Days {
        from: date(2018, 6, 19),
        to: date(2028, 1, 13),
    };

    #[test]
    fn dates_render_like_the_seed_with_the_offset_of_their_day() {
        let days = Days {
            from: date(2018, 6, 19),
            to: date(2028, 1, 13),
        };
        assert_eq!(days.render_from(&sthlm()), "2018-06-19T00:00:00+0200");
        assert_eq!(days.render_to(&sthlm()), "2028-01-13T23:59:59+0100");
        let winter = Days {
            from: date(2025, 12, 18),
            to: date(2025, 12, 18),
        };
        assert_eq!(winter.render_from(&sthlm()), "2025-12-18T00:00:00+0100");
    }

    #[test]
    fn days_span_whole_local_days_across_daylight_saving_changes() {
        let spring = Days {
            from: date(2025, 3, 30),
            to: date(2025, 3, 30),
        };
        let (start, end) = spring.instants(&sthlm());
        assert_eq!(
            (start.to_string().as_str(), end.to_string().as_str()),
            ("2025-03-29T23:00:00Z", "2025-03-30T22:00:00Z")
        );
        assert_eq!((end.as_second() - start.as_second()) / 3600, 23);
        let autumn = Days {
            from: date(2025, 10, 26),
            to: date(2025, 10, 26),
        };
        let (start, end) = autumn.instants(&sthlm());
        assert_eq!((end.as_second() - start.as_second()) / 3600, 25);
    }

    #[test]
    fn dates_parse_as_days_or_date_times_in_the_zone() {
        assert_eq!(parse_date("2025-06-01", &sthlm()), Ok(date(2025, 6, 1)));
        assert_eq!(
            parse_date("2025-05-31T23:30:00Z", &sthlm()),
            Ok(date(2025, 6, 1))
        );
        assert_eq!(
            parse_date("2025-06-01T00:30:00+0200", &sthlm()),
            Ok(date(2025, 6, 1))
        );
        assert_eq!(
            parse_date("2025-06-01T10:00:00", &sthlm()),
            Ok(date(2025, 6, 1))
        );
        for bad in ["2025-13-01", "01/06/2025", "", "2025-06-01T25:00:00Z"] {
            assert!(parse_date(bad, &sthlm()).is_err(), "{bad}");
        }
    }

    #[test]
    fn new_permits_default_to_today_or_the_allocation_start_until_its_end() {
        let today = date(2025, 6, 1);
        assert_eq!(
            new_permit_days(None, None, ALLOC, today).unwrap(),
            Days {
                from: today,
                to: ALLOC.to
            }
        );
        let later = Days {
            from: date(2026, 1, 1),
            to: date(2026, 12, 31),
        };
        assert_eq!(
            new_permit_days(None, None, later, today).unwrap().from,
            later.from
        );
        let errors = new_permit_days(Some(date(2018, 1, 1)), Some(date(2030, 1, 1)), ALLOC, today)
            .unwrap_err();
        assert!(errors.contains("valid_from") && errors.contains("valid_to"));
        let errors = new_permit_days(
            Some(date(2025, 6, 10)),
            Some(date(2025, 6, 9)),
            ALLOC,
            today,
        )
        .unwrap_err();
        assert!(errors.contains("valid_to"));
    }

    #[test]
    fn updates_keep_or_move_forward_the_first_day() {
        let today = date(2025, 6, 1);
        let current = Days {
            from: date(2025, 5, 1),
            to: date(2025, 12, 31),
        };
        let same = updated_permit_days(
            current,
            Some(current.from),
            Some(date(2026, 1, 31)),
            ALLOC,
            today,
        )
        .unwrap();
        assert_eq!(
            same,
            Days {
                from: current.from,
                to: date(2026, 1, 31)
            }
        );
        assert!(
            updated_permit_days(current, Some(date(2025, 5, 2)), None, ALLOC, today)
                .unwrap_err()
                .contains("valid_from")
        );
        assert_eq!(
            updated_permit_days(current, Some(today), None, ALLOC, today)
                .unwrap()
                .from,
            today
        );
        assert_eq!(
            updated_permit_days(current, None, None, ALLOC, today).unwrap(),
            current
        );
        assert!(
            updated_permit_days(current, None, Some(date(2029, 1, 1)), ALLOC, today)
                .unwrap_err()
                .contains("valid_to")
        );
    }

    #[test]
    fn quota_counts_permits_until_their_last_day_is_over() {
        let days = Days {
            from: date(2025, 1, 1),
            to: date(2025, 6, 1),
        };
        assert!(days.counts_on(date(2025, 6, 1)));
        assert!(!days.counts_on(date(2025, 6, 2)));
        assert!(days.overlaps(&Days {
            from: date(2025, 6, 1),
            to: date(2025, 7, 1)
        }));
        assert!(!days.overlaps(&Days {
            from: date(2025, 6, 2),
            to: date(2025, 7, 1)
        }));
    }

    fn schedule(days: &[&str], from: &str, to: &str) -> Schedule {
        Schedule::parse(&[WindowSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
        }])
        .unwrap()
    }

    #[test]
    fn a_permit_covers_its_lots_on_its_days_in_its_windows() {
        let morning = schedule(&["mon", "tue", "wed", "thu", "fri"], "05:00", "09:00");
        let cover = PermitCover {
            days: Days {
                from: date(2025, 1, 6),
                to: date(2025, 1, 10),
            },
            zone: &sthlm(),
            lots: &[12, 14],
            schedule: &morning,
        };
        // Monday 06:00 local = 05:00Z
        let hit = cover.covers(12, ts("2025-01-06T05:00:00Z")).unwrap();
        assert_eq!(hit.until.unwrap(), ts("2025-01-06T08:00:00Z"));
        assert!(
            cover.covers(13, ts("2025-01-06T05:00:00Z")).is_none(),
            "other lot"
        );
        assert!(
            cover.covers(12, ts("2025-01-06T09:00:00Z")).is_none(),
            "10:00 local"
        );
        assert!(
            cover.covers(12, ts("2025-01-13T05:00:00Z")).is_none(),
            "after the last day"
        );
        assert!(
            cover.covers(12, ts("2025-01-03T05:00:00Z")).is_none(),
            "before the first day"
        );
    }

    #[test]
    fn an_all_day_permit_lasts_until_the_end_of_its_last_local_day() {
        let all = Schedule::default();
        let zone = sthlm();
        let cover = PermitCover {
            days: Days {
                from: date(2025, 10, 20),
                to: date(2025, 10, 26),
            },
            zone: &zone,
            lots: &[12],
            schedule: &all,
        };
        let hit = cover.covers(12, ts("2025-10-25T12:00:00Z")).unwrap();
        // the day after the last, 00:00 local, in winter time
        assert_eq!(hit.until.unwrap(), ts("2025-10-26T23:00:00Z"));
        assert!(cover.covers(12, ts("2025-10-26T22:59:59Z")).is_some());
        assert!(cover.covers(12, ts("2025-10-26T23:00:00Z")).is_none());
        // the first day starts at local midnight, summer time
        assert!(cover.covers(12, ts("2025-10-19T21:59:59Z")).is_none());
        assert!(cover.covers(12, ts("2025-10-19T22:00:00Z")).is_some());
    }

    #[test]
    fn covered_stretches_of_a_stay_are_found_and_merged() {
        let morning = schedule(&["mon", "tue", "wed", "thu", "fri"], "05:00", "09:00");
        let zone = sthlm();
        let cover = PermitCover {
            days: Days {
                from: date(2025, 1, 1),
                to: date(2025, 1, 31),
            },
            zone: &zone,
            lots: &[12],
            schedule: &morning,
        };
        // Monday 6 January 03:30 to Tuesday 10:00 local
        let found = covered_intervals(
            std::slice::from_ref(&cover),
            12,
            ts("2025-01-06T02:30:00Z"),
            ts("2025-01-07T09:00:00Z"),
        );
        assert_eq!(
            found,
            vec![
                (ts("2025-01-06T04:00:00Z"), ts("2025-01-06T08:00:00Z")),
                (ts("2025-01-07T04:00:00Z"), ts("2025-01-07T08:00:00Z")),
            ]
        );
        assert!(
            covered_intervals(
                std::slice::from_ref(&cover),
                13,
                ts("2025-01-06T02:30:00Z"),
                ts("2025-01-07T09:00:00Z")
            )
            .is_empty()
        );
        // an all-day permit next to it merges into one stretch, cut at the stay's end
        let all = Schedule::default();
        let whole = PermitCover {
            schedule: &all,
            ..cover.clone()
        };
        assert_eq!(
            covered_intervals(
                &[cover, whole],
                12,
                ts("2025-01-06T02:30:00Z"),
                ts("2025-01-07T09:00:00Z")
            ),
            vec![(ts("2025-01-06T02:30:00Z"), ts("2025-01-07T09:00:00Z"))]
        );
    }

    #[test]
    fn night_windows_across_midnight_and_the_spring_change() {
        let nights = schedule(&["sat"], "22:00", "06:00");
        let zone = sthlm();
        let cover = PermitCover {
            days: Days {
                from: date(2025, 3, 1),
                to: date(2025, 3, 31),
            },
            zone: &zone,
            lots: &[12],
            schedule: &nights,
        };
        // Saturday 29 March 23:30 CET = 22:30Z; the window ends Sunday 06:00 CEST = 04:00Z
        let hit = cover.covers(12, ts("2025-03-29T22:30:00Z")).unwrap();
        assert_eq!(hit.until.unwrap(), ts("2025-03-30T04:00:00Z"));
        // Sunday 03:30 CEST (01:30Z) is still inside; 06:00 CEST is not
        assert!(cover.covers(12, ts("2025-03-30T01:30:00Z")).is_some());
        assert!(cover.covers(12, ts("2025-03-30T04:00:00Z")).is_none());
    }
}
