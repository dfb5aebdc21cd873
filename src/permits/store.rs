//! Permit definitions, allocations, end users and permits in the database.

use jiff::Timestamp;
use jiff::civil::Date;

use super::rules::{self, Days};
use super::schedule::{Schedule, WindowSpec};
use crate::domain::time::{from_micros, to_micros};
use crate::domain::{Email, LicensePlate, TimeZoneName};
use crate::http::{AppError, FieldErrors};
use crate::principals::Role;
use crate::store::Store;
use crate::{read, write_tx};

fn now_us() -> i64 {
    to_micros(Timestamp::now())
}

fn bad_data(what: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("stored permit data is invalid: {what}"))
}

fn zone(name: &str) -> Result<TimeZoneName, AppError> {
    TimeZoneName::parse(name).map_err(bad_data)
}

fn date(text: &str) -> Result<Date, AppError> {
    text.parse::<Date>().map_err(bad_data)
}

fn days(from: &str, to: &str) -> Result<Days, AppError> {
    Ok(Days {
        from: date(from)?,
        to: date(to)?,
    })
}

// ---------------------------------------------------------------------------------------------
// Definitions

#[derive(Debug, Clone)]
pub struct Definition {
    pub id: i64,
    pub name: String,
    pub time_zone: TimeZoneName,
    pub schedule: Schedule,
    pub lots: Vec<i64>,
}

#[derive(sqlx::FromRow)]
struct DefinitionRow {
    id: i64,
    name: String,
    time_zone: String,
    schedule: String,
}

impl DefinitionRow {
    fn into_definition(self, lots: Vec<i64>) -> Result<Definition, AppError> {
        let specs: Vec<WindowSpec> = serde_json::from_str(&self.schedule).map_err(bad_data)?;
        let schedule = Schedule::parse(&specs).map_err(|e| bad_data(format!("{e:?}")))?;
        Ok(Definition {
            id: self.id,
            name: self.name,
            time_zone: zone(&self.time_zone)?,
            schedule,
            lots,
        })
    }
}

/// Stores a definition; unknown lots are a 422 on `parkingLotIds`.
pub async fn insert_definition(
    store: &Store,
    name: &str,
    time_zone: &TimeZoneName,
    schedule: &Schedule,
    lots: &[i64],
) -> Result<i64, AppError> {
    let schedule_json = serde_json::to_string(&schedule.to_specs()).map_err(AppError::internal)?;
    let now = now_us();
    let id = write_tx!(store, |tx| {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO permit_definitions (name, time_zone, schedule, created_at) \
             VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(time_zone.name())
        .bind(&schedule_json)
        .bind(now)
        .fetch_one(&mut *tx)
        .await?;
        let mut unknown = Vec::new();
        for lot in lots {
            let exists: Option<i64> =
                sqlx::query_scalar("SELECT id FROM parking_lots WHERE id = $1")
                    .bind(lot)
                    .fetch_optional(&mut *tx)
                    .await?;
            if exists.is_none() {
                unknown.push(lot.to_string());
                continue;
            }
            sqlx::query("INSERT INTO permit_definition_lots (definition_id, parking_lot_id) VALUES ($1, $2)")
                .bind(id)
                .bind(lot)
                .execute(&mut *tx)
                .await?;
        }
        if !unknown.is_empty() {
            return Err(FieldErrors::single(
                "parkingLotIds",
                format!("has unknown parking lot ids: {}", unknown.join(", ")),
            ));
        }
        id
    });
    Ok(id)
}

