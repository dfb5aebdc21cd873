//! Instants in, instants out: parsing the date-times clients send and rendering them in a
//! lot's local time. Instants are stored in UTC; each lot keeps its IANA time zone.

use std::fmt;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, Offset, TimeZone};
use jiff::{Timestamp, Zoned};

/// A valid IANA time zone name, e.g. `Europe/Stockholm`, with its rules loaded.
#[derive(Clone)]
pub struct TimeZoneName {
    name: String,
    tz: TimeZone,
}

impl TimeZoneName {
    pub fn parse(name: &str) -> Result<Self, String> {
        let trimmed = name.trim();
        if trimmed.is_empty() {
            return Err("must be an IANA time zone name, e.g. Europe/Stockholm".into());
        }
        match TimeZone::get(trimmed) {
            Ok(tz) => Ok(Self {
                name: trimmed.to_owned(),
                tz,
            }),
            Err(_) => Err(format!(
                "'{trimmed}' is not a known IANA time zone name (e.g. Europe/Stockholm)"
            )),
        }
    }

    pub fn stockholm() -> Self {
        Self::parse("Europe/Stockholm").expect("the bundled tz database has Europe/Stockholm")
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tz(&self) -> &TimeZone {
        &self.tz
    }

    /// `2025-02-10T12:00:00+01:00`: local time with the offset in force at that instant.
    pub fn render(&self, at: Timestamp) -> String {
        self.zoned(at).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
    }

    /// `2018-06-19T00:00:00+0100`: the permit seed's style, offset without a colon.
    pub fn render_compact(&self, at: Timestamp) -> String {
        self.zoned(at).strftime("%Y-%m-%dT%H:%M:%S%z").to_string()
    }

    pub fn zoned(&self, at: Timestamp) -> Zoned {
        at.to_zoned(self.tz.clone())
    }
}

impl fmt::Debug for TimeZoneName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TimeZoneName").field(&self.name).finish()
    }
}

impl PartialEq for TimeZoneName {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

/// A date-time as a client sent it: either an absolute instant (it had `Z` or an offset), or a
/// wall-clock time to be read in some place's time zone.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DateTimeInput {
    Absolute(Timestamp),
    Local(DateTime),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LocalTimeError {
    #[error("{0} does not exist in {1}: the clocks skip it when daylight saving time starts")]
    InGap(DateTime, String),
}

const FORMAT_HINT: &str = "must be an ISO 8601 date-time such as 2023-10-01T12:00:00Z, 2023-10-01T14:00:00+02:00 or 2023-10-01T14:00:00+0200";

impl DateTimeInput {
    /// Accepts `YYYY-MM-DDTHH:MM[:SS[.fraction]]` followed by `Z`, `±HH:MM`, `±HHMM`, `±HH`, or
    /// nothing (a local time).
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bytes = text.as_bytes();
        // A date-time needs a date (10 chars), a separator and at least HH:MM.
        if bytes.len() < 16 || !matches!(bytes[10], b'T' | b't' | b' ') || !text.is_ascii() {
            return Err(FORMAT_HINT.into());
        }
        let (civil, offset) = split_offset(text)?;
        let civil = DateTime::from_str(civil).map_err(|_| FORMAT_HINT.to_string())?;
        Ok(match offset {
            None => Self::Local(civil),
            Some(offset) => {
                let ts = offset
                    .to_timestamp(civil)
                    .map_err(|_| "is out of the supported range".to_string())?;
                Self::Absolute(ts)
            }
        })
    }

    /// The instant this input names, reading a local time in `zone`. A local time in the spring
    /// gap is an error; one in the autumn fold (it happens twice) is the earlier instant.
    pub fn resolve(&self, zone: &TimeZoneName) -> Result<Timestamp, LocalTimeError> {
        match *self {
            Self::Absolute(ts) => Ok(ts),
            Self::Local(dt) => local_to_instant(dt, zone),
        }
    }
}

/// A wall-clock time in `zone` as an instant: the gap is an error, the fold the earlier one.
pub fn local_to_instant(dt: DateTime, zone: &TimeZoneName) -> Result<Timestamp, LocalTimeError> {
    let ambiguous = zone.tz().to_ambiguous_timestamp(dt);
    match ambiguous.offset() {
        AmbiguousOffset::Gap { .. } => Err(LocalTimeError::InGap(dt, zone.name().to_owned())),
        AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => {
            offset
                .to_timestamp(dt)
                .map_err(|_| LocalTimeError::InGap(dt, zone.name().to_owned()))
        }
    }
}

