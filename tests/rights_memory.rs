//! The rights memory through real HTTP: a check follows this instance's writes at once and
//! another instance's on the same database within moments (a check looks for changes when it
//! last looked longer ago than 10 ms on SQLite, 100 ms on PostgreSQL), an instant older than the memory keeps is answered from the database, the same
//! way, and once the writes are heard every other check is answered from memory (/metrics
//! shows which answered).

mod common;

use std::time::Duration;

use common::rights::{World, world};
use common::{Backend, TestServer};
use jiff::{SignedDuration, Timestamp};
use reqwest::StatusCode;
use serde_json::json;

backend_tests!(
    checks_follow_every_writer_at_once,
    instants_older_than_kept_are_read_from_the_database,
    once_the_writes_are_heard_checks_are_answered_from_memory,
    a_changed_plate_is_unknown_until_a_check_reads_it,
    a_burst_of_writes_is_taken_in_plate_by_plate,
);

/// `now` moved by `minutes`, to the second, as the APIs take it.
fn minutes_from(now: Timestamp, minutes: i64) -> String {
    let at = now + SignedDuration::from_mins(minutes);
    Timestamp::from_second(at.as_second()).unwrap().to_string()
}

async fn allowed(w: &World, plate: &str, at: &str) -> bool {
    let answer = w
        .check(&format!("licenseNumber={plate}&parkingLotId=12&at={at}"))
        .await;
    answer["allowed"].as_bool().unwrap()
}

/// Rights looked up in the memory and in the database so far, from /metrics.
async fn sources(server: &TestServer) -> (u64, u64) {
    (
        server
            .metric("parkhub_rights_answered_from_memory_total")
            .await,
        server
            .metric("parkhub_rights_read_from_database_total")
            .await,
    )
}

/// Longer than another process's change can go unseen (SQLite 10 ms, PostgreSQL 100 ms).
async fn after_another_instance_wrote() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

