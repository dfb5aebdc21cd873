//! Listing a provider's short-time tickets (pages, filters, counts), through real HTTP, on
//! SQLite and PostgreSQL.

mod common;

use common::tickets::{TICKETS, list, push, seed_ticket, setup, ticket_ids};
use common::{Backend, assert_invalid};
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    paging_is_stable_while_tickets_arrive,
    list_filters_and_page_parameters,
    a_large_and_a_small_providers_pages_are_their_tickets_in_order,
    a_providers_total_counts_its_new_tickets_once_each,
);

async fn paging_is_stable_while_tickets_arrive(backend: Backend) {
    let (server, token) = setup(backend).await;
    for i in 0..25 {
        push(&server, &token, &seed_ticket(&format!("p-{i:03}"))).await;
    }
    // a writer keeps adding tickets while a reader pages with perPage=4
    let writer = {
        let client = reqwest::Client::new();
        let url = server.url(TICKETS);
        let token = token.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                let status = client
                    .post(&url)
                    .bearer_auth(&token)
                    .json(&seed_ticket(&format!("q-{i:03}")))
                    .send()
                    .await
                    .expect("post")
                    .status();
                assert_eq!(status, StatusCode::OK);
            }
        })
    };
    let mut seen = Vec::new();
    let mut page = 1;
    loop {
        let body = list(&server, &token, &format!("?page={page}&perPage=4")).await;
        let data = body["data"].as_array().unwrap();
        if data.is_empty() {
            break;
        }
        assert_eq!(body["meta"]["perPage"], 4);
        assert_eq!(body["meta"]["currentPage"], page);
        seen.extend(
            data.iter()
                .map(|t| t["ticketId"].as_str().unwrap().to_owned()),
        );
        // a page with fewer than perPage tickets is the last one: a ticket created after it was
        // read belongs to the next pass, not to a page after it (an offset past the end would
        // skip whatever filled the rest of that page meanwhile)
        if data.len() < 4 {
            break;
        }
        page += 1;
        if page > 100 {
            panic!("paging did not end");
        }
    }
    writer.await.expect("writer");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), seen.len(), "a ticket was repeated: {seen:?}");
    for (i, id) in seen.iter().take(25).enumerate() {
        assert_eq!(
            *id,
            format!("p-{i:03}"),
            "the first tickets come first, in order"
        );
    }
    // everything that existed when paging started was seen; the rest appears on a fresh pass
    let all = list(&server, &token, "?perPage=500").await;
    assert_eq!(all["meta"]["total"], 65);
    let ids = ticket_ids(&all);
    assert_eq!(&ids[..seen.len()], seen.as_slice());
}

