//! When a permit definition lets a vehicle park: weekly windows of local time, read in the
//! definition's time zone. A window may cross midnight (`22:00` to `06:00`). No windows means
//! all day, every day.

use jiff::Timestamp;
use jiff::civil::{Date, Time, Weekday};
use serde::{Deserialize, Serialize};

use crate::domain::TimeZoneName;
use crate::domain::time::{boundary_instant, parse_clock, render_clock};
use crate::http::FieldErrors;

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Monday),
    ("tue", Weekday::Tuesday),
    ("wed", Weekday::Wednesday),
    ("thu", Weekday::Thursday),
    ("fri", Weekday::Friday),
    ("sat", Weekday::Saturday),
    ("sun", Weekday::Sunday),
];

/// A window as sent and shown: `{"days":["mon","tue"],"from":"05:00","to":"09:00"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WindowSpec {
    /// `mon` … `sun`: the days on which the window starts.
    #[schema(example = json!(["mon", "tue", "wed", "thu", "fri"]))]
    pub days: Vec<String>,
    /// `HH:MM`, local time.
    #[schema(example = "05:00")]
    pub from: String,
    /// `HH:MM` (or `24:00`); earlier than `from` means the window ends the next day.
    #[schema(example = "09:00")]
    pub to: String,
}

/// Minutes since local midnight, 0..=1440.
type Minute = u16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    days: [bool; 7],
    from: Minute,
    to: Minute,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Schedule {
    windows: Vec<Window>,
}

/// The window that lets a vehicle park at some instant, and when it stops doing so.
#[derive(Debug, Clone, PartialEq)]
pub struct InForce {
    /// Index into the schedule's windows; `None` for an all-day schedule.
    pub window: Option<usize>,
    /// When this stretch of permission ends (never after the end of the permit's last day);
    /// `None` when it lasts as long as the permit.
    pub until: Option<Timestamp>,
}

fn day_index(day: Weekday) -> usize {
    day.to_monday_zero_offset() as usize
}

impl Schedule {
    pub const MAX_WINDOWS: usize = 50;

