//! Permit allocations: a tenant's quota of a definition, never below what is issued.

use super::*;

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
pub(super) struct AllocationRow {
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
    pub(super) fn into_allocation(self) -> Result<Allocation, AppError> {
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
pub(super) const ALLOCATION_SELECT: &str = "SELECT a.id, a.tenant_id, a.definition_id, d.name AS definition_name, \
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