async fn list_filters_and_page_parameters(backend: Backend) {
    let (server, token) = setup(backend).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let mut a = seed_ticket("f-1");
    a["licenseNumber"] = json!("abc-123");
    push(&server, &token, &a).await;
    let mut b = seed_ticket("f-2");
    b["licenseNumber"] = json!("ÅBC123");
    push(&server, &token, &b).await;
    let mut c = seed_ticket("f-3");
    c["parkingLotId"] = json!(14);
    push(&server, &token, &c).await;

    assert_eq!(
        ticket_ids(&list(&server, &token, "?licenseNumber=ABC%20123").await),
        ["f-1", "f-3"]
    );
    assert_eq!(
        ticket_ids(&list(&server, &token, "?licenseNumber=%C3%A5bc123").await),
        ["f-2"]
    );
    assert_eq!(
        ticket_ids(&list(&server, &token, "?parkingLotId=14").await),
        ["f-3"]
    );
    assert_eq!(
        ticket_ids(&list(&server, &token, "?parkingLotId=12&licenseNumber=abc123").await),
        ["f-1"]
    );
    let later = jiff::Timestamp::now().as_second() + 10;
    assert_eq!(
        ticket_ids(&list(&server, &token, &format!("?updatedSince={later}")).await),
        Vec::<String>::new()
    );
    assert_eq!(
        ticket_ids(&list(&server, &token, "?updatedSince=0").await).len(),
        3
    );
    // updatedSince with the other filters and paging (on SQLite a query of its own, by the
    // tickets' time index), never another provider's tickets
    let (_, other) = server.provider("other", None).await;
    push(&server, &other, &seed_ticket("o-1")).await;
    assert_eq!(
        ticket_ids(&list(&server, &token, "?updatedSince=0&licenseNumber=ABC%20123").await),
        ["f-1", "f-3"]
    );
    assert_eq!(
        ticket_ids(&list(&server, &token, "?updatedSince=0&parkingLotId=14").await),
        ["f-3"]
    );
    let paged = list(&server, &token, "?updatedSince=0&perPage=2&page=2").await;
    assert_eq!(ticket_ids(&paged), ["f-3"]);
    assert_eq!(paged["meta"]["total"], 3);
    // a cutoff between writes: only what was written from that second on
    let cutoff = jiff::Timestamp::now().as_second() + 1;
    tokio::time::sleep(std::time::Duration::from_millis(
        1050 - jiff::Timestamp::now().subsec_millisecond() as u64,
    ))
    .await;
    push(&server, &token, &b).await;
    push(&server, &other, &seed_ticket("o-2")).await;
    let since = list(&server, &token, &format!("?updatedSince={cutoff}")).await;
    assert_eq!(ticket_ids(&since), ["f-2"]);
    assert_eq!(since["meta"]["total"], 1);

    let second = list(&server, &token, "?perPage=2&page=2").await;
    assert_eq!(ticket_ids(&second), ["f-3"]);
    assert_eq!(
        second["meta"],
        json!({"currentPage": 2, "perPage": 2, "total": 3, "lastPage": 2})
    );
    assert_eq!(
        ticket_ids(&list(&server, &token, "?page=9").await),
        Vec::<String>::new()
    );

    for (query, field) in [
        ("?page=0", "page"),
        ("?page=-1", "page"),
        ("?page=abc", "page"),
        ("?page=1.5", "page"),
        ("?perPage=0", "perPage"),
        ("?perPage=501", "perPage"),
        ("?parkingLotId=x", "parkingLotId"),
        ("?updatedSince=yesterday", "updatedSince"),
    ] {
        let (status, body) = server.get(&format!("{TICKETS}{query}"), &token).await;
        assert_invalid(status, &body, field);
    }
}

/// A ticket as pushed: (ticketId, lot, plate).
type Pushed = (String, i64, String);