/// A wall-clock time in `zone` as the instant a clock-bound boundary (the end of a window, the
/// end of a day) happens: in the spring gap, the moment the clocks jump; in the autumn fold,
/// the first of the two instants.
pub fn boundary_instant(dt: DateTime, zone: &TimeZoneName) -> Option<Timestamp> {
    match zone.tz().to_ambiguous_timestamp(dt).offset() {
        AmbiguousOffset::Unambiguous { offset } | AmbiguousOffset::Fold { before: offset, .. } => {
            offset.to_timestamp(dt).ok()
        }
        AmbiguousOffset::Gap { before, .. } => {
            // read with the offset before the jump, the time lies just after the transition
            let after_jump = before.to_timestamp(dt).ok()?;
            zone.tz()
                .preceding(after_jump)
                .next()
                .map(|transition| transition.timestamp())
        }
    }
}

fn split_offset(text: &str) -> Result<(&str, Option<Offset>), String> {
    if let Some(civil) = text.strip_suffix(['Z', 'z']) {
        return Ok((civil, Some(Offset::UTC)));
    }
    // The offset's sign is the last '+' or '-' after the time's start (position 11 onwards);
    // the date's own dashes come before it.
    let Some(pos) = text[11..].rfind(['+', '-']).map(|p| p + 11) else {
        return Ok((text, None));
    };
    let (civil, suffix) = text.split_at(pos);
    let sign: i32 = if suffix.starts_with('-') { -1 } else { 1 };
    let digits = &suffix[1..];
    let colons = |at: &[usize]| at.iter().all(|&i| digits.as_bytes()[i] == b':');
    // Seconds appear in offsets we render ourselves: local mean time before standard time
    // (Stockholm was +01:12:12 until 1879), so what parkhub writes, it reads.
    let (hh, mm, ss) = match digits.len() {
        2 => (digits, "00", "00"),
        4 => (&digits[..2], &digits[2..], "00"),
        5 if colons(&[2]) => (&digits[..2], &digits[3..], "00"),
        6 => (&digits[..2], &digits[2..4], &digits[4..]),
        8 if colons(&[2, 5]) => (&digits[..2], &digits[3..5], &digits[6..]),
        _ => return Err(FORMAT_HINT.into()),
    };
    let (Ok(h), Ok(m), Ok(sec)) = (hh.parse::<i32>(), mm.parse::<i32>(), ss.parse::<i32>()) else {
        return Err(FORMAT_HINT.into());
    };
    let mut all_digits = hh.bytes().chain(mm.bytes()).chain(ss.bytes());
    if !all_digits.all(|b| b.is_ascii_digit()) || h > 23 || m > 59 || sec > 59 {
        return Err("has an offset out of range (at most ±23:59)".into());
    }
    let offset = Offset::from_seconds(sign * (h * 3600 + m * 60 + sec))
        .map_err(|_| "has an offset out of range (at most ±23:59)".to_string())?;
    Ok((civil, Some(offset)))
}

/// A local time of day `HH:MM` as minutes since midnight; `24:00` (1440) only if `allow_24`.
pub fn parse_clock(text: &str, allow_24: bool) -> Option<u16> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u16, u16) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) if allow_24 => Some(1440),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

/// Minutes since midnight as `HH:MM`; 1440 is `24:00`.
pub fn render_clock(minute: u16) -> String {
    format!("{:02}:{:02}", minute / 60, minute % 60)
}

/// Unix microseconds, the storage form of an instant.
pub fn to_micros(ts: Timestamp) -> i64 {
    ts.as_microsecond()
}

