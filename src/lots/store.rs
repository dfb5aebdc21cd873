//! Parking lots in the database.

use jiff::Timestamp;

use super::Lot;
use crate::domain::TimeZoneName;
use crate::domain::time::to_micros;
use crate::http::AppError;
use crate::store::Store;
use crate::{read, write_tx};

#[derive(sqlx::FromRow)]
struct LotRow {
    id: i64,
    name: String,
    zone_code: i64,
    time_zone: String,
}

impl LotRow {
    fn into_lot(self) -> Result<Lot, AppError> {
        let time_zone = TimeZoneName::parse(&self.time_zone).map_err(|e| {
            AppError::internal(anyhow::anyhow!("lot {} has time zone {e}", self.id))
        })?;
        Ok(Lot {
            id: self.id,
            name: self.name,
            zone_code: self.zone_code,
            time_zone,
        })
    }
}

const COLUMNS: &str = "id, name, zone_code, time_zone";

pub async fn insert(store: &Store, lot: &Lot) -> Result<(), AppError> {
    let now = to_micros(Timestamp::now());
    write_tx!(store, |tx| {
        sqlx::query(
            "INSERT INTO parking_lots (id, name, zone_code, time_zone, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
        )
        .bind(lot.id)
        .bind(&lot.name)
        .bind(lot.zone_code)
        .bind(lot.time_zone.name())
        .bind(now)
        .execute(&mut *tx)
        .await?;
    });
    Ok(())
}

pub async fn update(store: &Store, lot: &Lot) -> Result<bool, AppError> {
    let now = to_micros(Timestamp::now());
    let result = write_tx!(store, |tx| {
        sqlx::query(
            "UPDATE parking_lots SET name = $2, zone_code = $3, time_zone = $4, updated_at = $5 \
             WHERE id = $1",
        )
        .bind(lot.id)
        .bind(&lot.name)
        .bind(lot.zone_code)
        .bind(lot.time_zone.name())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    });
    Ok(result == 1)
}

pub async fn get(store: &Store, id: i64) -> Result<Option<Lot>, AppError> {
    let row: Option<LotRow> = read!(store, |db| {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM parking_lots WHERE id = $1"))
            .bind(id)
            .fetch_optional(db)
            .await?
    });
    row.map(LotRow::into_lot).transpose()
}

pub async fn list(store: &Store) -> Result<Vec<Lot>, AppError> {
    let rows: Vec<LotRow> = read!(store, |db| {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM parking_lots ORDER BY id"))
            .fetch_all(db)
            .await?
    });
    rows.into_iter().map(LotRow::into_lot).collect()
}
