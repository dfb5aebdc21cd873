//! Data the scenarios need, written straight into the database, and the database floor.

use std::time::{Duration, Instant};

use parkhub::principals::{Role, store as principals};
use parkhub::store::{Backend, Store, StoreOptions};
use serde_json::json;

use crate::drive::{Row, histogram};

/// The database alone: single-row transactions, then 1000-row transactions, each committed
/// durably, on a scratch table.
pub async fn floor_commit(database: &str, duration: f64) -> anyhow::Result<Row> {
    let store = Store::open(database, &StoreOptions::default()).await?;
    let half = Duration::from_secs_f64(duration / 2.0);
    macro_rules! measure {
        ($conn:expr) => {{
            let conn = $conn;
            sqlx::query("CREATE TABLE IF NOT EXISTS bench_floor (id BIGINT, payload TEXT)")
                .execute(&mut *conn)
                .await?;
            let mut latency = histogram();
            let started = Instant::now();
            let mut n = 0i64;
            while started.elapsed() < half {
                let t = Instant::now();
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                sqlx::query("INSERT INTO bench_floor (id, payload) VALUES ($1, 'x')")
                    .bind(n)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                latency.record((t.elapsed().as_micros() as u64).max(1)).ok();
                n += 1;
            }
            let single = n as f64 / started.elapsed().as_secs_f64();
            let started = Instant::now();
            let mut rows = 0i64;
            while started.elapsed() < half {
                let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                let mut insert = sqlx::QueryBuilder::new("INSERT INTO bench_floor (id, payload) ");
                insert.push_values(0..1000, |mut b, i| {
                    b.push_bind(rows + i).push_bind("x");
                });
                insert.build().execute(&mut *tx).await?;
                tx.commit().await?;
                rows += 1000;
            }
            let batched = rows as f64 / started.elapsed().as_secs_f64();
            sqlx::query("DROP TABLE bench_floor")
                .execute(&mut *conn)
                .await?;
            (single, batched, latency)
        }};
    }
    let (single, batched, latency) = match store.backend() {
        Backend::Sqlite(db) => measure!(&mut *db.writer.acquire().await?),
        Backend::Postgres(pool) => measure!(&mut *pool.acquire().await?),
    };
    store.close().await;
    Ok(Row {
        name: "floor-commit",
        rate: single,
        latency: Some(latency),
        errors: 0,
        notes: format!(
            "durable single-row commits/s (one connection); {batched:.0} rows/s in 1000-row transactions"
        ),
    })
}

/// The providers of the preloaded tickets: one with most, one with every hundredth of the
/// first 99% (spread through the table), one with the last 1% (a provider that started last).
pub const PRELOAD_PROVIDERS: [&str; 3] = ["preload", "preload-spread", "preload-late"];

