//! Model-based property test of parking rights: random sequences of tickets, cancellations,
//! permits, vehicles on profiles, entries and exits are applied both to a running service and
//! to a small in-memory model written from the rules (not from the code); then checks at
//! instants chosen where mistakes hide — interval edges, grace edges, local midnight, the
//! window's 22:00 and 06:00, both daylight-saving days — must agree with the model every time,
//! plate by plate and in the lot's list of valid plates.

mod common;

use std::collections::BTreeSet;

use common::{Backend, TestServer};
use jiff::civil::{Date, Weekday};
use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::json;

const PLATES: [&str; 3] = ["AAA111", "BBB222", "CCC333"];
const GRACE_MIN: i64 = 5;
const ZONE: &str = "Europe/Stockholm";

#[derive(Debug, Clone)]
enum Op {
    /// A ticket from `start` (minutes after the base) lasting `length` minutes (or open).
    Ticket {
        plate: usize,
        start: i64,
        length: Option<i64>,
    },
    /// Cancel the n-th ticket made so far (modulo).
    Cancel {
        nth: usize,
    },
    /// A permit for the plate's holder over days `first..=first+days` after the base day.
    Permit {
        plate: usize,
        first: i64,
        days: i64,
    },
    /// Take the n-th permit's vehicle off its holder's profile, or put it back.
    ToggleVehicle {
        nth: usize,
    },
    /// Withdraw the n-th permit.
    DeletePermit {
        nth: usize,
    },
    Entry {
        plate: usize,
        at: i64,
    },
    Exit {
        plate: usize,
        at: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let minute = 0i64..(4 * 24 * 60);
    prop_oneof![
        4 => (0..3usize, minute.clone(), prop::option::of(1i64..600)).prop_map(|(plate, start, length)| Op::Ticket { plate, start, length }),
        1 => any::<usize>().prop_map(|nth| Op::Cancel { nth }),
        3 => (0..3usize, 0i64..4, 0i64..3).prop_map(|(plate, first, days)| Op::Permit { plate, first, days }),
        1 => any::<usize>().prop_map(|nth| Op::ToggleVehicle { nth }),
        1 => any::<usize>().prop_map(|nth| Op::DeletePermit { nth }),
        3 => (0..3usize, minute.clone()).prop_map(|(plate, at)| Op::Entry { plate, at }),
        3 => (0..3usize, minute).prop_map(|(plate, at)| Op::Exit { plate, at }),
    ]
}

#[derive(Debug, Clone)]
struct Scenario {
    /// Friday before the spring or the autumn change, 00:00 UTC.
    base: Timestamp,
    ops: Vec<Op>,
    /// Extra random check instants (minutes after the base).
    extra_checks: Vec<i64>,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::sample::select(vec!["2025-03-28T00:00:00Z", "2025-10-24T00:00:00Z"]),
        prop::collection::vec(op(), 5..25),
        prop::collection::vec(0i64..(4 * 24 * 60), 0..10),
    )
        .prop_map(|(base, ops, extra_checks)| Scenario {
            base: base.parse().unwrap(),
            ops,
            extra_checks,
        })
}

struct MTicket {
    plate: usize,
    start: Timestamp,
    end: Option<Timestamp>,
    canceled: bool,
    id: String,
}

struct MPermit {
    plate: usize,
    from: Date,
    to: Date,
    on_profile: bool,
    deleted: bool,
    id: String,
    email: String,
}

struct MStay {
    plate: usize,
    entry: Timestamp,
    exit: Option<Timestamp>,
}

#[derive(Default)]
struct Model {
    tickets: Vec<MTicket>,
    permits: Vec<MPermit>,
    stays: Vec<MStay>,
}

fn minutes(base: Timestamp, m: i64) -> Timestamp {
    base.checked_add(SignedDuration::from_mins(m)).unwrap()
}

