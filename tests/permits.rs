//! The tenant side of permits through real HTTP on both backends: the seed's API, dates,
//! quotas under concurrency, activation and isolation.

mod common;

use common::permits::{PERMIT, TENANTS, end, setup, today, y};
use common::{Backend, assert_error, assert_invalid};
use jiff::ToSpan;
use reqwest::StatusCode;
use serde_json::{Value, json};

backend_tests!(
    the_tenant_api_speaks_the_seed,
    permit_dates_default_and_must_fit_the_allocation,
    permit_updates_follow_the_seed_rules,
    deleted_and_ended_permits_stop_counting,
    quota_holds_under_100_concurrent_requests,
    one_permit_per_email_and_allocation_at_a_time,
    activation_follows_the_end_users_vehicles,
    tenants_only_see_their_own,
);

async fn the_tenant_api_speaks_the_seed(backend: Backend) {
    let s = setup(backend).await;
    let id = s.allocation(25, "2018-06-19", &end()).await;
    let (status, allocations) = s
        .server
        .get("/permit/v3/tenant_permit_allocations", &s.tenant)
        .await;
    assert_eq!(status, StatusCode::OK);
    // summer time in June, winter time in January: each day with its own offset
    assert_eq!(
        allocations,
        json!([{"permit_allocation_id": id, "permit_definition_name": "Free parking from 5 to 9",
                "parking_spaces_count": 50, "permit_count": 25, "issued_permit_count": 0,
                "valid_from": "2018-06-19T00:00:00+0200", "valid_to": format!("{}T23:59:59+0100", end())}])
    );
    let (status, permit) = s
        .give(
            "Client@AutoPay.io",
            &id,
            json!({"valid_from": format!("{}-12-18", y(1)), "valid_to": format!("{}-06-18", y(2))}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{permit}");
    let permit_id = permit["permit_id"].as_str().unwrap().to_owned();
    assert_eq!(
        permit,
        json!({"permit_id": permit_id, "email": "client@autopay.io", "permit_allocation_id": id,
               "permit_definition_name": "Free parking from 5 to 9",
               "valid_from": format!("{}-12-18T00:00:00+0100", y(1)), "valid_to": format!("{}-06-18T23:59:59+0200", y(2)),
               "activated": false, "activated_at": null})
    );
    assert_eq!(
        s.server
            .get(&format!("{PERMIT}/{permit_id}"), &s.tenant)
            .await,
        (StatusCode::OK, permit.clone())
    );
    let (status, issued) = s
        .server
        .get("/permit/v3/tenant_issued_permits", &s.tenant)
        .await;
    assert_eq!((status, issued), (StatusCode::OK, json!([permit.clone()])));
    let (status, issued) = s
        .server
        .get(
            &format!("/permit/v3/tenant_issued_permits?permit_allocation_id={id}"),
            &s.tenant,
        )
        .await;
    assert_eq!((status, issued), (StatusCode::OK, json!([permit])));
    let (_, allocations) = s
        .server
        .get("/permit/v3/tenant_permit_allocations", &s.tenant)
        .await;
    assert_eq!(allocations[0]["issued_permit_count"], 1);
    // errors carry a stable error_id
    let (status, body) = s
        .server
        .get(&format!("{PERMIT}/not-a-permit"), &s.tenant)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(body["error_id"], "not_found");
    let (status, body) = s.give("not-an-email", &id, json!({})).await;
    assert_invalid(status, &body, "email");
    assert_eq!(body["error_id"], "validation_failed");
    let (status, body) = s
        .server
        .post(PERMIT, &s.tenant, &json!({"email": "a@example.com"}))
        .await;
    assert_invalid(status, &body, "permit_allocation_id");
}

async fn permit_dates_default_and_must_fit_the_allocation(backend: Backend) {
    let s = setup(backend).await;
    let current = s.allocation(25, "2018-06-19", &end()).await;
    let (status, permit) = s.give("a@example.com", &current, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{permit}");
    assert!(
        permit["valid_from"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}T00:00:00+0", today())),
        "{permit}"
    );
    assert_eq!(permit["valid_to"], format!("{}T23:59:59+0100", end()));

    let future = s
        .allocation(5, &format!("{}-03-01", y(4)), &format!("{}-08-31", y(4)))
        .await;
    let (status, permit) = s.give("a@example.com", &future, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{permit}");
    assert_eq!(
        permit["valid_from"],
        format!("{}-03-01T00:00:00+0100", y(4))
    );
    assert_eq!(permit["valid_to"], format!("{}-08-31T23:59:59+0200", y(4)));

    // date-times are read as the local date in the definition's zone
    let (status, permit) = s
        .give("b@example.com", &current, json!({"valid_from": format!("{}-01-31T23:30:00Z", y(1)), "valid_to": format!("{}-02-10T12:00:00+01:00", y(1))}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{permit}");
    assert_eq!(
        permit["valid_from"],
        format!("{}-02-01T00:00:00+0100", y(1))
    );
    assert_eq!(permit["valid_to"], format!("{}-02-10T23:59:59+0100", y(1)));

    for (field, extra) in [
        ("valid_from", json!({"valid_from": "2018-06-18"})),
        ("valid_to", json!({"valid_to": format!("{}-01-14", y(5))})),
        (
            "valid_to",
            json!({"valid_from": format!("{}-05-10", y(1)), "valid_to": format!("{}-05-09", y(1))}),
        ),
        ("valid_from", json!({"valid_from": "10/05/2026"})),
    ] {
        let (status, body) = s.give("c@example.com", &current, extra).await;
        assert_invalid(status, &body, field);
    }
    assert_eq!(s.issued(&current).await, 2, "nothing invalid was stored");
}

async fn permit_updates_follow_the_seed_rules(backend: Backend) {
    let s = setup(backend).await;
    let id = s.allocation(25, "2018-06-19", &end()).await;
    let (_, permit) = s
        .give(
            "a@example.com",
            &id,
            json!({"valid_from": "2020-01-01", "valid_to": format!("{}-12-31", y(1))}),
        )
        .await;
    let url = format!("{PERMIT}/{}", permit["permit_id"].as_str().unwrap());
    // the same first day as before, with a new last day
    let (status, same) = s
        .server
        .call(
            reqwest::Method::PUT,
            &url,
            Some(&s.tenant),
            Some(&json!({"valid_from": "2020-01-01", "valid_to": format!("{}-06-30", y(2))})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{same}");
    assert_eq!(same["valid_from"], "2020-01-01T00:00:00+0100");
    assert_eq!(same["valid_to"], format!("{}-06-30T23:59:59+0200", y(2)));
    // absent valid_from: unchanged
    let (status, kept) = s
        .server
        .call(
            reqwest::Method::PUT,
            &url,
            Some(&s.tenant),
            Some(&json!({"valid_to": format!("{}-07-01", y(2))})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(kept["valid_from"], same["valid_from"]);
    // another day in the past: 422; today or later: fine
    let yesterday = today().checked_sub(1.day()).unwrap();
    let (status, body) = s
        .server
        .call(
            reqwest::Method::PUT,
            &url,
            Some(&s.tenant),
            Some(&json!({"valid_from": yesterday.to_string()})),
        )
        .await;
    assert_invalid(status, &body, "valid_from");
    let (status, moved) = s
        .server
        .call(
            reqwest::Method::PUT,
            &url,
            Some(&s.tenant),
            Some(&json!({"valid_from": today().to_string()})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert!(
        moved["valid_from"]
            .as_str()
            .unwrap()
            .starts_with(&today().to_string())
    );
    let (status, body) = s
        .server
        .call(
            reqwest::Method::PUT,
            &url,
            Some(&s.tenant),
            Some(&json!({"valid_to": format!("{}-01-01", y(6))})),
        )
        .await;
    assert_invalid(status, &body, "valid_to");
    assert_eq!(
        s.server.get(&url, &s.tenant).await.1,
        moved,
        "a rejected update changes nothing"
    );
}

async fn deleted_and_ended_permits_stop_counting(backend: Backend) {
    let s = setup(backend).await;
    let id = s.allocation(1, "2018-06-19", &end()).await;
    // a permit whose days are over does not count
    let (status, old) = s
        .give(
            "old@example.com",
            &id,
            json!({"valid_from": "2019-01-01", "valid_to": "2019-01-31"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{old}");
    assert_eq!(s.issued(&id).await, 0);
    let (status, current) = s.give("new@example.com", &id, json!({})).await;
    assert_eq!(status, StatusCode::CREATED, "{current}");
    assert_eq!(s.issued(&id).await, 1);
    let (status, body) = s.give("third@example.com", &id, json!({})).await;
    assert_eq!(body["error_id"], "permit_quota_exceeded", "{body}");
    assert_error(status, &body, StatusCode::CONFLICT);
    assert!(
        body["message"].as_str().unwrap().contains("1 of 1"),
        "{body}"
    );
    // an ended permit cannot be brought back while the quota is full
    let old_url = format!("{PERMIT}/{}", old["permit_id"].as_str().unwrap());
    let (status, body) = s
        .server
        .call(
            reqwest::Method::PUT,
            &old_url,
            Some(&s.tenant),
            Some(&json!({"valid_to": format!("{}-01-01", y(1))})),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    // deleting frees the place at once
    let url = format!("{PERMIT}/{}", current["permit_id"].as_str().unwrap());
    let (status, body) = s.server.delete(&url, &s.tenant).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    assert_eq!(s.issued(&id).await, 0);
    let (status, body) = s.server.get(&url, &s.tenant).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = s.server.delete(&url, &s.tenant).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(
        s.give("third@example.com", &id, json!({})).await.0,
        StatusCode::CREATED
    );
}

async fn quota_holds_under_100_concurrent_requests(backend: Backend) {
    let s = setup(backend).await;
    let id = s.allocation(10, "2018-06-19", &end()).await;
    let mut tasks = Vec::new();
    for n in 0..100 {
        let client = s.server.client.clone();
        let url = s.server.url(PERMIT);
        let token = s.tenant.clone();
        let body = json!({"email": format!("racer{n}@example.com"), "permit_allocation_id": id});
        tasks.push(tokio::spawn(async move {
            let response = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("answer");
            let status = response.status();
            let body: Value = response.json().await.expect("JSON");
            (status, body)
        }));
    }
    let mut created = 0;
    let mut refused = 0;
    for task in tasks {
        let (status, body) = task.await.unwrap();
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::CONFLICT if body["error_id"] == "permit_quota_exceeded" => refused += 1,
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!((created, refused), (10, 90));
    assert_eq!(s.issued(&id).await, 10);
    let (_, permits) = s
        .server
        .get("/permit/v3/tenant_issued_permits", &s.tenant)
        .await;
    assert_eq!(permits.as_array().unwrap().len(), 10);
}

async fn one_permit_per_email_and_allocation_at_a_time(backend: Backend) {
    let s = setup(backend).await;
    let id = s.allocation(10, "2018-06-19", &end()).await;
    let (status, _) = s
        .give(
            "same@example.com",
            &id,
            json!({"valid_from": format!("{}-01-01", y(1)), "valid_to": format!("{}-06-30", y(1))}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = s
        .give(
            "SAME@example.com",
            &id,
            json!({"valid_from": format!("{}-06-30", y(1)), "valid_to": format!("{}-12-31", y(1))}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert_eq!(body["error_id"], "permit_overlap");
    let (status, later) = s
        .give(
            "same@example.com",
            &id,
            json!({"valid_from": format!("{}-07-01", y(1)), "valid_to": format!("{}-12-31", y(1))}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    // moving the later one onto the first is an overlap too
    let url = format!("{PERMIT}/{}", later["permit_id"].as_str().unwrap());
    let (status, body) = s
        .server
        .call(
            reqwest::Method::PUT,
            &url,
            Some(&s.tenant),
            Some(&json!({"valid_from": format!("{}-06-01", y(1))})),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert_eq!(body["error_id"], "permit_overlap");
    // another allocation is another matter
    let other = s.allocation(10, "2018-06-19", &end()).await;
    assert_eq!(
        s.give(
            "same@example.com",
            &other,
            json!({"valid_from": format!("{}-01-01", y(1)), "valid_to": format!("{}-06-30", y(1))})
        )
        .await
        .0,
        StatusCode::CREATED
    );
}

async fn activation_follows_the_end_users_vehicles(backend: Backend) {
    let s = setup(backend).await;
    let server = &s.server;
    let id = s.allocation(10, "2018-06-19", &end()).await;
    let (_, permit) = s.give("driver@example.com", &id, json!({})).await;
    assert_eq!(
        (permit["activated"].clone(), permit["activated_at"].clone()),
        (json!(false), Value::Null)
    );
    let url = format!("{PERMIT}/{}", permit["permit_id"].as_str().unwrap());
    // a profile without a vehicle does not activate
    assert_eq!(
        server
            .call(
                reqwest::Method::PUT,
                "/api/v1/admin/end-users/Driver@Example.com",
                Some(&server.operator),
                None
            )
            .await
            .0,
        StatusCode::CREATED
    );
    assert_eq!(server.get(&url, &s.tenant).await.1["activated"], false);
    // the first vehicle does
    let before = jiff::Timestamp::now();
    let (status, _) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/admin/end-users/driver@example.com/vehicles/abc%20123",
            Some(&server.operator),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (_, active) = server.get(&url, &s.tenant).await;
    assert_eq!(active["activated"], true);
    let activated_at: jiff::Timestamp = active["activated_at"]
        .as_str()
        .unwrap()
        .replace("+0100", "+01:00")
        .replace("+0200", "+02:00")
        .parse()
        .unwrap();
    assert!(
        activated_at >= before.checked_sub(1.second()).unwrap()
            && activated_at <= jiff::Timestamp::now(),
        "{active}"
    );
    // a permit given when the profile has a vehicle is active from its creation
    let (_, second) = s
        .give(
            "driver@example.com",
            &s.allocation(1, "2018-06-19", &end()).await,
            json!({}),
        )
        .await;
    assert_eq!(second["activated"], true);
    assert!(second["activated_at"].is_string());
    // without vehicles it is no longer active, but it was activated then
    let (status, _) = server
        .delete(
            "/api/v1/admin/end-users/driver@example.com/vehicles/ABC-123",
            &server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, inactive) = server.get(&url, &s.tenant).await;
    assert_eq!(inactive["activated"], false);
    assert_eq!(inactive["activated_at"], active["activated_at"]);
}

async fn tenants_only_see_their_own(backend: Backend) {
    let s = setup(backend).await;
    let server = &s.server;
    let mine = s.allocation(10, "2018-06-19", &end()).await;
    let (_, permit) = s.give("a@example.com", &mine, json!({})).await;
    let permit_url = format!("{PERMIT}/{}", permit["permit_id"].as_str().unwrap());
    let (_, other) = server
        .post(TENANTS, &server.operator, &json!({"name": "Other AB"}))
        .await;
    let theirs = other["token"].as_str().unwrap();

    assert_eq!(
        server
            .get("/permit/v3/tenant_permit_allocations", theirs)
            .await
            .1,
        json!([])
    );
    assert_eq!(
        server
            .get("/permit/v3/tenant_issued_permits", theirs)
            .await
            .1,
        json!([])
    );
    let absent = format!("{PERMIT}/00000000-0000-4000-8000-000000000000");
    let mut answers = Vec::new();
    for url in [&permit_url, &absent] {
        let (status, body) = server.get(url, theirs).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        answers.push(body["error_id"].clone());
        let (status, body) = server
            .call(
                reqwest::Method::PUT,
                url,
                Some(theirs),
                Some(&json!({"valid_to": format!("{}-01-01", y(1))})),
            )
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
        let (status, body) = server.delete(url, theirs).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        answers[0], answers[1],
        "another tenant's permit looks exactly like an absent one"
    );
    let (status, body) = server
        .post(
            PERMIT,
            theirs,
            &json!({"email": "x@example.com", "permit_allocation_id": mine}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server
        .get(
            &format!("/permit/v3/tenant_issued_permits?permit_allocation_id={mine}"),
            theirs,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // nothing changed for the owner
    let (status, still) = server.get(&permit_url, &s.tenant).await;
    assert_eq!((status, still), (StatusCode::OK, permit));
    assert_eq!(s.issued(&mine).await, 1);
    // other roles get 403 on the tenant API
    let (_, provider) = server.provider("p", None).await;
    for token in [&server.operator, &provider] {
        let (status, body) = server
            .get("/permit/v3/tenant_permit_allocations", token)
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
        let (status, body) = server
            .post(
                PERMIT,
                token,
                &json!({"email": "x@example.com", "permit_allocation_id": mine}),
            )
            .await;
        assert_error(status, &body, StatusCode::FORBIDDEN);
    }
}