/// Until the memory has caught up with this instance's writes: the first check after them looks
/// for the changes (reading the database if the memory is behind), and the memory's task
/// applies them in moments.
async fn until_own_writes_are_heard(w: &World) {
    let at = minutes_from(Timestamp::now(), 0);
    allowed(w, "SETTLE1", &at).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn checks_follow_every_writer_at_once(backend: Backend) {
    let w = world(backend, |c| {
        c.rights_memory_keep = Duration::from_secs(2 * 3600)
    })
    .await;
    // Another instance on the same database, with its own memory (on SQLite: as another
    // process would be, its own writer connection).
    let other = TestServer::start_on(&w.server.database_url, |_| {}).await;
    let now = Timestamp::now();
    let at = minutes_from(now, 0);
    let mut checks = 0;

    // A ticket through this instance: the very next check has it (however soon after the
    // check before it).
    assert!(!allowed(&w, "MEM111", &at).await);
    w.ticket(
        "m-1",
        "MEM111",
        12,
        &minutes_from(now, -10),
        Some(&minutes_from(now, 60)),
    )
    .await;
    assert!(allowed(&w, "MEM111", &at).await);
    assert!(!allowed(&w, "MEM222", &at).await);
    checks += 3;

    // Through the other instance: this one has it too, and its end.
    let ticket = json!({"eventType": "CreateOrUpdate", "ticketId": "m-2", "parkingLotId": 12,
                        "startDate": minutes_from(now, -5), "endDate": minutes_from(now, 30),
                        "licenseNumber": "MEM222"});
    let (status, body) = other
        .post("/api/v1/actions/tickets", &w.provider, &ticket)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    after_another_instance_wrote().await;
    let answer = w
        .check(&format!("licenseNumber=MEM222&parkingLotId=12&at={at}"))
        .await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(answer["rights"][0]["ticketId"], "m-2", "{answer}");
    checks += 1;

    // Canceled there: not allowed here.
    let (status, body) = other
        .post(
            "/api/v1/actions/tickets",
            &w.provider,
            &json!({"eventType": "TicketCanceled", "ticketId": "m-2"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    after_another_instance_wrote().await;
    assert!(!allowed(&w, "MEM222", &at).await);
    checks += 1;

    // A vehicle entering the car park through the other instance is a right here; leaving
    // ends it.
    let (status, entry) = other
        .post("/api/v1/carparks/entries", &w.gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "MEM333", "ticketType": 4, "time": minutes_from(now, -20)}))
        .await;
    assert!(status.is_success(), "{status} {entry}");
    after_another_instance_wrote().await;
    assert!(allowed(&w, "MEM333", &at).await);
    let (status, exit) = other
        .post("/api/v1/carparks/exits", &w.gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": "MEM333", "ticketType": 4, "time": minutes_from(now, -15)}))
        .await;
    assert!(status.is_success(), "{status} {exit}");
    after_another_instance_wrote().await;
    assert!(!allowed(&w, "MEM333", &at).await);
    // ... except within the lot's grace after it left.
    assert!(allowed(&w, "MEM333", &minutes_from(now, -14)).await);
    checks += 3;

    if backend == Backend::Sqlite {
        // The first check of a plate after each of its five changes reads it again; the rest
        // (one may have met the memory's own task catching up) are answered from memory.
        let (memory, database) = sources(&w.server).await;
        assert!(
            memory + 1 >= checks - 5 && memory + database == checks,
            "{checks} checks: {memory} from memory, {database} from the database"
        );
    }
    other.stop().await;
}

async fn instants_older_than_kept_are_read_from_the_database(backend: Backend) {
    let w = world(backend, |c| {
        c.rights_memory_keep = Duration::from_secs(3600)
    })
    .await;
    let now = Timestamp::now();
    w.ticket(
        "o-1",
        "OLD111",
        12,
        &minutes_from(now, -300),
        Some(&minutes_from(now, -180)),
    )
    .await;
    // Four hours ago the ticket held: older than the memory keeps, so read from the database.
    let answer = w
        .check(&format!(
            "licenseNumber=OLD111&parkingLotId=12&at={}",
            minutes_from(now, -240)
        ))
        .await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert_eq!(answer["rights"][0]["ticketId"], "o-1", "{answer}");
    // Now it does not: from memory (once the plate is read again after its change; the memory
    // no longer holds the ticket, and need not), but for the old instant.
    until_own_writes_are_heard(&w).await;
    assert!(!allowed(&w, "OLD111", &minutes_from(now, 0)).await);
    let (memory_before, database_before) = sources(&w.server).await;
    let answer = w
        .check(&format!(
            "licenseNumber=OLD111&parkingLotId=12&at={}",
            minutes_from(now, -240)
        ))
        .await;
    assert_eq!(answer["allowed"], true, "{answer}");
    assert!(!allowed(&w, "OLD111", &minutes_from(now, 1)).await);
    let (memory, database) = sources(&w.server).await;
    assert_eq!(
        (memory - memory_before, database - database_before),
        (1, 1),
        "only the old instant read from the database"
    );
}

async fn once_the_writes_are_heard_checks_are_answered_from_memory(backend: Backend) {
    let w = world(backend, |c| {
        c.rights_memory_keep = Duration::from_secs(2 * 3600)
    })
    .await;
    let other = TestServer::start_on(&w.server.database_url, |_| {}).await;
    let now = Timestamp::now();
    let at = minutes_from(now, 0);
    w.ticket(
        "q-1",
        "QUIET1",
        12,
        &minutes_from(now, -10),
        Some(&minutes_from(now, 60)),
    )
    .await;
    let ticket = json!({"eventType": "CreateOrUpdate", "ticketId": "q-2", "parkingLotId": 12,
                        "startDate": minutes_from(now, -5), "endDate": minutes_from(now, 30),
                        "licenseNumber": "QUIET2"});
    let (status, body) = other
        .post("/api/v1/actions/tickets", &w.provider, &ticket)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    after_another_instance_wrote().await;
    until_own_writes_are_heard(&w).await;

    // The first check of each plate since its ticket may read it again (unless the memory
    // was loaded whole after it), and keeps it: every check after that is answered from
    // memory.
    assert!(allowed(&w, "QUIET1", &at).await);
    assert!(allowed(&w, "QUIET2", &at).await);
    let (memory_before, database_before) = sources(&w.server).await;
    for _ in 0..3 {
        assert!(allowed(&w, "QUIET1", &at).await);
        assert!(allowed(&w, "QUIET2", &at).await);
        assert!(!allowed(&w, "QUIET3", &at).await);
    }
    let (memory, database) = sources(&w.server).await;
    assert_eq!(
        (memory - memory_before, database - database_before),
        (9, 0),
        "every check from memory"
    );
    assert!(
        w.server.metric("parkhub_rights_memory_plates").await >= 2,
        "the memory holds both plates"
    );
    other.stop().await;
}

/// PostgreSQL only: there, transactions commit in another order than they write.
mod postgres_commit_order {
    use super::*;

    /// A change written first and committed after a later change was read is read too (a
    /// change number, handed out at the write, would have been passed by then).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_committed_after_a_later_one_was_read_is_not_missed() {
        let w = world(Backend::Postgres, |c| {
            c.rights_memory_keep = Duration::from_secs(2 * 3600)
        })
        .await;
        let now = Timestamp::now();
        let at = minutes_from(now, 0);
        for (id, plate) in [("late-1", "LATE111"), ("late-2", "LATE222")] {
            let (start, end) = (minutes_from(now, -10), minutes_from(now, 60));
            w.ticket(id, plate, 12, &start, Some(&end)).await;
        }
        assert!(allowed(&w, "LATE111", &at).await);
        assert!(allowed(&w, "LATE222", &at).await);

        // Another writer on the same database: A cancels LATE111 and stays open, B cancels
        // LATE222 and commits, and a check reads B's change.
        let cancel = "UPDATE tickets SET status = 'canceled', canceled_at = updated_at \
                      WHERE license_norm = $1";
        let pool = sqlx::PgPool::connect(&w.server.database_url)
            .await
            .expect("connect to the test database");
        let mut a = pool.begin().await.expect("begin A");
        sqlx::query(cancel)
            .bind("LATE111")
            .execute(&mut *a)
            .await
            .expect("A's cancel");
        sqlx::query(cancel)
            .bind("LATE222")
            .execute(&pool)
            .await
            .expect("B's cancel");
        after_another_instance_wrote().await;
        assert!(!allowed(&w, "LATE222", &at).await, "B's change is read");
        assert!(allowed(&w, "LATE111", &at).await, "A has not committed");

        a.commit().await.expect("commit A");
        after_another_instance_wrote().await;
        assert!(
            !allowed(&w, "LATE111", &at).await,
            "A's change, committed after B's was read, is read too"
        );
        pool.close().await;
    }
}

/// Plates the memory holds rights for, and plates it is to read again, from /metrics.
async fn gauges(server: &TestServer) -> (u64, u64) {
    (
        server.metric("parkhub_rights_memory_plates").await,
        server.metric("parkhub_rights_memory_unknown_plates").await,
    )
}

/// /metrics tells the plates held from those whose rights changed and wait to be read again. A
/// new ticket is added to what the memory holds without reading the plate (its change names the
/// ticket); a changed one has the plate read again by the first check that asks.
async fn a_changed_plate_is_unknown_until_a_check_reads_it(backend: Backend) {
    let w = world(backend, |c| {
        c.rights_memory_keep = Duration::from_secs(2 * 3600)
    })
    .await;
    until_own_writes_are_heard(&w).await;
    let (held, unknown) = gauges(&w.server).await;
    let now = Timestamp::now();
    let (start, end) = (minutes_from(now, -10), minutes_from(now, 60));
    w.ticket("u-1", "UNK777", 12, &start, Some(&end)).await;
    // The next check catches the memory up.
    until_own_writes_are_heard(&w).await;
    assert_eq!(
        gauges(&w.server).await,
        (held + 1, unknown),
        "added, not read"
    );
    // The ticket changes: the plate is forgotten, not read.
    let later = minutes_from(now, 90);
    w.ticket("u-1", "UNK777", 12, &start, Some(&later)).await;
    until_own_writes_are_heard(&w).await;
    assert_eq!(gauges(&w.server).await, (held, unknown + 1));
    // The first check that asks reads it and keeps it.
    assert!(allowed(&w, "UNK777", &minutes_from(now, 75)).await);
    assert_eq!(gauges(&w.server).await, (held + 1, unknown));
}

/// Tickets of plates `BURST{first}` … `BURST{last}` at lot 12 from ten minutes ago to an hour
/// from now, written straight into the database in one statement and updated in another, as a
/// burst of ingest sending each ticket twice between two looks of the memory would leave them
/// (an update has the memory read the plate again, where a new ticket may only be added).
async fn burst_of_tickets(server: &TestServer, first: i64, last: i64) {
    use parkhub::store::Backend as Db;
    let now = Timestamp::now().as_microsecond();
    let (start, end) = (now - 600_000_000, now + 3_600_000_000);
    let insert = "WITH RECURSIVE n (i) AS \
                      (SELECT CAST($1 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < $4) \
                  INSERT INTO tickets (provider_id, ticket_id, parking_lot_id, license_raw, \
                      license_norm, start_at, end_at, status, created_at, updated_at) \
                  SELECT (SELECT MIN(id) FROM principals WHERE role = 'provider'), \
                         'burst-' || i, 12, 'BURST' || i, 'BURST' || i, $2, $3, 'active', $2, $2 \
                    FROM n";
    macro_rules! insert {
        ($conn:expr) => {{
            let mut conn = $conn;
            let written = sqlx::query(insert)
                .bind(first)
                .bind(start)
                .bind(end)
                .bind(last)
                .execute(&mut *conn)
                .await
                .expect("the burst of tickets");
            assert_eq!(written.rows_affected(), (last - first + 1) as u64);
            let updated = sqlx::query(
                "UPDATE tickets SET updated_at = updated_at + 1 WHERE ticket_id LIKE 'burst-%'",
            )
            .execute(&mut *conn)
            .await
            .expect("the burst's updates");
            assert!(updated.rows_affected() >= (last - first + 1) as u64);
        }};
    }
    match server.store.backend() {
        Db::Sqlite(db) => insert!(db.writer.acquire().await.expect("the writer")),
        Db::Postgres(pool) => insert!(pool.acquire().await.expect("a connection")),
    }
}

/// More changes at once than a memory of a million plates could afford to reload each time
/// (ingest writes tens of thousands of tickets a second): the memory forgets those plates,
/// then reads them again itself once the writes quiet down, without loading everything.
async fn a_burst_of_writes_is_taken_in_plate_by_plate(backend: Backend) {
    const BURST: i64 = 25_000;
    let w = world(backend, |_| {}).await;
    until_own_writes_are_heard(&w).await;
    let loads = || w.server.metric("parkhub_rights_memory_loads_total");
    let loaded = loads().await;
    assert!(loaded >= 1, "loaded at start");
    let (held, unknown) = gauges(&w.server).await;
    burst_of_tickets(&w.server, 1, BURST).await;
    // The next check finds the memory far behind and wakes its task, which takes the burst in
    // (the plates to read again), then, finding nothing new a second later, reads them.
    let mut seen = Vec::new();
    for _ in 0..100 {
        allowed(&w, "SETTLE1", &minutes_from(Timestamp::now(), 0)).await;
        let now = gauges(&w.server).await;
        if seen.last() != Some(&now) {
            seen.push(now);
        }
        if now == (held + BURST as u64, unknown) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        seen.last(),
        Some(&(held + BURST as u64, unknown)),
        "held, to read again: {seen:?}"
    );
    assert_eq!(loads().await, loaded, "not loaded whole again");
    let now = minutes_from(Timestamp::now(), 0);
    assert!(allowed(&w, "BURST1", &now).await);
    assert!(allowed(&w, &format!("BURST{BURST}"), &now).await);
    assert!(!allowed(&w, &format!("BURST{}", BURST + 1), &now).await);
}
