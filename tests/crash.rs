//! The crash campaign: the real `parkhub` binary under a constant load from several providers
//! (tickets) and equipment (entries and exits), killed with SIGKILL at random moments and
//! restarted, again and again. Afterwards every acknowledged ticket is there at its latest
//! acknowledged state, every acknowledged entry and exit reached its provider's subscriber
//! exactly once after EventID dedupe and in order, the service was ready within 5 s of each
//! restart, and SQLite's integrity check passes.
//!
//! `PARKHUB_CRASH_CYCLES` sets the number of kills (3 by default, so CI stays short; 20 by hand,
//! see RELIABILITY.md).

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::{Service, create_token};
use common::{Backend, fresh_database};
use futures_util::{SinkExt, StreamExt};
use rand::Rng;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

backend_tests!(kill_9_under_load_loses_nothing);

const PROVIDERS: usize = 3;
const WRITERS_PER_PROVIDER: usize = 2;
const EQUIPMENT: usize = 2;
const PLATES_PER_GATE: usize = 6;
/// Each writer and gate sends one request every this long.
const PACE: Duration = Duration::from_millis(25);

fn cycles() -> usize {
    std::env::var("PARKHUB_CRASH_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

/// What the clients sent and what the service acknowledged.
#[derive(Default)]
struct Ledger {
    requests: u64,
    /// (provider, ticketId) → the license number of the last acknowledged version.
    tickets: HashMap<(usize, String), String>,
    /// Per provider: EventIDs of acknowledged entries and exits, each with its gate and the
    /// order in which that gate had it acknowledged (a gate sends one request at a time).
    events: Vec<HashMap<String, (usize, u64)>>,
    /// Per provider: every EventID its subscriber received, in arrival order (re-sends too).
    received: Vec<Vec<String>>,
    /// Per provider: the plates that are its identifiers.
    plates: Vec<HashSet<String>>,
    /// Frames received with a plate that is not the provider's.
    misdelivered: Vec<String>,
}

type Shared = Arc<Mutex<Ledger>>;

fn lock(ledger: &Shared) -> std::sync::MutexGuard<'_, Ledger> {
    ledger.lock().unwrap_or_else(|e| e.into_inner())
}

struct World {
    providers: Vec<String>,
    equipment: Vec<String>,
}

async fn call(base: &str, method: Method, path: &str, token: &str, body: Value) -> Value {
    let response = reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("the service answers");
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert!(status.is_success(), "{path}: {status} {body}");
    body
}

async fn set_up(base: &str, operator: String) -> World {
    call(
        base,
        Method::POST,
        "/api/v1/admin/parking-lots",
        &operator,
        json!({"id": 12, "name": "P-hus", "zoneCode": 123, "timeZone": "Europe/Stockholm",
               "facilityNo": 1, "carparkNo": 2, "capacity": 1_000_000}),
    )
    .await;
    call(
        base,
        Method::PUT,
        "/api/v1/admin/parking-lots/12/rates/1",
        &operator,
        json!({"name": "Standard", "currencyCode": "SEK", "freeMinutes": 15, "periodMinutes": 60,
               "pricePerPeriod": 2000, "default": true}),
    )
    .await;
    let mut providers = Vec::new();
    for p in 0..PROVIDERS {
        let created = call(
            base,
            Method::POST,
            "/api/v1/admin/providers",
            &operator,
            json!({"name": format!("provider-{p}")}),
        )
        .await;
        providers.push(created["token"].as_str().expect("a token").to_owned());
    }
    let mut equipment = Vec::new();
    for e in 0..EQUIPMENT {
        let created = call(
            base,
            Method::POST,
            "/api/v1/admin/equipment",
            &operator,
            json!({"name": format!("gate-{e}"), "parkingLotIds": [12]}),
        )
        .await;
        equipment.push(created["token"].as_str().expect("a token").to_owned());
    }
    World {
        providers,
        equipment,
    }
}

/// A provider's writer: a new ticket, then the next version of its one "hot" ticket, in turn.
async fn ticket_writer(
    base: String,
    token: String,
    p: usize,
    w: usize,
    cycle: usize,
    ledger: Shared,
) {
    let client = reqwest::Client::new();
    let mut pace = tokio::time::interval(PACE);
    for n in 0.. {
        pace.tick().await;
        let (id, plate) = if n % 2 == 0 {
            (format!("c{cycle}-w{w}-n{n}"), format!("NEW{n}"))
        } else {
            (format!("hot-w{w}"), format!("HOT{cycle}X{n}"))
        };
        let body = json!({"eventType": "CreateOrUpdate", "ticketId": id, "parkingLotId": 12,
                          "startDate": "2025-06-01T10:00:00Z", "licenseNumber": plate});
        lock(&ledger).requests += 1;
        match client
            .post(format!("{base}/api/v1/actions/tickets"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::OK => {
                lock(&ledger).tickets.insert((p, id), plate);
            }
            Ok(r) => panic!("ticket {id}: unexpected {}", r.status()),
            Err(_) => return, // the service is gone
        }
    }
}

/// A gate: its plates enter and leave in turn, one minute apart on its own clock.
async fn gate(
    base: String,
    e: usize,
    token: String,
    plates: Vec<(String, usize)>,
    cycle: usize,
    ledger: Shared,
) {
    let client = reqwest::Client::new();
    let mut pace = tokio::time::interval(PACE);
    let start =
        jiff::Timestamp::from_second(1_740_787_200 + 86_400 * cycle as i64).expect("a time");
    let mut inside = vec![false; plates.len()];
    for n in 0.. {
        pace.tick().await;
        let i = n % plates.len();
        let (plate, provider) = &plates[i];
        let path = if inside[i] { "exits" } else { "entries" };
        let time = start + jiff::SignedDuration::from_mins(n as i64);
        let body = json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": plate, "ticketType": 4,
                          "time": time.to_string()});
        lock(&ledger).requests += 1;
        match client
            .post(format!("{base}/api/v1/carparks/{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
        {
            Ok(r) if r.status() == StatusCode::CREATED => {
                let Ok(body) = r.json::<Value>().await else {
                    return; // cut off mid-answer: not acknowledged
                };
                let id = body["eventId"].as_str().expect("an eventId").to_owned();
                let mut ledger = lock(&ledger);
                let order = ledger.events.iter().map(HashMap::len).sum::<usize>() as u64;
                ledger.events[*provider].insert(id, (e, order));
                inside[i] = !inside[i];
            }
            Ok(r) => panic!("{path} of {plate}: unexpected {}", r.status()),
            Err(_) => return,
        }
    }
}

/// A provider's subscriber: records every frame's EventID and acknowledges it, until the
/// socket ends (the service was killed) or `stop` says so.
async fn subscriber(
    base: String,
    token: String,
    p: usize,
    ledger: Shared,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let url = format!(
        "{}/api/TransactionMonitor?ack=explicit&subscription=crash",
        base.replacen("http", "ws", 1)
    );
    let mut request = url.into_client_request().expect("a request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("a header"),
    );
    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(request).await else {
        return;
    };
    loop {
        let message = tokio::select! {
            m = socket.next() => m,
            _ = stop.wait_for(|s| *s) => break,
        };
        let Some(Ok(message)) = message else { return };
        let Message::Text(text) = message else {
            continue;
        };
        let frame: Value = serde_json::from_str(&text).expect("a JSON frame");
        let Some(id) = frame["EventID"].as_str() else {
            continue; // a heartbeat
        };
        {
            let mut ledger = lock(&ledger);
            let plate = frame["TicketNo"].as_str().unwrap_or_default();
            if !ledger.plates[p].contains(plate) {
                ledger
                    .misdelivered
                    .push(format!("provider {p} got {frame}"));
            }
            ledger.received[p].push(id.to_owned());
        }
        let ack = json!({ "Ack": id }).to_string();
        if socket.send(Message::Text(ack.into())).await.is_err() {
            return;
        }
    }
    let _ = socket.close(None).await;
}

/// Starts the service and answers how long it took to be ready.
async fn restart(url: &str) -> (Service, Duration) {
    let started = Instant::now();
    let service = Service::start(url, &[]).await;
    (service, started.elapsed())
}

/// Every ticket each provider lists: (provider, ticketId) → license number.
async fn stored_tickets(base: &str, world: &World) -> HashMap<(usize, String), String> {
    let mut stored = HashMap::new();
    for (p, token) in world.providers.iter().enumerate() {
        for page in 1.. {
            let body = call(
                base,
                Method::GET,
                &format!("/api/v1/actions/tickets?perPage=500&page={page}"),
                token,
                Value::Null,
            )
            .await;
            let data = body["data"].as_array().expect("a page");
            for t in data {
                stored.insert(
                    (p, t["ticketId"].as_str().expect("an id").to_owned()),
                    t["licenseNumber"].as_str().expect("a plate").to_owned(),
                );
            }
            if data.len() < 500 {
                break;
            }
        }
    }
    stored
}

/// Tickets acknowledged but missing or older than acknowledged.
fn lost_tickets(
    acked: &HashMap<(usize, String), String>,
    stored: &HashMap<(usize, String), String>,
) -> Vec<String> {
    // HOT<cycle>X<n>: a later n is a later version.
    let version = |plate: &str| -> (u64, u64) {
        let rest = plate.trim_start_matches("HOT");
        let (c, n) = rest.split_once('X').unwrap_or(("0", "0"));
        (c.parse().unwrap_or(0), n.parse().unwrap_or(0))
    };
    let mut lost = Vec::new();
    for (key, plate) in acked {
        match stored.get(key) {
            None => lost.push(format!("{key:?} missing")),
            // the acknowledged update, or one in flight when the kill came (never older)
            Some(found) if key.1.starts_with("hot-") => {
                if version(found) < version(plate) {
                    lost.push(format!("{key:?}: acknowledged {plate}, stored {found}"));
                }
            }
            Some(found) if found != plate => lost.push(format!("{key:?}: {found} != {plate}")),
            Some(_) => {}
        }
    }
    lost
}

async fn kill_9_under_load_loses_nothing(backend: Backend) {
    let (url, _dir) = fresh_database(backend).await;
    let operator = create_token(&url, "operator", "crash-operator");
    let (mut service, _) = restart(&url).await;
    let world = set_up(&service.base, operator).await;
    let ledger: Shared = Arc::default();
    {
        let mut l = lock(&ledger);
        l.events = vec![HashMap::new(); PROVIDERS];
        l.received = vec![Vec::new(); PROVIDERS];
        l.plates = vec![HashSet::new(); PROVIDERS];
    }
    let mut slowest_ready = Duration::ZERO;
    let cycles = cycles();
    for cycle in 0..cycles {
        let base = service.base.clone();
        // This cycle's plates, each an identifier of one provider.
        let mut gates_plates = vec![Vec::new(); EQUIPMENT];
        for (e, plates) in gates_plates.iter_mut().enumerate() {
            for i in 0..PLATES_PER_GATE {
                let p = (e + i) % PROVIDERS;
                let plate = format!("C{cycle}E{e}N{i}");
                call(
                    &base,
                    Method::PUT,
                    "/api/v1/identifiers",
                    &world.providers[p],
                    json!({"ticketNo": plate, "ticketType": 4}),
                )
                .await;
                lock(&ledger).plates[p].insert(plate.clone());
                plates.push((plate, p));
            }
        }
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut subscribers = Vec::new();
        for (p, token) in world.providers.iter().enumerate() {
            subscribers.push(tokio::spawn(subscriber(
                base.clone(),
                token.clone(),
                p,
                ledger.clone(),
                stop_rx.clone(),
            )));
        }
        let mut load = Vec::new();
        for (p, token) in world.providers.iter().enumerate() {
            for w in 0..WRITERS_PER_PROVIDER {
                load.push(tokio::spawn(ticket_writer(
                    base.clone(),
                    token.clone(),
                    p,
                    w,
                    cycle,
                    ledger.clone(),
                )));
            }
        }
        for (e, plates) in gates_plates.into_iter().enumerate() {
            load.push(tokio::spawn(gate(
                base.clone(),
                e,
                world.equipment[e].clone(),
                plates,
                cycle,
                ledger.clone(),
            )));
        }
        let wait = rand::rng().random_range(300..900);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        service.kill_9().await;
        for task in load.into_iter().chain(subscribers) {
            task.await.expect("a client task");
        }
        drop(stop_tx);
        let (restarted, ready) = restart(&url).await;
        service = restarted;
        assert!(
            ready < Duration::from_secs(5),
            "cycle {cycle}: ready after {ready:?}"
        );
        slowest_ready = slowest_ready.max(ready);

        if std::env::var("PARKHUB_CRASH_VERBOSE").is_ok() {
            let l = lock(&ledger);
            let events: usize = l.events.iter().map(HashMap::len).sum();
            eprintln!(
                "cycle {cycle}: after {wait} ms, {} tickets and {events} events acknowledged so far",
                l.tickets.len()
            );
        }
        let stored = stored_tickets(&service.base, &world).await;
        let acked = lock(&ledger).tickets.clone();
        let lost = lost_tickets(&acked, &stored);
        assert!(
            lost.is_empty(),
            "cycle {cycle}: lost {} of {}: {lost:?}",
            lost.len(),
            acked.len()
        );
    }

    // The subscribers come back and catch up with everything acknowledged.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut subscribers = Vec::new();
    for (p, token) in world.providers.iter().enumerate() {
        subscribers.push(tokio::spawn(subscriber(
            service.base.clone(),
            token.clone(),
            p,
            ledger.clone(),
            stop_rx.clone(),
        )));
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let caught_up = {
            let l = lock(&ledger);
            (0..PROVIDERS).all(|p| {
                let got: HashSet<&String> = l.received[p].iter().collect();
                l.events[p].keys().all(|id| got.contains(id))
            })
        };
        if caught_up || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop_tx.send(true);
    for s in subscribers {
        s.await.expect("a subscriber");
    }

    let l = std::mem::take(&mut *lock(&ledger));
    assert!(l.misdelivered.is_empty(), "{:?}", l.misdelivered);
    let (mut delivered, mut resent, mut acked_events) = (0, 0, 0);
    for p in 0..PROVIDERS {
        // After dropping repeats of an EventID already seen, each gate's events arrive in the
        // order the gate had them acknowledged.
        let mut seen = HashSet::new();
        let mut last = [None; EQUIPMENT];
        for id in &l.received[p] {
            if !seen.insert(id.clone()) {
                resent += 1;
                continue;
            }
            // Events committed whose answer the kill cut off have no known order: skipped.
            if let Some(&(e, order)) = l.events[p].get(id) {
                assert!(
                    last[e] < Some(order),
                    "provider {p}: gate {e}'s event {id} arrived out of order"
                );
                last[e] = Some(order);
            }
        }
        let missing: Vec<&String> = l.events[p]
            .keys()
            .filter(|id| !seen.contains(*id))
            .collect();
        assert!(
            missing.is_empty(),
            "provider {p}: acknowledged events never delivered: {missing:?}"
        );
        delivered += seen.len();
        acked_events += l.events[p].len();
    }
    let acked_tickets = l.tickets.len();
    assert!(
        acked_tickets > 20 * cycles,
        "too few tickets to prove anything: {acked_tickets}"
    );
    assert!(
        acked_events > 5 * cycles,
        "too few events to prove anything: {acked_events}"
    );
    eprintln!(
        "crash campaign {backend:?}: {cycles} kills, {} requests, {} acknowledged ({acked_tickets} tickets at their latest acknowledged version, {acked_events} entries/exits), lost 0; {delivered} events delivered once each after dedupe, in order ({resent} re-sent after a kill); slowest restart to ready {} ms",
        l.requests,
        acked_tickets + acked_events,
        slowest_ready.as_millis(),
    );

    assert!(service.sigterm().await.success());
    if backend == Backend::Sqlite {
        common::assert_sqlite_intact(&url).await;
        eprintln!("crash campaign Sqlite: PRAGMA integrity_check = ok");
    }
}