impl Model {
    /// Weekdays 22:00 to 06:00 the next morning, local time, on the permit's days.
    fn permit_covers(&self, plate: usize, at: Timestamp) -> bool {
        let local = at.in_tz(ZONE).unwrap();
        let date = local.date();
        let minute = local.hour() as i64 * 60 + local.minute() as i64;
        let weekday = |d: Date| !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday);
        let in_window = (weekday(date) && minute >= 22 * 60)
            || (weekday(date.yesterday().unwrap()) && minute < 6 * 60);
        in_window
            && self.permits.iter().any(|p| {
                p.plate == plate && p.on_profile && !p.deleted && p.from <= date && date <= p.to
            })
    }

    /// (allowed now, allowed only by grace)
    fn expect(&self, plate: usize, at: Timestamp) -> (bool, bool) {
        let grace = SignedDuration::from_mins(GRACE_MIN);
        let span_now =
            |start: Timestamp, end: Option<Timestamp>| start <= at && end.is_none_or(|e| at < e);
        let span_grace = |end: Option<Timestamp>| {
            end.is_some_and(|e| e <= at && at < e.checked_add(grace).unwrap())
        };
        let mut now = false;
        let mut graced = false;
        for t in self
            .tickets
            .iter()
            .filter(|t| t.plate == plate && !t.canceled)
        {
            now |= span_now(t.start, t.end);
            graced |= t.start <= at && span_grace(t.end);
        }
        for s in self.stays.iter().filter(|s| s.plate == plate) {
            now |= span_now(s.entry, s.exit);
            graced |= s.entry <= at && span_grace(s.exit);
        }
        if self.permit_covers(plate, at) {
            now = true;
        } else if (1..=GRACE_MIN).any(|k| {
            self.permit_covers(plate, at.checked_sub(SignedDuration::from_mins(k)).unwrap())
        }) {
            graced = true;
        }
        (now || graced, !now && graced)
    }

    fn interesting(&self, base: Timestamp, extra: &[i64]) -> BTreeSet<Timestamp> {
        let mut at = BTreeSet::new();
        let mut edges = Vec::new();
        for t in &self.tickets {
            edges.push(t.start);
            edges.extend(t.end);
        }
        for s in &self.stays {
            edges.push(s.entry);
            edges.extend(s.exit);
        }
        for edge in edges {
            for k in [-1, 0, 1, 4, 5, 6] {
                at.insert(edge.checked_add(SignedDuration::from_mins(k)).unwrap());
            }
        }
        // local midnight, 06:00 and 22:00 (and a few minutes after) on each day, in the zone
        let first = base.in_tz(ZONE).unwrap().date();
        for d in 0..5 {
            let day = first.checked_add(jiff::Span::new().days(d)).unwrap();
            for (h, m) in [
                (0, 0),
                (1, 30),
                (3, 0),
                (5, 59),
                (6, 0),
                (6, 3),
                (21, 59),
                (22, 0),
                (23, 59),
            ] {
                if let Ok(z) = day.at(h, m, 0, 0).in_tz(ZONE) {
                    at.insert(z.timestamp());
                }
            }
        }
        for m in extra {
            at.insert(minutes(base, *m));
        }
        at
    }
}

async fn setup(backend: Backend) -> (TestServer, String, String, String, String) {
    let server = TestServer::start(backend).await;
    server.carpark(12, 1, 2, 100).await;
    let (_, provider) = server.provider("p", None).await;
    let gate = server.equipment("gate", &[12]).await;
    let officer = server
        .token_for(parkhub::principals::Role::Enforcement, "officer")
        .await;
    let (_, tenant) = server
        .post(
            "/api/v1/admin/tenants",
            &server.operator,
            &json!({"name": "T"}),
        )
        .await;
    let (_, definition) = server
        .post("/api/v1/admin/permit-definitions", &server.operator,
              &json!({"name": "Nights", "parkingLotIds": [12], "schedule": [{"days": ["mon","tue","wed","thu","fri"], "from": "22:00", "to": "06:00"}]}))
        .await;
    let (_, allocation) = server
        .post("/api/v1/admin/permit-allocations", &server.operator,
              &json!({"tenantId": tenant["id"], "permitDefinitionId": definition["id"], "parkingSpacesCount": 1000, "permitCount": 1000, "validFrom": "2020-01-01", "validTo": "2030-12-31"}))
        .await;
    let tenant = tenant["token"].as_str().unwrap().to_owned();
    let allocation = allocation["id"].as_str().unwrap().to_owned();
    (
        server,
        provider,
        gate,
        officer,
        format!("{tenant} {allocation}"),
    )
}