pub async fn get_definition(store: &Store, id: i64) -> Result<Option<Definition>, AppError> {
    let (row, lots): (Option<DefinitionRow>, Vec<i64>) = read!(store, |db| {
        let row = sqlx::query_as(
            "SELECT id, name, time_zone, schedule FROM permit_definitions WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(db)
        .await?;
        let lots = sqlx::query_scalar(
            "SELECT parking_lot_id FROM permit_definition_lots WHERE definition_id = $1 \
             ORDER BY parking_lot_id",
        )
        .bind(id)
        .fetch_all(db)
        .await?;
        (row, lots)
    });
    row.map(|r| r.into_definition(lots)).transpose()
}

pub async fn list_definitions(store: &Store) -> Result<Vec<Definition>, AppError> {
    let (rows, lots): (Vec<DefinitionRow>, Vec<(i64, i64)>) = read!(store, |db| {
        let rows = sqlx::query_as(
            "SELECT id, name, time_zone, schedule FROM permit_definitions ORDER BY id",
        )
        .fetch_all(db)
        .await?;
        let lots = sqlx::query_as(
            "SELECT definition_id, parking_lot_id FROM permit_definition_lots \
             ORDER BY definition_id, parking_lot_id",
        )
        .fetch_all(db)
        .await?;
        (rows, lots)
    });
    rows.into_iter()
        .map(|row| {
            let mine = lots
                .iter()
                .filter(|(d, _)| *d == row.id)
                .map(|(_, l)| *l)
                .collect();
            row.into_definition(mine)
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Allocations

#[derive(Debug, Clone)]
pub struct Allocation {
    pub id: String,
    pub tenant_id: i64,
    pub definition_id: i64,
    pub definition_name: String,
    pub time_zone: TimeZoneName,
    pub parking_spaces_count: i64,
    pub permit_count: i64,
    /// Permits not deleted and not yet ended, now.
    pub issued_count: i64,
    pub days: Days,
}

#[derive(sqlx::FromRow)]
struct AllocationRow {
    id: String,
    tenant_id: i64,
    definition_id: i64,
    definition_name: String,
    time_zone: String,
    parking_spaces_count: i64,
    permit_count: i64,
    issued_count: i64,
    valid_from: String,
    valid_to: String,
}

impl AllocationRow {
    fn into_allocation(self) -> Result<Allocation, AppError> {
        Ok(Allocation {
            days: days(&self.valid_from, &self.valid_to)?,
            time_zone: zone(&self.time_zone)?,
            id: self.id,
            tenant_id: self.tenant_id,
            definition_id: self.definition_id,
            definition_name: self.definition_name,
            parking_spaces_count: self.parking_spaces_count,
            permit_count: self.permit_count,
            issued_count: self.issued_count,
        })
    }
}

/// Selects allocations with their definition and live issued count; `$1` is now (µs).
const ALLOCATION_SELECT: &str = "SELECT a.id, a.tenant_id, a.definition_id, d.name AS definition_name, \
        d.time_zone, a.parking_spaces_count, a.permit_count, \
        (SELECT COUNT(*) FROM permits p WHERE p.allocation_id = a.id \
            AND p.deleted_at IS NULL AND p.ends_at > $1) AS issued_count, \
        a.valid_from, a.valid_to \
     FROM permit_allocations a JOIN permit_definitions d ON d.id = a.definition_id";

pub struct NewAllocation {
    pub tenant_id: i64,
    pub definition_id: i64,
    pub parking_spaces_count: i64,
    pub permit_count: i64,
    pub days: Days,
}

/// Stores an allocation; an unknown tenant or definition is a 422 naming it.
pub async fn insert_allocation(store: &Store, new: &NewAllocation) -> Result<String, AppError> {
    let id = uuid::Uuid::new_v4().to_string();
    let now = now_us();
    write_tx!(store, |tx| {
        let tenant: Option<i64> =
            sqlx::query_scalar("SELECT id FROM principals WHERE id = $1 AND role = $2")
                .bind(new.tenant_id)
                .bind(Role::Tenant.as_str())
                .fetch_optional(&mut *tx)
                .await?;
        let definition: Option<i64> =
            sqlx::query_scalar("SELECT id FROM permit_definitions WHERE id = $1")
                .bind(new.definition_id)
                .fetch_optional(&mut *tx)
                .await?;
        let mut errors = FieldErrors::new();
        if tenant.is_none() {
            errors.add("tenantId", format!("no tenant with id {}", new.tenant_id));
        }
        if definition.is_none() {
            errors.add(
                "permitDefinitionId",
                format!("no permit definition with id {}", new.definition_id),
            );
        }
        errors.into_result()?;
        sqlx::query(
            "INSERT INTO permit_allocations (id, tenant_id, definition_id, parking_spaces_count, \
                 permit_count, valid_from, valid_to, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
        )
        .bind(&id)
        .bind(new.tenant_id)
        .bind(new.definition_id)
        .bind(new.parking_spaces_count)
        .bind(new.permit_count)
        .bind(new.days.from.to_string())
        .bind(new.days.to.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    });
    Ok(id)
}

/// One allocation, of `tenant` when given (another tenant's is as absent as a missing one).
pub async fn get_allocation(
    store: &Store,
    id: &str,
    tenant: Option<i64>,
) -> Result<Option<Allocation>, AppError> {
    let row: Option<AllocationRow> = read!(store, |db| {
        sqlx::query_as(&format!(
            "{ALLOCATION_SELECT} WHERE a.id = $2 AND ($3 IS NULL OR a.tenant_id = $3)"
        ))
        .bind(now_us())
        .bind(id)
        .bind(tenant)
        .fetch_optional(db)
        .await?
    });
    row.map(AllocationRow::into_allocation).transpose()
}

pub async fn list_allocations(
    store: &Store,
    tenant: Option<i64>,
) -> Result<Vec<Allocation>, AppError> {
    let rows: Vec<AllocationRow> = read!(store, |db| {
        sqlx::query_as(&format!(
            "{ALLOCATION_SELECT} WHERE ($2 IS NULL OR a.tenant_id = $2) ORDER BY a.created_at, a.id"
        ))
        .bind(now_us())
        .bind(tenant)
        .fetch_all(db)
        .await?
    });
    rows.into_iter()
        .map(AllocationRow::into_allocation)
        .collect()
}

/// What an operator may change on an allocation.
#[derive(Debug, Default)]
pub struct AllocationChange {
    pub parking_spaces_count: Option<i64>,
    pub permit_count: Option<i64>,
    pub valid_from: Option<Date>,
    pub valid_to: Option<Date>,
}

/// Changes counts and dates, never below what is issued: the permit count not under the live
/// issued count, the dates still containing every permit that is not deleted.
pub async fn update_allocation(
    store: &Store,
    id: &str,
    change: &AllocationChange,
) -> Result<Option<()>, AppError> {
    let now = now_us();
    write_tx!(store, |tx| {
        // takes the row lock (PostgreSQL) before anything is counted
        let locked = sqlx::query("UPDATE permit_allocations SET updated_at = $2 WHERE id = $1")
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if locked == 0 {
            return Ok(None);
        }
        let row: AllocationRow = sqlx::query_as(&format!("{ALLOCATION_SELECT} WHERE a.id = $2"))
            .bind(now)
            .bind(id)
            .fetch_one(&mut *tx)
            .await?;
        let current = row.into_allocation()?;
        let new_days = Days {
            from: change.valid_from.unwrap_or(current.days.from),
            to: change.valid_to.unwrap_or(current.days.to),
        };
        if new_days.to < new_days.from {
            return Err(FieldErrors::single(
                "validTo",
                "must not be before validFrom",
            ));
        }
        let permit_count = change.permit_count.unwrap_or(current.permit_count);
        if permit_count < current.issued_count {
            return Err(AppError::conflict(
                "allocation_below_issued",
                format!(
                    "permitCount cannot go below the {} permits issued now",
                    current.issued_count
                ),
            ));
        }
        let (first, last): (Option<String>, Option<String>) = sqlx::query_as(
            "SELECT MIN(valid_from), MAX(valid_to) FROM permits \
             WHERE allocation_id = $1 AND deleted_at IS NULL",
        )
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        if let (Some(first), Some(last)) = (first, last)
            && (new_days.from > date(&first)? || new_days.to < date(&last)?)
        {
            return Err(AppError::conflict(
                "allocation_below_issued",
                format!("the dates must still contain every issued permit ({first} to {last})"),
            ));
        }
        sqlx::query(
            "UPDATE permit_allocations SET parking_spaces_count = $2, permit_count = $3, \
                 valid_from = $4, valid_to = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(
            change
                .parking_spaces_count
                .unwrap_or(current.parking_spaces_count),
        )
        .bind(permit_count)
        .bind(new_days.from.to_string())
        .bind(new_days.to.to_string())
        .execute(&mut *tx)
        .await?;
    });
    Ok(Some(()))
}

// ---------------------------------------------------------------------------------------------
// Permits

#[derive(Debug, Clone)]
pub struct Permit {
    pub id: String,
    pub email: String,
    pub allocation_id: String,
    pub definition_name: String,
    pub time_zone: TimeZoneName,
    pub days: Days,
    pub activated: bool,
    pub activated_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct PermitRow {
    id: String,
    email: String,
    allocation_id: String,
    definition_name: String,
    time_zone: String,
    valid_from: String,
    valid_to: String,
    vehicle_count: i64,
    activated_at: Option<i64>,
}

impl PermitRow {
    fn into_permit(self) -> Result<Permit, AppError> {
        Ok(Permit {
            days: days(&self.valid_from, &self.valid_to)?,
            time_zone: zone(&self.time_zone)?,
            id: self.id,
            email: self.email,
            allocation_id: self.allocation_id,
            definition_name: self.definition_name,
            activated: self.vehicle_count > 0,
            activated_at: self.activated_at.map(from_micros),
        })
    }
}

const PERMIT_SELECT: &str = "SELECT p.id, p.email, p.allocation_id, d.name AS definition_name, \
        d.time_zone, p.valid_from, p.valid_to, p.activated_at, \
        (SELECT COUNT(*) FROM end_users u JOIN end_user_vehicles v ON v.end_user_id = u.id \
            WHERE u.email = p.email) AS vehicle_count \
     FROM permits p \
     JOIN permit_allocations a ON a.id = p.allocation_id \
     JOIN permit_definitions d ON d.id = a.definition_id";

/// A permit a tenant asks for; dates are resolved against its allocation.
pub struct PermitRequest {
    pub email: Email,
    pub valid_from: Option<String>,
    pub valid_to: Option<String>,
}

fn parse_requested(
    from: Option<&str>,
    to: Option<&str>,
    zone: &TimeZoneName,
) -> Result<(Option<Date>, Option<Date>), AppError> {
    let mut errors = FieldErrors::new();
    let from = from.and_then(|t| {
        rules::parse_date(t, zone)
            .map_err(|m| errors.add("valid_from", m))
            .ok()
    });
    let to = to.and_then(|t| {
        rules::parse_date(t, zone)
            .map_err(|m| errors.add("valid_to", m))
            .ok()
    });
    errors.into_result()?;
    Ok((from, to))
}

/// Gives a permit from one of the tenant's allocations, holding the allocation's row lock while
/// the quota and the one-permit-per-e-mail rule are checked, so concurrent requests never
/// exceed either.
pub async fn create_permit(
    store: &Store,
    tenant_id: i64,
    allocation_id: &str,
    request: &PermitRequest,
) -> Result<Option<Permit>, AppError> {
    let now = now_us();
    let id = uuid::Uuid::new_v4().to_string();
    let created = write_tx!(store, |tx| {
        let locked = sqlx::query(
            "UPDATE permit_allocations SET updated_at = updated_at WHERE id = $1 AND tenant_id = $2",
        )
        .bind(allocation_id)
        .bind(tenant_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if locked == 0 {
            return Ok(None);
        }
        let allocation: AllocationRow =
            sqlx::query_as(&format!("{ALLOCATION_SELECT} WHERE a.id = $2"))
                .bind(now)
                .bind(allocation_id)
                .fetch_one(&mut *tx)
                .await?;
        let allocation = allocation.into_allocation()?;
        let zone = &allocation.time_zone;
        let (from, to) = parse_requested(
            request.valid_from.as_deref(),
            request.valid_to.as_deref(),
            zone,
        )?;
        let today = rules::local_date(from_micros(now), zone);
        let days = rules::new_permit_days(from, to, allocation.days, today)
            .map_err(AppError::Validation)?;
        if allocation.issued_count >= allocation.permit_count {
            return Err(AppError::conflict(
                "permit_quota_exceeded",
                format!(
                    "allocation {} has no permit left: {} of {} are issued",
                    allocation.id, allocation.issued_count, allocation.permit_count
                ),
            ));
        }
        let clash = sqlx::query_as(OVERLAP_SQL)
            .bind(allocation_id)
            .bind(request.email.as_str())
            .bind(days.to.to_string())
            .bind(days.from.to_string())
            .bind(None::<&str>)
            .fetch_optional(&mut *tx)
            .await?;
        no_overlap(request.email.as_str(), clash)?;
        let vehicles: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM end_users u JOIN end_user_vehicles v ON v.end_user_id = u.id \
             WHERE u.email = $1",
        )
        .bind(request.email.as_str())
        .fetch_one(&mut *tx)
        .await?;
        let (starts, ends) = days.instants(zone);
        sqlx::query(
            "INSERT INTO permits (id, allocation_id, email, valid_from, valid_to, starts_at, ends_at, \
                 activated_at, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(&id)
        .bind(allocation_id)
        .bind(request.email.as_str())
        .bind(days.from.to_string())
        .bind(days.to.to_string())
        .bind(to_micros(starts))
        .bind(to_micros(ends))
        .bind((vehicles > 0).then_some(now))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Permit {
            id: id.clone(),
            email: request.email.as_str().to_owned(),
            allocation_id: allocation.id.clone(),
            definition_name: allocation.definition_name.clone(),
            time_zone: allocation.time_zone.clone(),
            days,
            activated: vehicles > 0,
            activated_at: (vehicles > 0).then(|| from_micros(now)),
        }
    });
    Ok(Some(created))
}

/// The first permit of `$1` (allocation) and `$2` (e-mail), not deleted, whose days overlap
/// `$4`..=`$3`, other than `$5`.
const OVERLAP_SQL: &str = "SELECT id, valid_from, valid_to FROM permits \
     WHERE allocation_id = $1 AND email = $2 AND deleted_at IS NULL \
       AND valid_from <= $3 AND valid_to >= $4 AND ($5 IS NULL OR id <> $5) LIMIT 1";

/// 409 when the e-mail already holds a permit of this allocation on any of the days.
fn no_overlap(email: &str, clash: Option<(String, String, String)>) -> Result<(), AppError> {
    match clash {
        None => Ok(()),
        Some((id, from, to)) => Err(AppError::conflict(
            "permit_overlap",
            format!("{email} already holds permit {id} of this allocation from {from} to {to}"),
        )),
    }
}

/// Changes a permit's days. A permit that had ended and is made to count again must fit in the
/// quota. `None` when the tenant has no such permit.
pub async fn update_permit(
    store: &Store,
    tenant_id: i64,
    permit_id: &str,
    valid_from: Option<&str>,
    valid_to: Option<&str>,
) -> Result<Option<Permit>, AppError> {
    let now = now_us();
    let updated = write_tx!(store, |tx| {
        let allocation_id: Option<String> = sqlx::query_scalar(
            "SELECT p.allocation_id FROM permits p JOIN permit_allocations a ON a.id = p.allocation_id \
             WHERE p.id = $1 AND a.tenant_id = $2 AND p.deleted_at IS NULL",
        )
        .bind(permit_id)
        .bind(tenant_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(allocation_id) = allocation_id else {
            return Ok(None);
        };
        sqlx::query("UPDATE permit_allocations SET updated_at = updated_at WHERE id = $1")
            .bind(&allocation_id)
            .execute(&mut *tx)
            .await?;
        let allocation: AllocationRow =
            sqlx::query_as(&format!("{ALLOCATION_SELECT} WHERE a.id = $2"))
                .bind(now)
                .bind(&allocation_id)
                .fetch_one(&mut *tx)
                .await?;
        let allocation = allocation.into_allocation()?;
        let current: PermitRow = sqlx::query_as(&format!("{PERMIT_SELECT} WHERE p.id = $1"))
            .bind(permit_id)
            .fetch_one(&mut *tx)
            .await?;
        let current = current.into_permit()?;
        let zone = &allocation.time_zone;
        let (from, to) = parse_requested(valid_from, valid_to, zone)?;
        let today = rules::local_date(from_micros(now), zone);
        let days = rules::updated_permit_days(current.days, from, to, allocation.days, today)
            .map_err(AppError::Validation)?;
        if !current.days.counts_on(today)
            && days.counts_on(today)
            && allocation.issued_count >= allocation.permit_count
        {
            return Err(AppError::conflict(
                "permit_quota_exceeded",
                format!(
                    "allocation {} has no permit left for this one to count again: {} of {} are issued",
                    allocation.id, allocation.issued_count, allocation.permit_count
                ),
            ));
        }
        let clash = sqlx::query_as(OVERLAP_SQL)
            .bind(&allocation_id)
            .bind(&current.email)
            .bind(days.to.to_string())
            .bind(days.from.to_string())
            .bind(Some(permit_id))
            .fetch_optional(&mut *tx)
            .await?;
        no_overlap(&current.email, clash)?;
        let (starts, ends) = days.instants(zone);
        sqlx::query(
            "UPDATE permits SET valid_from = $2, valid_to = $3, starts_at = $4, ends_at = $5, \
                 updated_at = $6 WHERE id = $1",
        )
        .bind(permit_id)
        .bind(days.from.to_string())
        .bind(days.to.to_string())
        .bind(to_micros(starts))
        .bind(to_micros(ends))
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Permit { days, ..current }
    });
    Ok(Some(updated))
}

/// Deletes a permit of the tenant; it stops counting at once. False when there is none.
pub async fn delete_permit(
    store: &Store,
    tenant_id: i64,
    permit_id: &str,
) -> Result<bool, AppError> {
    let now = now_us();
    let deleted = write_tx!(store, |tx| {
        sqlx::query(
            "UPDATE permits SET deleted_at = $3, updated_at = $3 \
             WHERE id = $1 AND deleted_at IS NULL \
               AND allocation_id IN (SELECT id FROM permit_allocations WHERE tenant_id = $2)",
        )
        .bind(permit_id)
        .bind(tenant_id)
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    });
    Ok(deleted == 1)
}

/// One permit of the tenant (`None` for another tenant's, a deleted or an absent one).
pub async fn get_permit(
    store: &Store,
    tenant_id: i64,
    permit_id: &str,
) -> Result<Option<Permit>, AppError> {
    let row: Option<PermitRow> = read!(store, |db| {
        sqlx::query_as(&format!(
            "{PERMIT_SELECT} WHERE p.id = $1 AND a.tenant_id = $2 AND p.deleted_at IS NULL"
        ))
        .bind(permit_id)
        .bind(tenant_id)
        .fetch_optional(db)
        .await?
    });
    row.map(PermitRow::into_permit).transpose()
}

/// The permits (not deleted) of a tenant, of one allocation, or of one e-mail address.
#[derive(Debug, Default)]
pub struct PermitFilter<'a> {
    pub tenant_id: Option<i64>,
    pub allocation_id: Option<&'a str>,
    pub email: Option<&'a str>,
}

pub async fn list_permits(
    store: &Store,
    filter: &PermitFilter<'_>,
) -> Result<Vec<Permit>, AppError> {
    let rows: Vec<PermitRow> = read!(store, |db| {
        sqlx::query_as(&format!(
            "{PERMIT_SELECT} WHERE p.deleted_at IS NULL AND ($1 IS NULL OR a.tenant_id = $1) \
               AND ($2 IS NULL OR p.allocation_id = $2) AND ($3 IS NULL OR p.email = $3) \
             ORDER BY p.created_at, p.id"
        ))
        .bind(filter.tenant_id)
        .bind(filter.allocation_id)
        .bind(filter.email)
        .fetch_all(db)
        .await?
    });
    rows.into_iter().map(PermitRow::into_permit).collect()
}

// ---------------------------------------------------------------------------------------------
// End users

#[derive(Debug, Clone)]
pub struct Vehicle {
    pub license_raw: String,
    pub license_norm: String,
    pub added_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct EndUser {
    pub email: String,
    pub created_at: Timestamp,
    pub vehicles: Vec<Vehicle>,
}

/// Creates the profile if missing; true when it was created now.
pub async fn ensure_end_user(store: &Store, email: &Email) -> Result<bool, AppError> {
    let now = now_us();
    let inserted = write_tx!(store, |tx| {
        sqlx::query("INSERT INTO end_users (email, created_at) VALUES ($1, $2) ON CONFLICT (email) DO NOTHING")
            .bind(email.as_str())
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
    });
    Ok(inserted == 1)
}

#[derive(sqlx::FromRow)]
struct VehicleRow {
    license_raw: String,
    license_norm: String,
    added_at: i64,
}

pub async fn get_end_user(store: &Store, email: &Email) -> Result<Option<EndUser>, AppError> {
    let (created_at, vehicles): (Option<i64>, Vec<VehicleRow>) = read!(store, |db| {
        let created_at = sqlx::query_scalar("SELECT created_at FROM end_users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(db)
            .await?;
        let vehicles = sqlx::query_as(
            "SELECT v.license_raw, v.license_norm, v.added_at FROM end_user_vehicles v \
             JOIN end_users u ON u.id = v.end_user_id WHERE u.email = $1 \
             ORDER BY v.added_at, v.license_norm",
        )
        .bind(email.as_str())
        .fetch_all(db)
        .await?;
        (created_at, vehicles)
    });
    Ok(created_at.map(|created_at| EndUser {
        email: email.as_str().to_owned(),
        created_at: from_micros(created_at),
        vehicles: vehicles
            .into_iter()
            .map(|v| Vehicle {
                license_raw: v.license_raw,
                license_norm: v.license_norm,
                added_at: from_micros(v.added_at),
            })
            .collect(),
    }))
}

/// Adds a vehicle to a profile (the raw text is updated if the plate is there already) and
/// activates every permit of that e-mail that was not active yet. `None`: no such profile.
/// `Some(true)`: the vehicle is new.
pub async fn add_vehicle(
    store: &Store,
    email: &Email,
    plate: &LicensePlate,
) -> Result<Option<bool>, AppError> {
    let now = now_us();
    let outcome = write_tx!(store, |tx| {
        let user: Option<i64> = sqlx::query_scalar("SELECT id FROM end_users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        let Some(user) = user else {
            return Ok(None);
        };
        let existed: Option<String> = sqlx::query_scalar(
            "SELECT license_norm FROM end_user_vehicles WHERE end_user_id = $1 AND license_norm = $2",
        )
        .bind(user)
        .bind(plate.normal())
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO end_user_vehicles (end_user_id, license_norm, license_raw, added_at) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (end_user_id, license_norm) DO UPDATE SET license_raw = excluded.license_raw",
        )
        .bind(user)
        .bind(plate.normal())
        .bind(plate.raw())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE permits SET activated_at = $2 \
             WHERE email = $1 AND activated_at IS NULL AND deleted_at IS NULL",
        )
        .bind(email.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        Some(existed.is_none())
    });
    Ok(outcome)
}

/// Removes a vehicle from a profile; false when the profile has no such plate.
pub async fn remove_vehicle(
    store: &Store,
    email: &Email,
    plate_norm: &str,
) -> Result<bool, AppError> {
    let removed = write_tx!(store, |tx| {
        sqlx::query(
            "DELETE FROM end_user_vehicles WHERE license_norm = $2 \
               AND end_user_id = (SELECT id FROM end_users WHERE email = $1)",
        )
        .bind(email.as_str())
        .bind(plate_norm)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    });
    Ok(removed == 1)
}

// ---------------------------------------------------------------------------------------------
// Permits of a vehicle

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

const HELD_SELECT: &str = "SELECT v.license_norm, p.id, d.id AS definition_id, d.name, d.time_zone, d.schedule, \
        p.valid_from, p.valid_to \
     FROM end_user_vehicles v \
     JOIN end_users u ON u.id = v.end_user_id \
     JOIN permits p ON p.email = u.email \
     JOIN permit_allocations a ON a.id = p.allocation_id \
     JOIN permit_definitions d ON d.id = a.definition_id \
     JOIN permit_definition_lots dl ON dl.definition_id = d.id";

#[derive(sqlx::FromRow)]
struct HeldRow {
    license_norm: String,
    id: String,
    definition_id: i64,
    name: String,
    time_zone: String,
    schedule: String,
    valid_from: String,
    valid_to: String,
}

impl HeldRow {
    fn into_held(self, lot: i64) -> Result<(String, HeldPermit), AppError> {
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
    let rows: Vec<HeldRow> = read!(store, |db| {
        sqlx::query_as(&format!(
            "{HELD_SELECT} WHERE v.license_norm = $1 AND dl.parking_lot_id = $2 \
               AND p.deleted_at IS NULL AND p.starts_at < $4 AND p.ends_at > $3 \
             ORDER BY p.created_at, p.id"
        ))
        .bind(plate_norm)
        .bind(lot)
        .bind(to_micros(from))
        .bind(to_micros(to))
        .fetch_all(db)
        .await?
    });
    rows.into_iter()
        .map(|r| r.into_held(lot).map(|(_, p)| p))
        .collect()
}

/// Every (plate, permit) of holders with vehicles whose permit covers `lot` on days touching
/// `[from, to)`.
pub async fn held_at_lot(
    store: &Store,
    lot: i64,
    from: Timestamp,
    to: Timestamp,
) -> Result<Vec<(String, HeldPermit)>, AppError> {
    let rows: Vec<HeldRow> = read!(store, |db| {
        sqlx::query_as(&format!(
            "{HELD_SELECT} WHERE dl.parking_lot_id = $1 AND p.deleted_at IS NULL \
               AND p.starts_at < $3 AND p.ends_at > $2"
        ))
        .bind(lot)
        .bind(to_micros(from))
        .bind(to_micros(to))
        .fetch_all(db)
        .await?
    });
    rows.into_iter().map(|r| r.into_held(lot)).collect()
}
