//! Parking lots: where parking rights apply. Each has an integer id, the zone code on the
//! street sign, and an IANA time zone in which its local times are read and rendered.

pub mod admin;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::domain::TimeZoneName;
use crate::http::FieldErrors;

/// Lot ids are chosen by the operator; kept within 32 bits for the clients that read them.
pub const MAX_LOT_ID: i64 = i32::MAX as i64;
const MAX_NAME_CHARS: usize = 200;

#[derive(Debug, Clone, PartialEq)]
pub struct Lot {
    pub id: i64,
    pub name: String,
    pub zone_code: i64,
    pub time_zone: TimeZoneName,
}

/// A lot as the admin API shows it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LotView {
    #[schema(example = 12)]
    pub id: i64,
    #[schema(example = "Falun centrum")]
    pub name: String,
    #[schema(example = 123)]
    pub zone_code: i64,
    #[schema(example = "Europe/Stockholm")]
    pub time_zone: String,
}

impl From<&Lot> for LotView {
    fn from(lot: &Lot) -> Self {
        Self {
            id: lot.id,
            name: lot.name.clone(),
            zone_code: lot.zone_code,
            time_zone: lot.time_zone.name().to_owned(),
        }
    }
}

/// `POST /api/v1/admin/parking-lots` and `PATCH .../{id}`: every field optional in the body,
/// checked by [`LotInput::into_new`] / [`LotInput::apply_to`] so each problem is named.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LotInput {
    #[schema(example = 12)]
    pub id: Option<i64>,
    #[schema(example = "Falun centrum")]
    pub name: Option<String>,
    #[schema(example = 123)]
    pub zone_code: Option<i64>,
    /// IANA time zone name; Europe/Stockholm when absent on create.
    #[schema(example = "Europe/Stockholm")]
    pub time_zone: Option<String>,
}

impl LotInput {
    /// A new lot: `id`, `name` and `zoneCode` are required.
    pub fn into_new(self) -> Result<Lot, FieldErrors> {
        let mut errors = FieldErrors::new();
        let id = match self.id {
            None => {
                errors.add("id", "is required");
                0
            }
            Some(id) if !(1..=MAX_LOT_ID).contains(&id) => {
                errors.add("id", format!("must be between 1 and {MAX_LOT_ID}"));
                0
            }
            Some(id) => id,
        };
        if self.name.is_none() {
            errors.add("name", "is required");
        }
        if self.zone_code.is_none() {
            errors.add("zoneCode", "is required");
        }
        let mut lot = Lot {
            id,
            name: String::new(),
            zone_code: 0,
            time_zone: TimeZoneName::stockholm(),
        };
        self.check_into(&mut lot, &mut errors);
        if errors.is_empty() {
            Ok(lot)
        } else {
            Err(errors)
        }
    }

    /// An update of name, zone code and time zone; `id` may not change.
    pub fn apply_to(self, lot: &mut Lot) -> Result<(), FieldErrors> {
        let mut errors = FieldErrors::new();
        if self.id.is_some_and(|id| id != lot.id) {
            errors.add("id", "cannot be changed");
        }
        self.check_into(lot, &mut errors);
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn check_into(self, lot: &mut Lot, errors: &mut FieldErrors) {
        if let Some(name) = self.name {
            let name = name.trim();
            if name.is_empty() {
                errors.add("name", "must not be blank");
            } else if name.chars().count() > MAX_NAME_CHARS {
                errors.add(
                    "name",
                    format!("must be at most {MAX_NAME_CHARS} characters"),
                );
            } else {
                lot.name = name.to_owned();
            }
        }
        if let Some(zone_code) = self.zone_code {
            if !(0..=MAX_LOT_ID).contains(&zone_code) {
                errors.add("zoneCode", format!("must be between 0 and {MAX_LOT_ID}"));
            } else {
                lot.zone_code = zone_code;
            }
        }
        if let Some(tz) = self.time_zone {
            match TimeZoneName::parse(&tz) {
                Ok(tz) => lot.time_zone = tz,
                Err(message) => errors.add("timeZone", message),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_lot_needs_id_name_and_zone_and_defaults_to_stockholm() {
        let lot = LotInput {
            id: Some(12),
            name: Some(" Falun centrum ".into()),
            zone_code: Some(123),
            time_zone: None,
        }
        .into_new()
        .unwrap();
        assert_eq!(lot.name, "Falun centrum");
        assert_eq!(lot.time_zone.name(), "Europe/Stockholm");

        let errors = LotInput::default().into_new().unwrap_err();
        for field in ["id", "name", "zoneCode"] {
            assert!(errors.contains(field), "{field} not named in {errors:?}");
        }
    }

    #[test]
    fn bad_values_are_named() {
        let errors = LotInput {
            id: Some(0),
            name: Some("  ".into()),
            zone_code: Some(-1),
            time_zone: Some("Mars/Olympus".into()),
        }
        .into_new()
        .unwrap_err();
        for field in ["id", "name", "zoneCode", "timeZone"] {
            assert!(errors.contains(field), "{field} not named in {errors:?}");
        }
    }

    #[test]
    fn updates_change_only_what_is_sent_and_never_the_id() {
        let mut lot = LotInput {
            id: Some(12),
            name: Some("A".into()),
            zone_code: Some(1),
            time_zone: None,
        }
        .into_new()
        .unwrap();
        LotInput {
            time_zone: Some("Europe/Helsinki".into()),
            ..Default::default()
        }
        .apply_to(&mut lot)
        .unwrap();
        assert_eq!((lot.name.as_str(), lot.zone_code), ("A", 1));
        assert_eq!(lot.time_zone.name(), "Europe/Helsinki");
        let errors = LotInput {
            id: Some(13),
            ..Default::default()
        }
        .apply_to(&mut lot)
        .unwrap_err();
        assert!(errors.contains("id"));
    }
}