pub fn from_micros(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sthlm() -> TimeZoneName {
        TimeZoneName::stockholm()
    }

    fn abs(text: &str) -> Timestamp {
        match DateTimeInput::parse(text).unwrap() {
            DateTimeInput::Absolute(ts) => ts,
            other => panic!("{text} parsed as {other:?}"),
        }
    }

    #[test]
    fn three_offset_spellings_name_one_instant() {
        let z = abs("2023-10-01T12:00:00Z");
        assert_eq!(abs("2023-10-01T14:00:00+02:00"), z);
        assert_eq!(abs("2023-10-01T14:00:00+0200"), z);
        assert_eq!(abs("2023-10-01T14:00:00+02"), z);
        assert_eq!(abs("2023-10-01T07:30:00-04:30"), z);
        assert_eq!(abs("2023-10-01T12:00:00.000Z"), z);
    }

    #[test]
    fn renders_winter_and_summer_offsets_for_stockholm() {
        assert_eq!(
            sthlm().render(abs("2025-02-10T11:00:00Z")),
            "2025-02-10T12:00:00+01:00"
        );
        assert_eq!(
            sthlm().render(abs("2023-10-01T12:00:00Z")),
            "2023-10-01T14:00:00+02:00"
        );
        assert_eq!(
            sthlm().render_compact(abs("2018-06-18T22:00:00Z")),
            "2018-06-19T00:00:00+0200"
        );
    }

    #[test]
    fn offsets_switch_exactly_at_the_daylight_saving_changes() {
        // 2024: summer time from 2024-03-31 01:00Z, winter time from 2024-10-27 01:00Z.
        let z = sthlm();
        assert_eq!(
            z.render(abs("2024-03-31T00:59:59Z")),
            "2024-03-31T01:59:59+01:00"
        );
        assert_eq!(
            z.render(abs("2024-03-31T01:00:00Z")),
            "2024-03-31T03:00:00+02:00"
        );
        assert_eq!(
            z.render(abs("2024-10-27T00:59:59Z")),
            "2024-10-27T02:59:59+02:00"
        );
        assert_eq!(
            z.render(abs("2024-10-27T01:00:00Z")),
            "2024-10-27T02:00:00+01:00"
        );
    }

    #[test]
    fn local_time_in_the_spring_gap_is_rejected() {
        let input = DateTimeInput::parse("2024-03-31T02:30:00").unwrap();
        assert!(matches!(input, DateTimeInput::Local(_)));
        assert!(input.resolve(&sthlm()).is_err());
    }

    #[test]
    fn local_time_in_the_autumn_fold_is_the_earlier_instant() {
        let input = DateTimeInput::parse("2024-10-27T02:30:00").unwrap();
        assert_eq!(
            input.resolve(&sthlm()).unwrap(),
            abs("2024-10-27T00:30:00Z")
        );
    }

    #[test]
    fn local_time_reads_in_the_zone() {
        let input = DateTimeInput::parse("2025-02-10T12:00:00").unwrap();
        assert_eq!(
            input.resolve(&sthlm()).unwrap(),
            abs("2025-02-10T11:00:00Z")
        );
    }

    #[test]
    fn rejects_what_is_not_a_date_time() {
        for bad in [
            "",
            "2023-10-01",
            "yesterday",
            "2023-13-01T12:00:00Z",
            "2023-02-30T12:00:00Z",
            "2023-10-01T25:00:00Z",
            "2023-10-01T12:00:00+2:00",
            "2023-10-01T12:00:00+24:00",
            "2023-10-01T12:00:00+01:60",
            "2023-10-01T12:00:00+0a00",
            "2023-10-01T12:00:00ZZ",
            "2023-10-01X12:00:00Z",
            "1700000000",
        ] {
            assert!(DateTimeInput::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn offsets_with_seconds_read_back_as_rendered() {
        let at = abs("1868-11-01T11:46:11Z");
        let rendered = sthlm().render(at);
        assert_eq!(rendered, "1868-11-01T12:58:23+01:12:12");
        assert_eq!(abs(&rendered), at);
        assert_eq!(abs(&sthlm().render_compact(at)), at);
    }

    #[test]
    fn time_zone_names_are_checked() {
        assert!(TimeZoneName::parse("Europe/Stockholm").is_ok());
        assert!(TimeZoneName::parse("America/New_York").is_ok());
        assert!(TimeZoneName::parse("Europe/Falun").is_err());
        assert!(TimeZoneName::parse("").is_err());
    }

    proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = DateTimeInput::parse(&s);
        }

        #[test]
        fn parse_never_panics_on_near_misses(
            s in "[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2})?([.][0-9]{1,9})?(Z|[+-][0-9]{2}(:?[0-9]{2})?)?"
        ) {
            let _ = DateTimeInput::parse(&s);
        }

        #[test]
        fn rendered_local_time_parses_back_to_the_same_instant(
            secs in 0i64..4_102_444_800,
            zone in prop::sample::select(vec!["Europe/Stockholm", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]),
        ) {
            let zone = TimeZoneName::parse(zone).unwrap();
            let ts = Timestamp::from_second(secs).unwrap();
            prop_assert_eq!(abs(&zone.render(ts)), ts);
            prop_assert_eq!(abs(&zone.render_compact(ts)), ts);
        }
    }
}
