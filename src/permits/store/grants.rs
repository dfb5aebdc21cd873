//! Permits given by tenants, with the quota and the one-per-e-mail rule held under a row lock.

use super::allocations::{ALLOCATION_SELECT, AllocationRow};
use super::*;

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