/// Bulk data for rights-check: tickets on lot 12 valid now (of [`PRELOAD_PROVIDERS`]), permits
/// (all day) for holders with one vehicle each, and open stays.
pub async fn preload(store: &Store, tickets: i64, permits: i64, stays: i64) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_microsecond();
    let hour = 3_600_000_000i64;
    let mut providers = [0i64; 3];
    for (id, name) in providers.iter_mut().zip(PRELOAD_PROVIDERS) {
        *id = principals::find_or_create(store, Role::Provider, name)
            .await?
            .id;
    }
    let late_from = tickets - tickets / 100;
    let provider = |i: i64| match i {
        _ if i >= late_from => providers[2],
        _ if i % 100 == 0 => providers[1],
        _ => providers[0],
    };
    let tenant = principals::find_or_create(store, Role::Tenant, "preload")
        .await?
        .id;
    macro_rules! load {
        ($pool:expr) => {{
            let pool = $pool;
            for chunk in (0..tickets).step_by(2000) {
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO tickets (provider_id, ticket_id, parking_lot_id, license_raw, license_norm, start_at, end_at, status, created_at, updated_at) ",
                );
                q.push_values(chunk..(chunk + 2000).min(tickets), |mut b, i| {
                    let plate = format!("TK{i:07}");
                    b.push_bind(provider(i)).push_bind(format!("pre-{i}")).push_bind(12i64).push_bind(plate.clone()).push_bind(plate)
                        .push_bind(now - hour).push_bind(now + 10 * hour).push_bind("active").push_bind(now).push_bind(now);
                });
                q.build().execute(pool).await?;
            }
            if permits > 0 {
                let definition: i64 = sqlx::query_scalar("INSERT INTO permit_definitions (name, time_zone, schedule, created_at) VALUES ('All day', 'Europe/Stockholm', '[]', $1) RETURNING id")
                    .bind(now).fetch_one(pool).await?;
                sqlx::query("INSERT INTO permit_definition_lots (definition_id, parking_lot_id) VALUES ($1, 12)").bind(definition).execute(pool).await?;
                sqlx::query("INSERT INTO permit_allocations (id, tenant_id, definition_id, parking_spaces_count, permit_count, valid_from, valid_to, created_at, updated_at) VALUES ('bench', $1, $2, 1000000, 1000000, '2020-01-01', '2035-12-31', $3, $3)")
                    .bind(tenant).bind(definition).bind(now).execute(pool).await?;
            }
            for chunk in (0..permits).step_by(2000) {
                let range = chunk..(chunk + 2000).min(permits);
                let mut users = sqlx::QueryBuilder::new("INSERT INTO end_users (id, email, created_at) ");
                users.push_values(range.clone(), |mut b, i| {
                    b.push_bind(1_000_000 + i).push_bind(format!("holder{i}@bench.example")).push_bind(now);
                });
                users.build().execute(pool).await?;
                let mut vehicles = sqlx::QueryBuilder::new("INSERT INTO end_user_vehicles (end_user_id, license_norm, license_raw, added_at) ");
                vehicles.push_values(range.clone(), |mut b, i| {
                    let plate = format!("PM{i:07}");
                    b.push_bind(1_000_000 + i).push_bind(plate.clone()).push_bind(plate).push_bind(now);
                });
                vehicles.build().execute(pool).await?;
                let mut q = sqlx::QueryBuilder::new("INSERT INTO permits (id, allocation_id, email, valid_from, valid_to, starts_at, ends_at, activated_at, created_at, updated_at) ");
                q.push_values(range, |mut b, i| {
                    b.push_bind(format!("bench-permit-{i}")).push_bind("bench").push_bind(format!("holder{i}@bench.example"))
                        .push_bind("2020-01-01").push_bind("2035-12-31").push_bind(0i64).push_bind(i64::MAX / 2).push_bind(now).push_bind(now).push_bind(now);
                });
                q.build().execute(pool).await?;
            }
            for chunk in (0..stays).step_by(2000) {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO transactions (parking_lot_id, ticket_type, ticket_no, ticket_key, reference_no, entry_at, entry_event_id) ");
                q.push_values(chunk..(chunk + 2000).min(stays), |mut b, i| {
                    let plate = format!("TX{i:07}");
                    b.push_bind(12i64).push_bind(4i64).push_bind(plate.clone()).push_bind(plate).push_bind(format!("R{i}")).push_bind(now - hour).push_bind(format!("pre-{i}"));
                });
                q.build().execute(pool).await?;
            }
            if let Err(err) = sqlx::query("ANALYZE").execute(pool).await {
                eprintln!("ANALYZE failed: {err}");
            }
        }};
    }
    match store.backend() {
        Backend::Sqlite(db) => {
            load!(&db.writer);
            // A database of this size at rest has its write-ahead log folded in: the service
            // should not begin the measurement by copying the hundreds of megabytes of log
            // that only the preload wrote.
            sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&db.writer)
                .await?;
        }
        Backend::Postgres(pool) => load!(pool),
    }
    Ok(())
}

/// Identifiers for `count` plates `{prefix}{i:07}`, owned by `provider`.
pub async fn register_plates(
    store: &Store,
    provider: &i64,
    prefix: &str,
    count: u64,
) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_microsecond();
    macro_rules! load {
        ($pool:expr) => {{
            for chunk in (0..count).step_by(2000) {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO identifiers (provider_id, ticket_type, ticket_no, ticket_key, reference_no, created_at, updated_at) ");
                q.push_values(chunk..(chunk + 2000).min(count), |mut b, i| {
                    let plate = format!("{prefix}{i:07}");
                    b.push_bind(*provider).push_bind(4i64).push_bind(plate.clone()).push_bind(plate).push_bind(format!("R{i}")).push_bind(now).push_bind(now);
                });
                q.build().execute($pool).await?;
            }
        }};
    }
    match store.backend() {
        Backend::Sqlite(db) => load!(&db.writer),
        Backend::Postgres(pool) => load!(pool),
    }
    Ok(())
}

/// `count` TransactionStarted events queued for `provider`, written straight to the outbox.
pub async fn queue_events(store: &Store, provider: i64, count: i64) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now().as_microsecond();
    macro_rules! load {
        ($pool:expr) => {{
            let pool = $pool;
            let last: i64 = sqlx::query_scalar("UPDATE event_sequence SET last = last + $1 WHERE id = 1 RETURNING last").bind(count).fetch_one(pool).await?;
            let first = last - count + 1;
            for chunk in (first..=last).step_by(2000) {
                let mut q = sqlx::QueryBuilder::new("INSERT INTO events (seq, event_id, provider_id, payload, created_at) ");
                q.push_values(chunk..(chunk + 2000).min(last + 1), |mut b, seq| {
                    let payload = json!({"EventType": "TransactionStarted", "FacilityNo": 1, "CarparkNo": 2, "TicketNo": format!("RP{seq}"), "TicketType": 4,
                                         "ReferenceNo": format!("R{seq}"), "StartTime": "2025-06-01T10:00:00Z", "EventID": format!("replay-{seq}")}).to_string();
                    b.push_bind(seq).push_bind(format!("replay-{seq}")).push_bind(provider).push_bind(payload).push_bind(now);
                });
                q.build().execute(pool).await?;
            }
        }};
    }
    match store.backend() {
        Backend::Sqlite(db) => load!(&db.writer),
        Backend::Postgres(pool) => load!(pool),
    }
    Ok(())
}
