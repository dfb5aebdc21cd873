//! The permits a vehicle holds at a lot: the lookups parking rights and pricing need.

use super::definitions::DefinitionRow;
use super::*;

/// A permit held by a vehicle, with what decides where and when it applies.
#[derive(Debug, Clone)]
pub struct HeldPermit {
    pub permit_id: String,
    pub definition_name: String,
    pub days: Days,
    pub zone: TimeZoneName,
    pub schedule: Schedule,
    pub lots: Vec<i64>,
}

impl HeldPermit {
    pub fn cover(&self) -> rules::PermitCover<'_> {
        rules::PermitCover {
            days: self.days,
            zone: &self.zone,
            lots: &self.lots,
            schedule: &self.schedule,
        }
    }
}

/// The tables that say which permits a plate holds at which lots, as an SQL `FROM` clause:
/// vehicles `v`, their holders `u`, permits `p`, allocations `a`, definitions `d` and the
/// definitions' lots `dl`. A macro so that statements can be put together at compile time.
#[macro_export]
macro_rules! held_permits_from {
    () => {
        " FROM end_user_vehicles v \
          JOIN end_users u ON u.id = v.end_user_id \
          JOIN permits p ON p.email = u.email \
          JOIN permit_allocations a ON a.id = p.allocation_id \
          JOIN permit_definitions d ON d.id = a.definition_id \
          JOIN permit_definition_lots dl ON dl.definition_id = d.id "
    };
}

crate::lookup_row! {
    /// A held permit as stored; the rights lookup reads it as part of a larger statement.
    pub struct HeldRow {
        pub license_norm: String,
        pub id: String,
        pub definition_id: i64,
        pub name: String,
        pub time_zone: String,
        pub schedule: String,
        pub valid_from: String,
        pub valid_to: String,
    }
}

impl HeldRow {
    pub fn into_held(self, lot: i64) -> Result<(String, HeldPermit), AppError> {
        let definition = DefinitionRow {
            id: self.definition_id,
            name: self.name,
            time_zone: self.time_zone,
            schedule: self.schedule,
        }
        .into_definition(vec![lot])?;
        Ok((
            self.license_norm,
            HeldPermit {
                permit_id: self.id,
                definition_name: definition.name,
                days: days(&self.valid_from, &self.valid_to)?,
                zone: definition.time_zone,
                schedule: definition.schedule,
                lots: definition.lots,
            },
        ))
    }
}

/// The permits (not deleted) whose holder has the plate `plate_norm` on their profile, whose
/// definition covers `lot`, and whose days touch `[from, to)`: one indexed query.
pub async fn held_by_plate(
    store: &Store,
    plate_norm: &str,
    lot: i64,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<HeldPermit>, AppError> {
    // Every exit of a plate asks: on SQLite it runs where it is asked.
    const SQL: &str = concat!(
        "SELECT v.license_norm, p.id, d.id AS definition_id, d.name, d.time_zone, d.schedule, \
            p.valid_from, p.valid_to",
        held_permits_from!(),
        " WHERE v.license_norm = $1 AND dl.parking_lot_id = $2 \
           AND p.deleted_at IS NULL AND p.starts_at < $4 AND p.ends_at > $3 \
         ORDER BY p.created_at, p.id"
    );
    let rows: Vec<HeldRow> = lookup::all(
        store,
        SQL,
        &[
            Param::Text(plate_norm),
            Param::Int(lot),
            Param::Int(to_micros(from)),
            Param::Int(to_micros(to)),
        ],
    )
    .await?;
    rows.into_iter()
        .map(|r| r.into_held(lot).map(|(_, p)| p))
        .collect()
}