/// A listing's query and which of the tickets pushed it keeps.
type Filter = (&'static str, fn(&Pushed) -> bool);

async fn a_large_and_a_small_providers_pages_are_their_tickets_in_order(backend: Backend) {
    // 78 tickets of one provider and 2 of another, interleaved, over two lots and five plates:
    // on SQLite the large provider's pages are read in id order and the small one's by index
    // (tickets::store::list::page_read), one a page, so its second and last page is read by
    // index from the end; either way a page holds the provider's matching tickets in the order
    // they were created, and the total counts them.
    let (server, large) = setup(backend).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let (_, small) = server.provider("small", None).await;
    let (mut mine, mut theirs): (Vec<Pushed>, Vec<Pushed>) = (Vec::new(), Vec::new());
    for i in 0..80 {
        let lot = if i % 3 == 0 { 14 } else { 12 };
        let plate = format!("P{}", i % 5);
        let mut ticket = seed_ticket(&format!("t-{i:02}"));
        ticket["parkingLotId"] = json!(lot);
        ticket["licenseNumber"] = json!(plate);
        let (token, pushed) = if i % 40 == 0 {
            (&small, &mut theirs)
        } else {
            (&large, &mut mine)
        };
        push(&server, token, &ticket).await;
        pushed.push((format!("t-{i:02}"), lot, plate));
    }
    // and a provider that started last: its 10 tickets are the table's last; on SQLite its
    // first page of 5 is looked for in id order among the first 50 rows, not found there, and
    // read by index
    let (_, late) = server.provider("late", None).await;
    let mut latest: Vec<Pushed> = Vec::new();
    for i in 80..90 {
        let mut ticket = seed_ticket(&format!("t-{i:02}"));
        ticket["licenseNumber"] = json!("P0");
        push(&server, &late, &ticket).await;
        latest.push((format!("t-{i:02}"), 12, "P0".to_owned()));
    }
    assert_eq!((mine.len(), theirs.len()), (78, 2));
    let filters: [Filter; 7] = [
        ("", |_| true),
        ("licenseNumber=P2", |t| t.2 == "P2"),
        ("parkingLotId=14", |t| t.1 == 14),
        ("licenseNumber=P0&parkingLotId=12", |t| {
            t.2 == "P0" && t.1 == 12
        }),
        ("updatedSince=0", |_| true),
        ("updatedSince=0&parkingLotId=12", |t| t.1 == 12),
        ("updatedSince=0&licenseNumber=P0", |t| t.2 == "P0"),
    ];
    for (token, pushed, per_page) in [
        (&large, &mine, 7),
        (&small, &theirs, 1),
        (&late, &latest, 5),
    ] {
        for (query, keep) in filters {
            let expected: Vec<&str> = pushed
                .iter()
                .filter(|t| keep(t))
                .map(|t| t.0.as_str())
                .collect();
            let mut seen: Vec<String> = Vec::new();
            let mut page = 1;
            loop {
                let path = format!("?{query}&perPage={per_page}&page={page}");
                let body = list(&server, token, &path).await;
                assert_eq!(body["meta"]["total"], expected.len(), "{query} page {page}");
                let data = body["data"].as_array().unwrap();
                if data.is_empty() {
                    break;
                }
                seen.extend(
                    data.iter()
                        .map(|t| t["ticketId"].as_str().unwrap().to_owned()),
                );
                page += 1;
                assert!(page <= 20, "{query}: paging did not end");
            }
            assert_eq!(seen, expected, "{query}");
            assert_eq!(
                page,
                expected.len().div_ceil(per_page) + 1,
                "{query}: an empty page after the last"
            );
            let all = list(&server, token, &format!("?{query}&perPage=500")).await;
            assert_eq!(
                all["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|t| t["ticketId"].as_str().unwrap())
                    .collect::<Vec<_>>(),
                expected,
                "{query}, one page"
            );
        }
    }
}

async fn a_providers_total_counts_its_new_tickets_once_each(backend: Backend) {
    // On SQLite a provider's unfiltered total is an earlier count brought up to date by the
    // rows after it, or counted whole when those are more than the provider had
    // (tickets::store::list::provider_count); either way it is its tickets, each once.
    let (server, mine) = setup(backend).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let (_, theirs) = server.provider("other-provider", None).await;
    let mut pushed = push_seeds(&server, &mine, "m", 0..5).await;
    listed_are(&server, &mine, &pushed, "first count").await;
    // a few of the other provider's and two more of mine after it
    push_seeds(&server, &theirs, "o", 0..3).await;
    pushed.extend(push_seeds(&server, &mine, "m", 5..7).await);
    listed_are(&server, &mine, &pushed, "two added").await;
    assert_eq!(list(&server, &theirs, "").await["meta"]["total"], 3);
    // an update (another lot and plate) and a cancel keep the ticket's row: no new ticket
    let mut moved = seed_ticket("m-1");
    moved["parkingLotId"] = json!(14);
    moved["licenseNumber"] = json!("MOV111");
    push(&server, &mine, &moved).await;
    let cancel = json!({"eventType": "TicketCanceled", "ticketId": "m-2"});
    push(&server, &mine, &cancel).await;
    let after = listed_are(&server, &mine, &pushed, "updated and canceled").await;
    assert_eq!(after["data"][1]["licenseNumber"], "MOV111");
    assert_eq!(after["data"][2]["status"], "canceled");
    // more of the other provider's than I have, then one of mine: counted whole, then added
    push_seeds(&server, &theirs, "o", 3..13).await;
    listed_are(&server, &mine, &pushed, "others' many").await;
    pushed.extend(push_seeds(&server, &mine, "m", 7..8).await);
    let last = list(&server, &mine, "?perPage=3&page=3").await;
    assert_eq!(last["meta"]["total"], 8);
    assert_eq!(last["meta"]["lastPage"], 3);
    assert_eq!(ticket_ids(&last), ["m-6", "m-7"]);
    assert_eq!(list(&server, &theirs, "").await["meta"]["total"], 13);
}

/// PostgreSQL keeps each provider's count in each lot by triggers on the tickets (migration
/// postgres/0010): changes a statement appends, which the service folds into the counts every
/// second. A provider's total, in all lots and in one, stays its tickets through folds, two
/// folds at once, and writes by hand that move, delete or truncate tickets. (On SQLite the
/// count is kept in memory, and a delete by hand is seen at the next whole count: see
/// tickets::store::counts.)
mod postgres_kept_counts {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_providers_totals_follow_folds_and_writes_by_hand() {
        super::a_providers_totals_follow_folds_and_writes_by_hand().await
    }
}

async fn a_providers_totals_follow_folds_and_writes_by_hand() {
    use parkhub::tickets::store::counts::{FOLD_EVERY, fold_counts};
    let (server, mine) = setup(Backend::Postgres).await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let parkhub::store::Backend::Postgres(pool) = server.store.backend() else {
        unreachable!("a PostgreSQL server")
    };
    let (theirs_id, theirs) = server.provider("other-provider", None).await;
    let waiting = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM ticket_count_changes")
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let totals = || totals(&server, &mine, &theirs);
    let mut pushed = push_seeds(&server, &mine, "m", 0..6).await;
    push_seeds(&server, &theirs, "o", 0..2).await;
    listed_are(&server, &mine, &pushed, "pushed").await;
    assert_eq!(totals().await, [6, 6, 0, 2], "pushed");
    // the service folds the changes itself
    let deadline = std::time::Instant::now() + 5 * FOLD_EVERY;
    while waiting().await > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the changes were not folded"
        );
        tokio::time::sleep(FOLD_EVERY / 10).await;
    }
    assert_eq!(totals().await, [6, 6, 0, 2], "folded");
    // an update that moves a ticket to another lot moves its count; one that keeps the lot
    // changes none
    let mut moved = seed_ticket("m-1");
    moved["parkingLotId"] = json!(14);
    push(&server, &mine, &moved).await;
    let mut replated = seed_ticket("m-2");
    replated["licenseNumber"] = json!("MOV111");
    push(&server, &mine, &replated).await;
    assert_eq!(totals().await, [6, 5, 1, 2], "moved to lot 14");
    // by hand: one of mine becomes theirs, another is deleted
    sqlx::query("UPDATE tickets SET provider_id = $1 WHERE ticket_id = 'm-0'")
        .bind(theirs_id)
        .execute(pool)
        .await
        .unwrap();
    let by_hand = |sql: &'static str| async move {
        sqlx::query(sql).execute(pool).await.unwrap();
    };
    by_hand("DELETE FROM tickets WHERE ticket_id = 'm-5'").await;
    pushed.retain(|id| id != "m-0" && id != "m-5");
    listed_are(&server, &mine, &pushed, "moved and deleted by hand").await;
    assert_eq!(totals().await, [4, 3, 1, 3], "moved and deleted by hand");
    // two folds at once (three, when the service's own runs too): each change is added once;
    // a fold that finds another under way leaves the changes to it
    let (a, b) = tokio::join!(fold_counts(pool), fold_counts(pool));
    a.unwrap();
    b.unwrap();
    let deadline = std::time::Instant::now() + 5 * FOLD_EVERY;
    while waiting().await > 0 {
        assert!(std::time::Instant::now() < deadline, "not folded");
        fold_counts(pool).await.unwrap();
    }
    assert_eq!(totals().await, [4, 3, 1, 3], "folded twice at once");
    let counted: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT parking_lot_id, tickets FROM ticket_counts ORDER BY tickets, parking_lot_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(counted, [(14, 1), (12, 3), (12, 3)]);
    by_hand("TRUNCATE tickets").await;
    assert_eq!(totals().await, [0, 0, 0, 0], "truncated");
    push_seeds(&server, &mine, "n", 0..1).await;
    assert_eq!(totals().await, [1, 1, 0, 0], "after the truncate");
}

