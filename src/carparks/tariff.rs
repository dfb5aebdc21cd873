//! What a stay costs: a pure function of entry, exit, the car park's rate, and the stretches
//! in which the vehicle held a permit there (those minutes are free).
//!
//! The rules, in order, for each minute of the stay (the last one rounded up):
//! - the rate's first `freeMinutes` of the stay are free;
//! - minutes covered by a permit are free;
//! - the remaining minutes are charged in periods of `periodMinutes` chargeable minutes; each
//!   started period costs the price of the band in force (local time, the lot's zone) at its
//!   first minute, or the rate's own `pricePerPeriod` outside every band;
//! - what one local calendar day (the day a period starts on) costs never exceeds `maxPerDay`.

use std::collections::HashMap;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::domain::TimeZoneName;

/// Minutes since local midnight, 0..=1440.
pub type Minute = u16;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Band {
    pub from: Minute,
    pub to: Minute,
    pub price_per_period: i64,
}

impl Band {
    /// Does the band include this minute of the day? `to` before `from` crosses midnight.
    pub fn includes(&self, minute: Minute) -> bool {
        if self.from < self.to {
            self.from <= minute && minute < self.to
        } else {
            minute >= self.from || minute < self.to
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    pub rate_no: i64,
    pub name: String,
    pub currency_code: String,
    pub free_minutes: i64,
    pub period_minutes: i64,
    pub price_per_period: i64,
    pub bands: Vec<Band>,
    pub max_per_day: Option<i64>,
    pub is_default: bool,
}

/// A band as sent and shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BandSpec {
    #[schema(example = "18:00")]
    pub from: String,
    #[schema(example = "08:00")]
    pub to: String,
    #[schema(example = 1000)]
    pub price_per_period: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Price {
    /// Whole minutes, rounded up.
    pub duration_minutes: i64,
    /// Minor units (öre, cents).
    pub amount_minor: i64,
}

/// The stay's length in whole minutes, rounded up (0 for an exit at the entry instant).
pub fn duration_minutes(entry: Timestamp, exit: Timestamp) -> i64 {
    let micros = (exit.as_microsecond() - entry.as_microsecond()).max(0);
    (micros + 59_999_999) / 60_000_000
}

pub fn price(
    entry: Timestamp,
    exit: Timestamp,
    rate: &Rate,
    zone: &TimeZoneName,
    covered: &[(Timestamp, Timestamp)],
) -> Price {
    let duration = duration_minutes(entry, exit);
    let period = rate.period_minutes.max(1);
    let mut per_day: HashMap<Date, i64> = HashMap::new();
    let mut in_period = 0i64;
    let mut amount = 0i64;
    for i in 0..duration {
        if i < rate.free_minutes {
            continue;
        }
        let Ok(at) = entry.checked_add(jiff::SignedDuration::from_mins(i)) else {
            break;
        };
        if covered.iter().any(|(from, to)| *from <= at && at < *to) {
            continue;
        }
        if in_period > 0 && in_period < period {
            in_period += 1;
            continue;
        }
        in_period = 1;
        let local = zone.zoned(at);
        let minute = local.hour() as Minute * 60 + local.minute() as Minute;
        let price = rate
            .bands
            .iter()
            .find(|b| b.includes(minute))
            .map_or(rate.price_per_period, |b| b.price_per_period);
        let day_total = per_day.entry(local.date()).or_insert(0);
        let charge = match rate.max_per_day {
            Some(max) => price.min((max - *day_total).max(0)),
            None => price,
        };
        *day_total += charge;
        amount += charge;
    }
    Price {
        duration_minutes: duration,
        amount_minor: amount,
    }
}

/// Minor units as the decimal the seed's `Amount` is (two decimals).
pub fn major_units(amount_minor: i64) -> f64 {
    amount_minor as f64 / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn standard() -> Rate {
        Rate {
            rate_no: 1,
            name: "Standard".into(),
            currency_code: "SEK".into(),
            free_minutes: 15,
            period_minutes: 60,
            price_per_period: 2000,
            bands: vec![Band {
                from: 18 * 60,
                to: 8 * 60,
                price_per_period: 1000,
            }],
            max_per_day: Some(15000),
            is_default: true,
        }
    }

    fn sthlm() -> TimeZoneName {
        TimeZoneName::stockholm()
    }

    fn cost(entry: &str, exit: &str, rate: &Rate) -> Price {
        price(ts(entry), ts(exit), rate, &sthlm(), &[])
    }

    #[test]
    fn durations_round_up_to_whole_minutes() {
        assert_eq!(
            duration_minutes(ts("2025-01-06T10:00:00Z"), ts("2025-01-06T10:00:00Z")),
            0
        );
        assert_eq!(
            duration_minutes(ts("2025-01-06T10:00:00Z"), ts("2025-01-06T10:00:01Z")),
            1
        );
        assert_eq!(
            duration_minutes(ts("2025-01-06T10:00:00Z"), ts("2025-01-06T11:00:00Z")),
            60
        );
        assert_eq!(
            duration_minutes(ts("2025-01-06T10:00:00Z"), ts("2025-01-06T11:00:00.5Z")),
            61
        );
    }

    #[test]
    fn free_minutes_then_started_periods() {
        // Monday 10:00 local (09:00Z), daytime price 20 SEK a started hour
        assert_eq!(
            cost("2025-01-06T09:00:00Z", "2025-01-06T09:15:00Z", &standard()).amount_minor,
            0
        );
        assert_eq!(
            cost("2025-01-06T09:00:00Z", "2025-01-06T09:16:00Z", &standard()).amount_minor,
            2000
        );
        assert_eq!(
            cost("2025-01-06T09:00:00Z", "2025-01-06T10:15:00Z", &standard()).amount_minor,
            2000
        );
        assert_eq!(
            cost("2025-01-06T09:00:00Z", "2025-01-06T10:16:00Z", &standard()).amount_minor,
            4000
        );
    }

    #[test]
    fn bands_price_periods_by_their_first_minute() {
        // 17:30 local entry: free until 17:45, the first period starts in daytime (20),
        // the second at 18:45 in the evening band (10)
        let p = cost("2025-01-06T16:30:00Z", "2025-01-06T18:30:00Z", &standard());
        assert_eq!(
            p,
            Price {
                duration_minutes: 120,
                amount_minor: 3000
            }
        );
        // a night across midnight, all in the evening band
        let night = cost("2025-01-06T20:00:00Z", "2025-01-07T04:00:00Z", &standard());
        assert_eq!(
            night.amount_minor,
            8 * 1000,
            "15 free minutes, then 8 started hours at 10"
        );
    }

    #[test]
    fn each_local_day_is_capped_at_the_daily_maximum() {
        // Monday 08:00 to Wednesday 08:00 local: Monday and Tuesday reach the maximum;
        // Wednesday has eight evening-band periods (00:15 to 07:15) at 10
        let p = cost("2025-01-06T07:00:00Z", "2025-01-08T07:00:00Z", &standard());
        assert_eq!(p.duration_minutes, 48 * 60);
        assert_eq!(p.amount_minor, 15000 + 15000 + 8 * 1000);
        let uncapped = Rate {
            max_per_day: None,
            ..standard()
        };
        assert!(
            cost("2025-01-06T07:00:00Z", "2025-01-08T07:00:00Z", &uncapped).amount_minor > 30000
        );
    }

    #[test]
    fn the_daily_maximum_follows_local_days_across_daylight_saving_changes() {
        let flat = Rate {
            bands: vec![],
            free_minutes: 0,
            max_per_day: Some(5000),
            ..standard()
        };
        // Saturday 29 March 12:00 local to Monday 31 March 00:00 local: Sunday has 23 hours
        let spring = cost("2025-03-29T11:00:00Z", "2025-03-30T22:00:00Z", &flat);
        assert_eq!(spring.duration_minutes, 12 * 60 + 23 * 60);
        assert_eq!(spring.amount_minor, 5000 + 5000);
        // Sunday 26 October has 25 hours, still one day
        let autumn = cost("2025-10-25T22:00:00Z", "2025-10-26T23:00:00Z", &flat);
        assert_eq!(autumn.duration_minutes, 25 * 60);
        assert_eq!(autumn.amount_minor, 5000);
    }

    #[test]
    fn bands_follow_local_time_across_the_spring_change() {
        // 30 March: local 01:00 to 04:00 is two real hours (02:00-03:00 does not exist); all
        // inside the 18:00-08:00 band
        let rate = Rate {
            free_minutes: 0,
            max_per_day: None,
            ..standard()
        };
        let p = cost("2025-03-30T00:00:00Z", "2025-03-30T02:00:00Z", &rate);
        assert_eq!(
            p,
            Price {
                duration_minutes: 120,
                amount_minor: 2000
            }
        );
    }

    #[test]
    fn permit_cover_makes_minutes_free() {
        let rate = Rate {
            free_minutes: 0,
            bands: vec![],
            max_per_day: None,
            ..standard()
        };
        let entry = ts("2025-01-06T04:00:00Z");
        let exit = ts("2025-01-06T09:00:00Z");
        let whole = [(ts("2025-01-06T00:00:00Z"), ts("2025-01-07T00:00:00Z"))];
        assert_eq!(price(entry, exit, &rate, &sthlm(), &whole).amount_minor, 0);
        // covered 05:00-08:00Z: one chargeable hour before, one after
        let partial = [(ts("2025-01-06T05:00:00Z"), ts("2025-01-06T08:00:00Z"))];
        assert_eq!(
            price(entry, exit, &rate, &sthlm(), &partial).amount_minor,
            4000
        );
        // 30 chargeable minutes either side of the cover still make one period
        let middle = [(ts("2025-01-06T04:30:00Z"), ts("2025-01-06T08:30:00Z"))];
        assert_eq!(
            price(entry, exit, &rate, &sthlm(), &middle).amount_minor,
            2000
        );
    }

    #[test]
    fn bands_may_cross_midnight() {
        let band = Band {
            from: 22 * 60,
            to: 6 * 60,
            price_per_period: 1,
        };
        assert!(band.includes(23 * 60) && band.includes(0) && band.includes(5 * 60 + 59));
        assert!(!band.includes(6 * 60) && !band.includes(12 * 60));
    }

    proptest! {
        #[test]
        fn staying_longer_never_costs_less(
            start in 1_700_000_000i64..1_800_000_000,
            a in 0i64..4000,
            b in 0i64..4000,
        ) {
            let entry = Timestamp::from_second(start).unwrap();
            let (short, long) = (a.min(b), a.max(b));
            let shorter = price(entry, entry.checked_add(jiff::SignedDuration::from_mins(short)).unwrap(), &standard(), &sthlm(), &[]);
            let longer = price(entry, entry.checked_add(jiff::SignedDuration::from_mins(long)).unwrap(), &standard(), &sthlm(), &[]);
            prop_assert!(shorter.amount_minor <= longer.amount_minor);
        }

        #[test]
        fn never_more_than_the_daily_maximum_per_local_day_touched(
            start in 1_700_000_000i64..1_800_000_000,
            minutes in 0i64..10_000,
        ) {
            let entry = Timestamp::from_second(start).unwrap();
            let exit = entry.checked_add(jiff::SignedDuration::from_mins(minutes)).unwrap();
            let p = price(entry, exit, &standard(), &sthlm(), &[]);
            let first = sthlm().zoned(entry).date();
            let last = sthlm().zoned(exit).date();
            let days = (last - first).get_days() as i64 + 1;
            prop_assert!(p.amount_minor <= days * 15000);
            prop_assert_eq!(p.duration_minutes, minutes);
        }

        #[test]
        fn a_permit_over_the_whole_stay_makes_it_free(
            start in 1_700_000_000i64..1_800_000_000,
            minutes in 0i64..5_000,
        ) {
            let entry = Timestamp::from_second(start).unwrap();
            let exit = entry.checked_add(jiff::SignedDuration::from_mins(minutes)).unwrap();
            let cover = [(entry, exit)];
            prop_assert_eq!(price(entry, exit, &standard(), &sthlm(), &cover).amount_minor, 0);
        }
    }
}
