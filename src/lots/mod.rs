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
    /// Set when the lot is a barrier car park: how its equipment knows it.
    pub carpark: Option<Carpark>,
    /// A vehicle whose right ended less than this long ago is still allowed (in grace).
    pub grace_minutes: i64,
}

/// Grace when the operator sets none.
pub const DEFAULT_GRACE_MINUTES: i64 = 5;

/// A barrier car park's numbers, as its equipment and the transaction events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Carpark {
    pub facility_no: i64,
    pub carpark_no: i64,
    /// Spaces; `None` when unknown.
    pub capacity: Option<i64>,
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
    /// Minutes after a right ends during which enforcement still allows the vehicle.
    #[schema(example = 5)]
    pub grace_minutes: i64,
    /// Barrier car parks only: the equipment's facility number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub facility_no: Option<i64>,
    /// Barrier car parks only: the equipment's car park number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub carpark_no: Option<i64>,
    /// Barrier car parks only: spaces.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<i64>,
}

impl From<&Lot> for LotView {
    fn from(lot: &Lot) -> Self {
        Self {
            id: lot.id,
            name: lot.name.clone(),
            zone_code: lot.zone_code,
            time_zone: lot.time_zone.name().to_owned(),
            grace_minutes: lot.grace_minutes,
            facility_no: lot.carpark.map(|c| c.facility_no),
            carpark_no: lot.carpark.map(|c| c.carpark_no),
            capacity: lot.carpark.and_then(|c| c.capacity),
        }
    }
}

/// `POST /api/v1/admin/parking-lots` and `PATCH .../{id}`: every field optional in the body,
/// checked by [`LotInput::into_new`] / [`LotInput::apply_to`] so each problem is named.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LotInput {
    #[schema(example = 12, minimum = 1, maximum = 2147483647)]
    pub id: Option<i64>,
    #[schema(example = "Falun centrum")]
    pub name: Option<String>,
    #[schema(example = 123, minimum = 0, maximum = 2147483647)]
    pub zone_code: Option<i64>,
    /// IANA time zone name; Europe/Stockholm when absent on create.
    #[schema(example = "Europe/Stockholm")]
    pub time_zone: Option<String>,
    /// Makes the lot a barrier car park (with `carparkNo`).
    #[schema(example = 1, minimum = 0, maximum = 2147483647)]
    pub facility_no: Option<i64>,
    #[schema(example = 2, minimum = 0, maximum = 2147483647)]
    pub carpark_no: Option<i64>,
    /// Spaces in the car park.
    #[schema(example = 400, minimum = 0, maximum = 2147483647)]
    pub capacity: Option<i64>,
    /// Minutes of grace after a right ends (default 5).
    #[schema(example = 5, minimum = 0, maximum = 1440)]
    pub grace_minutes: Option<i64>,
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
            carpark: None,
            grace_minutes: DEFAULT_GRACE_MINUTES,
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
        match self.grace_minutes {
            Some(g) if !(0..=1440).contains(&g) => {
                errors.add("graceMinutes", "must be between 0 and 1440")
            }
            Some(g) => lot.grace_minutes = g,
            None => {}
        }
        let number = |value: Option<i64>, field: &str, errors: &mut FieldErrors| match value {
            Some(n) if !(0..=MAX_LOT_ID).contains(&n) => {
                errors.add(field, format!("must be between 0 and {MAX_LOT_ID}"));
                None
            }
            other => other,
        };
        let facility_no = number(self.facility_no, "facilityNo", errors);
        let carpark_no = number(self.carpark_no, "carparkNo", errors);
        let capacity = number(self.capacity, "capacity", errors);
        let current = lot.carpark;
        let facility_no = facility_no.or(current.map(|c| c.facility_no));
        let carpark_no = carpark_no.or(current.map(|c| c.carpark_no));
        let capacity = capacity.or(current.and_then(|c| c.capacity));
        lot.carpark = match (facility_no, carpark_no) {
            (Some(facility_no), Some(carpark_no)) => Some(Carpark {
                facility_no,
                carpark_no,
                capacity,
            }),
            (None, None) => {
                if capacity.is_some() {
                    errors.add(
                        "capacity",
                        "needs facilityNo and carparkNo: only barrier car parks have a capacity",
                    );
                }
                None
            }
            (None, Some(_)) => {
                errors.add("facilityNo", "is required with carparkNo");
                None
            }
            (Some(_), None) => {
                errors.add("carparkNo", "is required with facilityNo");
                None
            }
        };
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
            ..Default::default()
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
            ..Default::default()
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
            ..Default::default()
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

    #[test]
    fn car_park_numbers_come_in_pairs_and_updates_keep_them() {
        let mut lot = LotInput {
            id: Some(12),
            name: Some("P-hus".into()),
            zone_code: Some(1),
            facility_no: Some(1),
            carpark_no: Some(2),
            capacity: Some(400),
            ..Default::default()
        }
        .into_new()
        .unwrap();
        assert_eq!(
            lot.carpark,
            Some(Carpark {
                facility_no: 1,
                carpark_no: 2,
                capacity: Some(400)
            })
        );
        LotInput {
            capacity: Some(380),
            ..Default::default()
        }
        .apply_to(&mut lot)
        .unwrap();
        assert_eq!(
            lot.carpark,
            Some(Carpark {
                facility_no: 1,
                carpark_no: 2,
                capacity: Some(380)
            })
        );
        let errors = LotInput {
            id: Some(13),
            name: Some("x".into()),
            zone_code: Some(1),
            carpark_no: Some(2),
            ..Default::default()
        }
        .into_new()
        .unwrap_err();
        assert!(errors.contains("facilityNo"));
        let errors = LotInput {
            id: Some(13),
            name: Some("x".into()),
            zone_code: Some(1),
            capacity: Some(5),
            ..Default::default()
        }
        .into_new()
        .unwrap_err();
        assert!(errors.contains("capacity"));
    }
}