async fn run(backend: Backend, scenario: Scenario) {
    let (server, provider, gate, officer, tenant_allocation) = setup(backend).await;
    let (tenant, allocation) = tenant_allocation.split_once(' ').unwrap();
    let base = scenario.base;
    let base_day = base.in_tz(ZONE).unwrap().date();
    let mut model = Model::default();
    let mut open: [Option<Timestamp>; 3] = [None; 3];
    for (i, op) in scenario.ops.iter().enumerate() {
        match op {
            Op::Ticket {
                plate,
                start,
                length,
            } => {
                let (start, end) = (
                    minutes(base, *start),
                    length.map(|l| minutes(base, start + l)),
                );
                let id = format!("t{i}");
                let body = json!({"eventType": "CreateOrUpdate", "ticketId": id, "parkingLotId": 12,
                                  "startDate": start.to_string(), "endDate": end.map(|e| e.to_string()), "licenseNumber": PLATES[*plate]});
                let (status, answer) = server
                    .post("/api/v1/actions/tickets", &provider, &body)
                    .await;
                assert_eq!(status, StatusCode::OK, "{answer}");
                model.tickets.push(MTicket {
                    plate: *plate,
                    start,
                    end,
                    canceled: false,
                    id,
                });
            }
            Op::Cancel { nth } if !model.tickets.is_empty() => {
                let n = nth % model.tickets.len();
                let (status, _) = server
                    .post(
                        "/api/v1/actions/tickets",
                        &provider,
                        &json!({"eventType": "TicketCanceled", "ticketId": model.tickets[n].id}),
                    )
                    .await;
                assert_eq!(status, StatusCode::OK);
                model.tickets[n].canceled = true;
            }
            Op::Permit { plate, first, days } => {
                let from = base_day
                    .checked_add(jiff::Span::new().days(*first))
                    .unwrap();
                let to = from.checked_add(jiff::Span::new().days(*days)).unwrap();
                let email = format!("holder{i}@example.com");
                let (status, permit) = server
                    .post("/permit/v3/end_user_permit", tenant, &json!({"email": email, "permit_allocation_id": allocation, "valid_from": from.to_string(), "valid_to": to.to_string()}))
                    .await;
                assert_eq!(status, StatusCode::CREATED, "{permit}");
                server
                    .call(
                        Method::PUT,
                        &format!("/api/v1/admin/end-users/{email}"),
                        Some(&server.operator),
                        None,
                    )
                    .await;
                let (status, _) = server
                    .call(
                        Method::PUT,
                        &format!(
                            "/api/v1/admin/end-users/{email}/vehicles/{}",
                            PLATES[*plate]
                        ),
                        Some(&server.operator),
                        None,
                    )
                    .await;
                assert_eq!(status, StatusCode::CREATED);
                model.permits.push(MPermit {
                    plate: *plate,
                    from,
                    to,
                    on_profile: true,
                    deleted: false,
                    id: permit["permit_id"].as_str().unwrap().to_owned(),
                    email,
                });
            }
            Op::ToggleVehicle { nth } if !model.permits.is_empty() => {
                let n = nth % model.permits.len();
                let p = &mut model.permits[n];
                let path = format!(
                    "/api/v1/admin/end-users/{}/vehicles/{}",
                    p.email, PLATES[p.plate]
                );
                let method = if p.on_profile {
                    Method::DELETE
                } else {
                    Method::PUT
                };
                let (status, _) = server
                    .call(method, &path, Some(&server.operator), None)
                    .await;
                assert!(status.is_success(), "{status}");
                p.on_profile = !p.on_profile;
            }
            Op::DeletePermit { nth } if !model.permits.is_empty() => {
                let n = nth % model.permits.len();
                let p = &mut model.permits[n];
                let (status, _) = server
                    .delete(&format!("/permit/v3/end_user_permit/{}", p.id), tenant)
                    .await;
                assert_eq!(status == StatusCode::NO_CONTENT, !p.deleted);
                p.deleted = true;
            }
            Op::Entry { plate, at } => {
                let at = minutes(base, *at);
                let (status, body) = server
                    .post("/api/v1/carparks/entries", &gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": PLATES[*plate], "ticketType": 4, "time": at.to_string()}))
                    .await;
                if open[*plate].is_some() {
                    assert!(
                        status == StatusCode::CONFLICT || status == StatusCode::OK,
                        "{status} {body}"
                    );
                } else {
                    assert_eq!(status, StatusCode::CREATED, "{body}");
                    open[*plate] = Some(at);
                    model.stays.push(MStay {
                        plate: *plate,
                        entry: at,
                        exit: None,
                    });
                }
            }
            Op::Exit { plate, at } => {
                let at = minutes(base, *at);
                let (status, body) = server
                    .post("/api/v1/carparks/exits", &gate, &json!({"facilityNo": 1, "carparkNo": 2, "ticketNo": PLATES[*plate], "ticketType": 4, "time": at.to_string()}))
                    .await;
                match open[*plate] {
                    Some(entry) if at >= entry => {
                        assert_eq!(status, StatusCode::CREATED, "{body}");
                        open[*plate] = None;
                        if let Some(stay) = model
                            .stays
                            .iter_mut()
                            .rev()
                            .find(|s| s.plate == *plate && s.exit.is_none())
                        {
                            stay.exit = Some(at);
                        }
                    }
                    Some(_) => assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}"),
                    None => assert!(
                        status == StatusCode::NOT_FOUND || status == StatusCode::OK,
                        "{status} {body}"
                    ),
                }
            }
            _ => {}
        }
    }
    for at in model.interesting(base, &scenario.extra_checks) {
        let (status, answer) = server
            .post(
                "/api/v1/parking-rights/check",
                &officer,
                &json!({"licenseNumbers": PLATES, "parkingLotId": 12, "at": at.to_string()}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        // The handhelds' list, decided for the whole lot at once, names exactly the plates
        // the model allows.
        let (status, list) = server
            .get(
                &format!("/api/v1/parking-rights/valid-plates?parkingLotId=12&perPage=500&at={at}"),
                &officer,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{list}");
        let expected: Vec<&str> = (0..PLATES.len())
            .filter(|&i| model.expect(i, at).0)
            .map(|i| PLATES[i])
            .collect();
        assert_eq!(
            list["data"],
            json!(expected),
            "valid plates at {at} ({})",
            at.in_tz(ZONE).unwrap()
        );
        for (i, result) in answer["results"].as_array().unwrap().iter().enumerate() {
            let (allowed, grace) = model.expect(i, at);
            assert_eq!(
                (
                    result["allowed"].as_bool().unwrap(),
                    result["grace"].as_bool().unwrap()
                ),
                (allowed, grace),
                "{} at {at} ({}): service says {result}",
                PLATES[i],
                at.in_tz(ZONE).unwrap()
            );
        }
    }
    server.stop().await;
}

fn check_model(backend: Backend) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let cases = std::env::var("PARKHUB_MODEL_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(10);
    let mut runner = TestRunner::new(Config {
        cases,
        max_shrink_iters: 30,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&scenario(), |scenario| {
        runtime.block_on(run(backend, scenario));
        Ok(())
    });
    if let Err(failure) = result {
        panic!("the service and the model disagree: {failure}");
    }
}

mod sqlite {
    #[test]
    fn service_agrees_with_the_model() {
        super::check_model(super::Backend::Sqlite);
    }
}

mod postgres {
    #[test]
    fn service_agrees_with_the_model() {
        super::check_model(super::Backend::Postgres);
    }
}
