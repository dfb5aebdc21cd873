//! Licence plates: the raw text as sent, and the normal form vehicles are matched by.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// The longest raw licence plate text accepted, in characters.
pub const MAX_PLATE_CHARS: usize = 20;

/// A licence plate as sent by a client, together with its normal form.
///
/// The normal form is upper case with letters and digits only, so `abc 123`, `ABC-123` and
/// `ABC123` are one vehicle. Letters are never transliterated: `ÅBC1` and `ABC1` stay distinct.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LicensePlate {
    raw: String,
    normal: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PlateError {
    #[error("must not be blank")]
    Blank,
    #[error("must be at most {MAX_PLATE_CHARS} characters")]
    TooLong,
    #[error("must contain at least one letter or digit")]
    NoAlphanumeric,
}

impl LicensePlate {
    pub fn parse(raw: &str) -> Result<Self, PlateError> {
        if raw.trim().is_empty() {
            return Err(PlateError::Blank);
        }
        if raw.chars().count() > MAX_PLATE_CHARS {
            return Err(PlateError::TooLong);
        }
        let normal = normal_form(raw);
        if normal.is_empty() {
            return Err(PlateError::NoAlphanumeric);
        }
        Ok(Self {
            raw: raw.to_owned(),
            normal,
        })
    }

    /// The text exactly as the client sent it.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// Upper case, letters and digits only.
    pub fn normal(&self) -> &str {
        &self.normal
    }
}

impl fmt::Display for LicensePlate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// The normal form of any text: its letters and digits, upper-cased. Used for lookups too,
/// where a filter value need not be a valid plate to be matched.
///
/// Text is composed (Unicode NFC) before and after upper-casing, so a decomposed `Å` (A and a
/// combining ring) stays `Å` instead of losing its ring and merging with `A`.
pub fn normal_form(text: &str) -> String {
    if text.is_ascii() {
        // What the steps below come to for ASCII (composing changes nothing, upper case stays
        // ASCII), without their allocations: plates nearly always are.
        return text
            .bytes()
            .filter(u8::is_ascii_alphanumeric)
            .map(|b| char::from(b.to_ascii_uppercase()))
            .collect();
    }
    let mut current = normal_form_step(text);
    // Dropping a symbol can let marks around it compose differently; for exotic input, repeat
    // until nothing changes, so the normal form of a normal form is itself.
    for _ in 0..4 {
        let next = normal_form_step(&current);
        if next == current {
            break;
        }
        current = next;
    }
    current
}

fn normal_form_step(text: &str) -> String {
    let upper: String = text.nfc().flat_map(char::to_uppercase).collect();
    upper.nfc().filter(|c| c.is_alphanumeric()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spacing_dashes_and_case_are_one_vehicle() {
        for raw in ["abc 123", "ABC-123", "ABC123", " a.b.c 1 2 3 "] {
            assert_eq!(
                LicensePlate::parse(raw).unwrap().normal(),
                "ABC123",
                "{raw}"
            );
        }
    }

    #[test]
    fn nordic_letters_are_kept_and_upper_cased() {
        assert_eq!(LicensePlate::parse("åäö øæ1").unwrap().normal(), "ÅÄÖØÆ1");
        assert_ne!(
            LicensePlate::parse("ÅBC123").unwrap().normal(),
            LicensePlate::parse("ABC123").unwrap().normal()
        );
    }

    #[test]
    fn decomposed_letters_keep_their_marks() {
        let decomposed = "A\u{30A}BC123"; // A + combining ring above
        assert_eq!(normal_form(decomposed), "ÅBC123");
        assert_ne!(normal_form(decomposed), normal_form("ABC123"));
        assert_eq!(normal_form("a\u{308}bc"), normal_form("ÄBC"));
    }

    #[test]
    fn raw_text_is_kept_as_sent() {
        assert_eq!(LicensePlate::parse("abc-123").unwrap().raw(), "abc-123");
    }

    #[test]
    fn rejects_blank_long_and_symbol_only() {
        assert_eq!(LicensePlate::parse("  "), Err(PlateError::Blank));
        assert_eq!(LicensePlate::parse(""), Err(PlateError::Blank));
        assert_eq!(
            LicensePlate::parse("A".repeat(21).as_str()),
            Err(PlateError::TooLong)
        );
        assert_eq!(LicensePlate::parse("--"), Err(PlateError::NoAlphanumeric));
        // twenty multi-byte characters are still twenty characters
        assert!(LicensePlate::parse("Ö".repeat(20).as_str()).is_ok());
    }

    proptest! {
        #[test]
        fn ascii_takes_the_same_steps_as_any_text(s in "[ -~]{0,30}") {
            let mut stepped = normal_form_step(&s);
            for _ in 0..4 {
                stepped = normal_form_step(&stepped);
            }
            prop_assert_eq!(normal_form(&s), stepped);
        }

        #[test]
        fn normal_form_is_idempotent(s in "\\PC{0,30}") {
            let once = normal_form(&s);
            prop_assert_eq!(normal_form(&once), once.clone());
        }

        #[test]
        fn normal_form_has_only_alphanumerics_that_upper_casing_keeps(s in "\\PC{0,30}") {
            for c in normal_form(&s).chars() {
                prop_assert!(c.is_alphanumeric());
                prop_assert_eq!(c.to_uppercase().collect::<String>(), c.to_string(), "in {:?}", s);
            }
        }

        #[test]
        fn separators_and_case_never_change_the_vehicle(
            s in "[a-zA-Z0-9åäöÅÄÖ]{1,8}",
            sep in prop::sample::select(vec![" ", "-", ".", ""]),
        ) {
            let spaced: String = s.chars().map(|c| format!("{c}{sep}")).collect();
            prop_assert_eq!(normal_form(&spaced), normal_form(&s.to_uppercase()));
        }

        #[test]
        fn plates_differing_in_a_letter_stay_distinct(
            a in "[A-ZÅÄÖØÆ]{1,6}", b in "[A-ZÅÄÖØÆ]{1,6}",
        ) {
            prop_assume!(a != b);
            prop_assert_ne!(normal_form(&a), normal_form(&b));
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = LicensePlate::parse(&s);
        }
    }
}
