//! The operator's side of permits through real HTTP on both backends: tenants, definitions,
//! allocations and end-user profiles.

mod common;

use common::permits::{ALLOCATIONS, DEFINITIONS, TENANTS, end, setup, today, y};
use common::{Backend, assert_error, assert_invalid};
use reqwest::StatusCode;
use serde_json::json;

backend_tests!(
    tenants_are_created_with_a_token_and_managed,
    definitions_take_lots_time_zone_and_schedule,
    allocations_count_live_permits_and_never_go_below,
    end_user_profiles,
);

async fn tenants_are_created_with_a_token_and_managed(backend: Backend) {
    let s = setup(backend).await;
    let server = &s.server;
    let (status, listed) = server.get(TENANTS, &server.operator).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed, json!([{"id": s.tenant_id, "name": "Acme AB"}]));
    assert_eq!(
        server
            .get(&format!("{TENANTS}/{}", s.tenant_id), &server.operator)
            .await
            .1,
        listed[0]
    );
    let (status, body) = server
        .post(TENANTS, &server.operator, &json!({"name": "Acme AB"}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let (status, body) = server
        .post(TENANTS, &server.operator, &json!({"name": " "}))
        .await;
    assert_invalid(status, &body, "name");
    // the tenant's token works on the tenant API; a second one can be issued and revoked
    assert_eq!(
        server
            .get("/permit/v3/tenant_permit_allocations", &s.tenant)
            .await,
        (StatusCode::OK, json!([]))
    );
    let (status, issued) = server
        .post(
            &format!("{TENANTS}/{}/tokens", s.tenant_id),
            &server.operator,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let second = issued["token"].as_str().unwrap();
    assert_eq!(
        server
            .get("/permit/v3/tenant_permit_allocations", second)
            .await
            .0,
        StatusCode::OK
    );
    let (_, tokens) = server
        .get(
            &format!("{TENANTS}/{}/tokens", s.tenant_id),
            &server.operator,
        )
        .await;
    assert_eq!(tokens.as_array().unwrap().len(), 2);
    let id = issued["id"].as_i64().unwrap();
    let (status, _) = server
        .delete(
            &format!("{TENANTS}/{}/tokens/{id}", s.tenant_id),
            &server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server
            .get("/permit/v3/tenant_permit_allocations", second)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server
            .get("/permit/v3/tenant_permit_allocations", &s.tenant)
            .await
            .0,
        StatusCode::OK
    );
}

async fn definitions_take_lots_time_zone_and_schedule(backend: Backend) {
    let s = setup(backend).await;
    let server = &s.server;
    server.lot(30, 300, "Europe/Helsinki").await;
    let (status, nights) = server
        .post(
            DEFINITIONS,
            &server.operator,
            &json!({"name": "Nights", "parkingLotIds": [30, 12],
              "schedule": [{"days": ["fri", "sat"], "from": "22:00", "to": "06:00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{nights}");
    assert_eq!(
        nights["timeZone"], "Europe/Helsinki",
        "defaults to the first lot's zone"
    );
    assert_eq!(nights["parkingLotIds"], json!([12, 30]));
    assert_eq!(
        nights["schedule"],
        json!([{"days": ["fri", "sat"], "from": "22:00", "to": "06:00"}])
    );
    let (status, all_day) = server
        .post(
            DEFINITIONS,
            &server.operator,
            &json!({"name": "Always", "parkingLotIds": [12], "timeZone": "Europe/Oslo"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(all_day["schedule"], json!([]));
    assert_eq!(all_day["timeZone"], "Europe/Oslo");
    let (_, listed) = server.get(DEFINITIONS, &server.operator).await;
    assert_eq!(listed.as_array().unwrap().len(), 3);
    assert_eq!(
        server
            .get(&format!("{DEFINITIONS}/{}", nights["id"]), &server.operator)
            .await
            .1,
        nights
    );
    for (field, body) in [
        (
            "parkingLotIds",
            json!({"name": "x", "parkingLotIds": [12, 99]}),
        ),
        ("parkingLotIds", json!({"name": "x", "parkingLotIds": []})),
        ("parkingLotIds", json!({"name": "x"})),
        ("name", json!({"parkingLotIds": [12]})),
        (
            "timeZone",
            json!({"name": "x", "parkingLotIds": [12], "timeZone": "Mars/Base"}),
        ),
        (
            "schedule[0].days",
            json!({"name": "x", "parkingLotIds": [12], "schedule": [{"days": ["monday"], "from": "05:00", "to": "09:00"}]}),
        ),
        (
            "schedule[0].from",
            json!({"name": "x", "parkingLotIds": [12], "schedule": [{"days": ["mon"], "from": "5", "to": "09:00"}]}),
        ),
        (
            "schedule[0].to",
            json!({"name": "x", "parkingLotIds": [12], "schedule": [{"days": ["mon"], "from": "05:00", "to": "24:30"}]}),
        ),
    ] {
        let (status, answer) = server.post(DEFINITIONS, &server.operator, &body).await;
        assert_invalid(status, &answer, field);
    }
    let (_, listed) = server.get(DEFINITIONS, &server.operator).await;
    assert_eq!(
        listed.as_array().unwrap().len(),
        3,
        "nothing invalid was stored"
    );
    let (status, body) = server
        .get(&format!("{DEFINITIONS}/999"), &server.operator)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

async fn allocations_count_live_permits_and_never_go_below(backend: Backend) {
    let s = setup(backend).await;
    let server = &s.server;
    let id = s.allocation(25, "2018-06-19", &end()).await;
    let (status, allocation) = server
        .get(&format!("{ALLOCATIONS}/{id}"), &server.operator)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        allocation,
        json!({"id": id, "tenantId": s.tenant_id, "permitDefinitionId": s.definition_id,
               "permitDefinitionName": "Free parking from 5 to 9", "parkingSpacesCount": 50,
               "permitCount": 25, "issuedPermitCount": 0, "validFrom": "2018-06-19", "validTo": end()})
    );
    for n in 0..3 {
        assert_eq!(
            s.give(&format!("p{n}@example.com"), &id, json!({})).await.0,
            StatusCode::CREATED
        );
    }
    assert_eq!(s.issued(&id).await, 3);
    let (_, listed) = server
        .get(
            &format!("{ALLOCATIONS}?tenantId={}", s.tenant_id),
            &server.operator,
        )
        .await;
    assert_eq!(listed[0]["issuedPermitCount"], 3);
    assert_eq!(
        server
            .get(&format!("{ALLOCATIONS}?tenantId=999"), &server.operator)
            .await
            .1,
        json!([])
    );

    let (status, body) = server
        .patch(
            &format!("{ALLOCATIONS}/{id}"),
            &server.operator,
            &json!({"permitCount": 2}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert_eq!(body["error_id"], "allocation_below_issued");
    let (status, body) = server
        .patch(
            &format!("{ALLOCATIONS}/{id}"),
            &server.operator,
            &json!({"validTo": today().to_string()}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    let (status, changed) = server
        .patch(&format!("{ALLOCATIONS}/{id}"), &server.operator, &json!({"permitCount": 3, "parkingSpacesCount": 10, "validTo": format!("{}-12-31", y(10))}))
        .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(
        (
            changed["permitCount"].as_i64(),
            changed["parkingSpacesCount"].as_i64()
        ),
        (Some(3), Some(10))
    );
    assert_eq!(changed["validTo"], format!("{}-12-31", y(10)));
    let (status, body) = s.give("p9@example.com", &id, json!({})).await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert_eq!(body["error_id"], "permit_quota_exceeded");

    for (field, body) in [
        (
            "tenantId",
            json!({"permitDefinitionId": s.definition_id, "parkingSpacesCount": 1, "permitCount": 1, "validFrom": "2025-01-01", "validTo": "2025-12-31"}),
        ),
        (
            "tenantId",
            json!({"tenantId": 999, "permitDefinitionId": s.definition_id, "parkingSpacesCount": 1, "permitCount": 1, "validFrom": "2025-01-01", "validTo": "2025-12-31"}),
        ),
        (
            "permitDefinitionId",
            json!({"tenantId": s.tenant_id, "permitDefinitionId": 999, "parkingSpacesCount": 1, "permitCount": 1, "validFrom": "2025-01-01", "validTo": "2025-12-31"}),
        ),
        (
            "permitCount",
            json!({"tenantId": s.tenant_id, "permitDefinitionId": s.definition_id, "parkingSpacesCount": 1, "permitCount": -1, "validFrom": "2025-01-01", "validTo": "2025-12-31"}),
        ),
        (
            "validFrom",
            json!({"tenantId": s.tenant_id, "permitDefinitionId": s.definition_id, "parkingSpacesCount": 1, "permitCount": 1, "validFrom": "2025-02-30", "validTo": "2025-12-31"}),
        ),
        (
            "validTo",
            json!({"tenantId": s.tenant_id, "permitDefinitionId": s.definition_id, "parkingSpacesCount": 1, "permitCount": 1, "validFrom": "2025-01-01", "validTo": "2024-12-31"}),
        ),
    ] {
        let (status, answer) = server.post(ALLOCATIONS, &server.operator, &body).await;
        assert_invalid(status, &answer, field);
    }
    // the operator is not a tenant: an allocation cannot be granted to it
    let (status, answer) = server
        .post(ALLOCATIONS, &server.operator, &json!({"tenantId": 1, "permitDefinitionId": s.definition_id, "parkingSpacesCount": 1, "permitCount": 1, "validFrom": "2025-01-01", "validTo": "2025-12-31"}))
        .await;
    assert_invalid(status, &answer, "tenantId");
    assert_eq!(
        server
            .get(ALLOCATIONS, &server.operator)
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let (status, body) = server
        .get(&format!("{ALLOCATIONS}/nope"), &server.operator)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

async fn end_user_profiles(backend: Backend) {
    let s = setup(backend).await;
    let server = &s.server;
    let id = s.allocation(10, "2018-06-19", &end()).await;
    let put = |path: String| async move {
        server
            .call(reqwest::Method::PUT, &path, Some(&server.operator), None)
            .await
    };
    let (status, created) = put("/api/v1/admin/end-users/Anna@Example.se".into()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["email"], "anna@example.se");
    assert_eq!(created["vehicles"], json!([]));
    let (status, again) = put("/api/v1/admin/end-users/anna@example.se".into()).await;
    assert_eq!((status, again), (StatusCode::OK, created.clone()));
    let (status, with_car) =
        put("/api/v1/admin/end-users/anna@example.se/vehicles/%C3%A5bc-123".into()).await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(with_car["vehicles"][0]["licenseNumber"], "åbc-123");
    assert_eq!(with_car["vehicles"][0]["normalized"], "ÅBC123");
    let (status, same_car) =
        put("/api/v1/admin/end-users/anna@example.se/vehicles/%C3%85BC123".into()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the same vehicle in another spelling"
    );
    assert_eq!(same_car["vehicles"].as_array().unwrap().len(), 1);
    s.give("ANNA@example.se", &id, json!({})).await;
    let (status, profile) = server
        .get("/api/v1/admin/end-users/anna@EXAMPLE.se", &server.operator)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(profile["permits"].as_array().unwrap().len(), 1);
    assert_eq!(profile["permits"][0]["activated"], true);

    let (status, body) = put("/api/v1/admin/end-users/not-an-email".into()).await;
    assert_invalid(status, &body, "email");
    let (status, body) =
        put("/api/v1/admin/end-users/nobody@example.se/vehicles/ABC123".into()).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = put("/api/v1/admin/end-users/anna@example.se/vehicles/---".into()).await;
    assert_invalid(status, &body, "licenseNumber");
    let (status, body) = server
        .get(
            "/api/v1/admin/end-users/nobody@example.se",
            &server.operator,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = server
        .delete(
            "/api/v1/admin/end-users/anna@example.se/vehicles/XYZ999",
            &server.operator,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // tenants and providers may not manage end users
    let (status, body) = server
        .call(
            reqwest::Method::PUT,
            "/api/v1/admin/end-users/x@example.se",
            Some(&s.tenant),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
}