/// The totals of mine in all lots, mine in lot 12, mine in lot 14, and theirs.
async fn totals(server: &common::TestServer, mine: &str, theirs: &str) -> [i64; 4] {
    let mut totals = [0; 4];
    let asked = [
        (mine, ""),
        (mine, "?parkingLotId=12"),
        (mine, "?parkingLotId=14"),
        (theirs, ""),
    ];
    for (total, (token, query)) in totals.iter_mut().zip(asked) {
        *total = list(server, token, query).await["meta"]["total"]
            .as_i64()
            .unwrap();
    }
    totals
}

/// Pushes the seed ticket as `{prefix}-{i}` for each `i`; their ticket ids.
async fn push_seeds(
    server: &common::TestServer,
    token: &str,
    prefix: &str,
    each: std::ops::Range<usize>,
) -> Vec<String> {
    let mut ids = Vec::new();
    for i in each {
        let id = format!("{prefix}-{i}");
        push(server, token, &seed_ticket(&id)).await;
        ids.push(id);
    }
    ids
}

/// `token`'s tickets in one page, checked to be `pushed` in order with a total of as many.
async fn listed_are(
    server: &common::TestServer,
    token: &str,
    pushed: &[String],
    when: &str,
) -> Value {
    let page = list(server, token, "?perPage=500").await;
    assert_eq!(page["meta"]["total"], pushed.len(), "{when}");
    assert_eq!(ticket_ids(&page), pushed, "{when}");
    page
}