    /// Parses windows, naming each problem as `schedule[i].field`.
    pub fn parse(specs: &[WindowSpec]) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        if specs.len() > Self::MAX_WINDOWS {
            errors.add(
                "schedule",
                format!("must have at most {} windows", Self::MAX_WINDOWS),
            );
            return Err(errors);
        }
        let mut windows = Vec::new();
        for (i, spec) in specs.iter().enumerate() {
            let mut days = [false; 7];
            if spec.days.is_empty() {
                errors.add(&format!("schedule[{i}].days"), "must name at least one day");
            }
            for day in &spec.days {
                match DAY_NAMES
                    .iter()
                    .find(|(name, _)| day.eq_ignore_ascii_case(name))
                {
                    Some((_, weekday)) => days[day_index(*weekday)] = true,
                    None => errors.add(
                        &format!("schedule[{i}].days"),
                        format!("'{day}' is not a day: use mon, tue, wed, thu, fri, sat, sun"),
                    ),
                }
            }
            let from = parse_clock(&spec.from, false);
            let to = parse_clock(&spec.to, true);
            if from.is_none() {
                errors.add(
                    &format!("schedule[{i}].from"),
                    "must be a time HH:MM from 00:00 to 23:59",
                );
            }
            if to.is_none() {
                errors.add(
                    &format!("schedule[{i}].to"),
                    "must be a time HH:MM from 00:00 to 24:00",
                );
            }
            if let (Some(from), Some(to)) = (from, to) {
                if from == to {
                    errors.add(
                        &format!("schedule[{i}].to"),
                        "must differ from 'from' (use 00:00 to 24:00 for a whole day)",
                    );
                } else {
                    windows.push(Window { days, from, to });
                }
            }
        }
        if errors.is_empty() {
            Ok(Self { windows })
        } else {
            Err(errors)
        }
    }

    pub fn is_all_day(&self) -> bool {
        self.windows.is_empty()
    }

    pub fn to_specs(&self) -> Vec<WindowSpec> {
        self.windows
            .iter()
            .map(|w| WindowSpec {
                days: DAY_NAMES
                    .iter()
                    .filter(|(_, d)| w.days[day_index(*d)])
                    .map(|(n, _)| (*n).to_owned())
                    .collect(),
                from: render_clock(w.from),
                to: render_clock(w.to),
            })
            .collect()
    }

    /// Which window (if any) includes the local date and time, and when it ends. `last_day` is
    /// the permit's last day: a window never reaches past its end.
    pub fn in_force(
        &self,
        zone: &TimeZoneName,
        date: Date,
        time: Time,
        last_day: Date,
    ) -> Option<InForce> {
        let end_of_permit = |d: Date| d.tomorrow().ok();
        if self.is_all_day() {
            return Some(InForce {
                window: None,
                until: None,
            });
        }
        let minute = (time.hour() as u16) * 60 + time.minute() as u16;
        let today = day_index(date.weekday());
        let yesterday = (today + 6) % 7;
        for (i, w) in self.windows.iter().enumerate() {
            let crosses = w.to <= w.from;
            // (started on `date` and still running) or (started yesterday and crossed midnight)
            let end_day = if w.days[today] && minute >= w.from && (crosses || minute < w.to) {
                if crosses {
                    date.tomorrow().ok()
                } else {
                    Some(date)
                }
            } else if crosses && w.days[yesterday] && minute < w.to {
                Some(date)
            } else {
                continue;
            };
            let until = end_day.and_then(|end_day| {
                // the window's end as local date-time, capped at the end of the permit's last day
                let (day, minute) = if w.to == 1440 {
                    (end_day.tomorrow().ok()?, 0)
                } else {
                    (end_day, w.to)
                };
                let cap = end_of_permit(last_day)?;
                let (day, minute) = if day >= cap { (cap, 0) } else { (day, minute) };
                let local = day.at((minute / 60) as i8, (minute % 60) as i8, 0, 0);
                boundary_instant(local, zone)
            });
            return Some(InForce {
                window: Some(i),
                until,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;

    fn spec(days: &[&str], from: &str, to: &str) -> WindowSpec {
        WindowSpec {
            days: days.iter().map(|d| d.to_string()).collect(),
            from: from.into(),
            to: to.into(),
        }
    }

    fn sthlm() -> TimeZoneName {
        TimeZoneName::stockholm()
    }

    fn at(s: &Schedule, d: Date, h: i8, m: i8) -> Option<InForce> {
        s.in_force(
            &sthlm(),
            d,
            Time::new(h, m, 0, 0).unwrap(),
            date(2030, 1, 1),
        )
    }

    const MON: Date = date(2025, 1, 6);

    #[test]
    fn weekday_morning_window() {
        let s = Schedule::parse(&[spec(&["mon", "tue", "wed", "thu", "fri"], "05:00", "09:00")])
            .unwrap();
        assert!(at(&s, MON, 4, 59).is_none());
        let hit = at(&s, MON, 5, 0).unwrap();
        assert_eq!(hit.window, Some(0));
        assert_eq!(hit.until.unwrap().to_string(), "2025-01-06T08:00:00Z");
        assert!(at(&s, MON, 8, 59).is_some());
        assert!(at(&s, MON, 9, 0).is_none());
        let saturday = date(2025, 1, 11);
        assert!(at(&s, saturday, 6, 0).is_none());
    }

    #[test]
    fn windows_crossing_midnight_continue_into_the_next_day() {
        let s = Schedule::parse(&[spec(&["fri"], "22:00", "06:00")]).unwrap();
        let friday = date(2025, 1, 10);
        let saturday = date(2025, 1, 11);
        assert!(at(&s, friday, 21, 59).is_none());
        let late = at(&s, friday, 23, 0).unwrap();
        assert_eq!(late.until.unwrap().to_string(), "2025-01-11T05:00:00Z");
        let early = at(&s, saturday, 5, 59).unwrap();
        assert_eq!(early.until.unwrap().to_string(), "2025-01-11T05:00:00Z");
        assert!(at(&s, saturday, 6, 0).is_none());
        assert!(
            at(&s, saturday, 23, 0).is_none(),
            "saturday is not a start day"
        );
        assert!(
            at(&s, friday, 3, 0).is_none(),
            "thursday night is not covered"
        );
    }

    #[test]
    fn whole_days_and_empty_schedules() {
        let s = Schedule::parse(&[spec(&["sun"], "00:00", "24:00")]).unwrap();
        let sunday = date(2025, 1, 12);
        assert!(at(&s, sunday, 0, 0).is_some());
        assert_eq!(
            at(&s, sunday, 23, 59).unwrap().until.unwrap().to_string(),
            "2025-01-12T23:00:00Z"
        );
        assert!(at(&s, MON, 0, 0).is_none());
        assert_eq!(s.to_specs(), vec![spec(&["sun"], "00:00", "24:00")]);
        let all = Schedule::parse(&[]).unwrap();
        assert_eq!(
            at(&all, MON, 3, 0),
            Some(InForce {
                window: None,
                until: None
            })
        );
    }

    #[test]
    fn window_end_is_capped_at_the_end_of_the_permit() {
        let s = Schedule::parse(&[spec(&["mon"], "22:00", "06:00")]).unwrap();
        let hit = s
            .in_force(&sthlm(), MON, Time::new(23, 0, 0, 0).unwrap(), MON)
            .unwrap();
        assert_eq!(
            hit.until.unwrap().to_string(),
            "2025-01-06T23:00:00Z",
            "midnight local"
        );
    }

    #[test]
    fn window_ends_follow_daylight_saving_changes() {
        // Sunday 2025-03-30: clocks go 02:00 -> 03:00. A Saturday 22:00-06:00 window ends at
        // 06:00 CEST = 04:00Z; Sunday 2025-10-26: 03:00 -> 02:00, the same window ends at 05:00Z.
        let s = Schedule::parse(&[spec(&["sat"], "22:00", "06:00")]).unwrap();
        let spring = at(&s, date(2025, 3, 30), 1, 30).unwrap();
        assert_eq!(spring.until.unwrap().to_string(), "2025-03-30T04:00:00Z");
        let autumn = at(&s, date(2025, 10, 26), 2, 30).unwrap();
        assert_eq!(autumn.until.unwrap().to_string(), "2025-10-26T05:00:00Z");
        // a window ending inside the spring gap ends when the clocks jump
        let gap = Schedule::parse(&[spec(&["sun"], "01:00", "02:30")]).unwrap();
        let hit = at(&gap, date(2025, 3, 30), 1, 15).unwrap();
        assert_eq!(hit.until.unwrap().to_string(), "2025-03-30T01:00:00Z");
    }

    #[test]
    fn bad_windows_are_named() {
        let errors = Schedule::parse(&[
            spec(&["mon"], "05:00", "09:00"),
            spec(&["funday"], "25:00", "9"),
            spec(&[], "05:00", "05:00"),
        ])
        .unwrap_err();
        for field in [
            "schedule[1].days",
            "schedule[1].from",
            "schedule[1].to",
            "schedule[2].days",
            "schedule[2].to",
        ] {
            assert!(errors.contains(field), "{field}: {errors:?}");
        }
        assert!(!errors.contains("schedule[0].days"));
    }
}
