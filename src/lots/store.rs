//! Parking lots in the database.

use jiff::Timestamp;

use super::{Carpark, Lot};
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
    facility_no: Option<i64>,
    carpark_no: Option<i64>,
    capacity: Option<i64>,
    grace_minutes: i64,
}

impl LotRow {
    fn into_lot(self) -> Result<Lot, AppError> {
        let time_zone = TimeZoneName::parse(&self.time_zone).map_err(|e| {
            AppError::internal(anyhow::anyhow!("lot {} has time zone {e}", self.id))
        })?;
        let carpark = match (self.facility_no, self.carpark_no) {
            (Some(facility_no), Some(carpark_no)) => Some(Carpark {
                facility_no,
                carpark_no,
                capacity: self.capacity,
            }),
            _ => None,
        };
        Ok(Lot {
            id: self.id,
            name: self.name,
            zone_code: self.zone_code,
            time_zone,
            carpark,
            grace_minutes: self.grace_minutes,
        })
    }
}

/// How a lot was asked for: the key of the store's lot cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LotKey {
    Id(i64),
    Carpark(i64, i64),
    Zone(i64),
}

/// The lots `key` names: from the cache when they were read within the last moment (never
/// when there were none, so a new lot is found at once), else from the database.
async fn lots(store: &Store, key: LotKey) -> Result<Vec<Lot>, AppError> {
    if let Some(lots) = store.caches().lots.get(&key) {
        return Ok(lots);
    }
    let rows: Vec<LotRow> =
        read!(store, |db| {
            match key {
                LotKey::Id(id) => {
                    sqlx::query_as(&format!("SELECT {COLUMNS} FROM parking_lots WHERE id = $1"))
                        .bind(id)
                        .fetch_all(db)
                        .await?
                }
                LotKey::Carpark(facility_no, carpark_no) => sqlx::query_as(&format!(
                    "SELECT {COLUMNS} FROM parking_lots WHERE facility_no = $1 AND carpark_no = $2"
                ))
                .bind(facility_no)
                .bind(carpark_no)
                .fetch_all(db)
                .await?,
                LotKey::Zone(zone_code) => {
                    sqlx::query_as(&format!(
                        "SELECT {COLUMNS} FROM parking_lots WHERE zone_code = $1 ORDER BY id"
                    ))
                    .bind(zone_code)
                    .fetch_all(db)
                    .await?
                }
            }
        });
    let lots: Vec<Lot> = rows
        .into_iter()
        .map(LotRow::into_lot)
        .collect::<Result<_, _>>()?;
    if !lots.is_empty() {
        store.caches().lots.put(key, lots.clone());
    }
    Ok(lots)
}

const COLUMNS: &str =
    "id, name, zone_code, time_zone, facility_no, carpark_no, capacity, grace_minutes";

pub async fn insert(store: &Store, lot: &Lot) -> Result<(), AppError> {
    let now = to_micros(Timestamp::now());
    write_tx!(store, |tx| {
        sqlx::query(
            "INSERT INTO parking_lots (id, name, zone_code, time_zone, facility_no, carpark_no, \
                 capacity, grace_minutes, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $9, $8, $8)",
        )
        .bind(lot.id)
        .bind(&lot.name)
        .bind(lot.zone_code)
        .bind(lot.time_zone.name())
        .bind(lot.carpark.map(|c| c.facility_no))
        .bind(lot.carpark.map(|c| c.carpark_no))
        .bind(lot.carpark.and_then(|c| c.capacity))
        .bind(now)
        .bind(lot.grace_minutes)
        .execute(&mut *tx)
        .await?;
    });
    store.caches().lots.clear();
    Ok(())
}

pub async fn update(store: &Store, lot: &Lot) -> Result<bool, AppError> {
    let now = to_micros(Timestamp::now());
    let result = write_tx!(store, |tx| {
        sqlx::query(
            "UPDATE parking_lots SET name = $2, zone_code = $3, time_zone = $4, facility_no = $5, \
                 carpark_no = $6, capacity = $7, updated_at = $8, grace_minutes = $9 WHERE id = $1",
        )
        .bind(lot.id)
        .bind(&lot.name)
        .bind(lot.zone_code)
        .bind(lot.time_zone.name())
        .bind(lot.carpark.map(|c| c.facility_no))
        .bind(lot.carpark.map(|c| c.carpark_no))
        .bind(lot.carpark.and_then(|c| c.capacity))
        .bind(now)
        .bind(lot.grace_minutes)
        .execute(&mut *tx)
        .await?
        .rows_affected()
    });
    store.caches().lots.clear();
    Ok(result == 1)
}

pub async fn get(store: &Store, id: i64) -> Result<Option<Lot>, AppError> {
    Ok(lots(store, LotKey::Id(id)).await?.into_iter().next())
}

pub async fn list(store: &Store) -> Result<Vec<Lot>, AppError> {
    let rows: Vec<LotRow> = read!(store, |db| {
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM parking_lots ORDER BY id"))
            .fetch_all(db)
            .await?
    });
    rows.into_iter().map(LotRow::into_lot).collect()
}

/// The barrier car park equipment knows as `facility_no` + `carpark_no`.
pub async fn get_by_carpark(
    store: &Store,
    facility_no: i64,
    carpark_no: i64,
) -> Result<Option<Lot>, AppError> {
    Ok(lots(store, LotKey::Carpark(facility_no, carpark_no))
        .await?
        .into_iter()
        .next())
}

/// Every lot with this zone code, by id.
pub async fn by_zone(store: &Store, zone_code: i64) -> Result<Vec<Lot>, AppError> {
    lots(store, LotKey::Zone(zone_code)).await
}
