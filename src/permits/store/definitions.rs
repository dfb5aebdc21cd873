//! Permit definitions: what a permit allows, where and when.

use super::*;

#[derive(Debug, Clone)]
pub struct Definition {
    pub id: i64,
    pub name: String,
    pub time_zone: TimeZoneName,
    pub schedule: Schedule,
    pub lots: Vec<i64>,
}

#[derive(sqlx::FromRow)]
pub(super) struct DefinitionRow {
    pub(super) id: i64,
    pub(super) name: String,
    pub(super) time_zone: String,
    pub(super) schedule: String,
}

impl DefinitionRow {
    pub(super) fn into_definition(self, lots: Vec<i64>) -> Result<Definition, AppError> {
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
