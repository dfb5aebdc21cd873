//! End users' profiles and their vehicles; a first vehicle activates the e-mail's permits.

use super::*;

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
