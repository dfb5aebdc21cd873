//! The operator's set-up API: parking lots, providers and their tokens. Real HTTP, both backends.

mod common;

use common::{Backend, TestServer, assert_error, assert_invalid};
use reqwest::StatusCode;
use serde_json::json;

const LOTS: &str = "/api/v1/admin/parking-lots";
const PROVIDERS: &str = "/api/v1/admin/providers";

backend_tests!(
    lots_are_created_listed_and_fetched,
    lot_validation_and_duplicates,
    lots_are_updated_and_the_new_zone_renders_tickets,
    providers_are_created_with_a_token_shown_once,
    provider_validation_changes_nothing,
    provider_tokens_are_issued_listed_and_revoked,
);

async fn lots_are_created_listed_and_fetched(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (status, lot) = server
        .post(LOTS, &server.operator, &json!({"id": 12, "name": "Falun centrum", "zoneCode": 123, "timeZone": "Europe/Stockholm"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        lot,
        json!({"id": 12, "name": "Falun centrum", "zoneCode": 123, "timeZone": "Europe/Stockholm", "graceMinutes": 5})
    );
    let (status, other) = server
        .post(
            LOTS,
            &server.operator,
            &json!({"id": 3, "name": "Borlänge", "zoneCode": 7}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        other["timeZone"], "Europe/Stockholm",
        "the default time zone"
    );
    let (status, all) = server.get(LOTS, &server.operator).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        all.as_array()
            .unwrap()
            .iter()
            .map(|l| l["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [3, 12]
    );
    assert_eq!(
        server.get(&format!("{LOTS}/12"), &server.operator).await,
        (StatusCode::OK, lot)
    );
    for missing in ["99", "abc", "-1"] {
        let (status, body) = server
            .get(&format!("{LOTS}/{missing}"), &server.operator)
            .await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }
}

async fn lot_validation_and_duplicates(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.lot(12, 123, "Europe/Stockholm").await;
    let (status, body) = server
        .post(
            LOTS,
            &server.operator,
            &json!({"id": 12, "name": "again", "zoneCode": 1}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    assert!(
        body["message"].as_str().unwrap().contains("already exists"),
        "{body}"
    );
    for (field, body) in [
        ("id", json!({"name": "x", "zoneCode": 1})),
        ("id", json!({"id": 0, "name": "x", "zoneCode": 1})),
        (
            "id",
            json!({"id": 3_000_000_000i64, "name": "x", "zoneCode": 1}),
        ),
        ("name", json!({"id": 5, "zoneCode": 1})),
        ("name", json!({"id": 5, "name": "  ", "zoneCode": 1})),
        ("zoneCode", json!({"id": 5, "name": "x"})),
        ("zoneCode", json!({"id": 5, "name": "x", "zoneCode": "12"})),
        (
            "timeZone",
            json!({"id": 5, "name": "x", "zoneCode": 1, "timeZone": "Europe/Falun"}),
        ),
        (
            "timeZone",
            json!({"id": 5, "name": "x", "zoneCode": 1, "timeZone": 1}),
        ),
    ] {
        let (status, answer) = server.post(LOTS, &server.operator, &body).await;
        assert_invalid(status, &answer, field);
    }
    let (_, all) = server.get(LOTS, &server.operator).await;
    assert_eq!(
        all.as_array().unwrap().len(),
        1,
        "nothing invalid was stored: {all}"
    );
    assert_eq!(all[0]["name"], "Lot 12");
}

async fn lots_are_updated_and_the_new_zone_renders_tickets(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.lot(12, 123, "Europe/Stockholm").await;
    let (_, provider) = server.provider("p", None).await;
    let (status, _) = server
        .post(
            "/api/v1/actions/tickets",
            &provider,
            &json!({"eventType": "CreateOrUpdate", "ticketId": "t", "parkingLotId": 12,
                    "startDate": "2025-01-15T12:00:00Z", "licenseNumber": "ABC123"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, lot) = server
        .patch(
            &format!("{LOTS}/12"),
            &server.operator,
            &json!({"name": "Helsinki hamn", "timeZone": "Europe/Helsinki"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        lot,
        json!({"id": 12, "name": "Helsinki hamn", "zoneCode": 123, "timeZone": "Europe/Helsinki", "graceMinutes": 5})
    );
    assert_eq!(
        server.get(&format!("{LOTS}/12"), &server.operator).await.1,
        lot
    );
    let (_, page) = server.get("/api/v1/actions/tickets", &provider).await;
    assert_eq!(page["data"][0]["startDate"], "2025-01-15T14:00:00+02:00");

    let (status, body) = server
        .patch(&format!("{LOTS}/12"), &server.operator, &json!({"id": 13}))
        .await;
    assert_invalid(status, &body, "id");
    let (status, body) = server
        .patch(
            &format!("{LOTS}/12"),
            &server.operator,
            &json!({"timeZone": "Nowhere/City", "name": "changed"}),
        )
        .await;
    assert_invalid(status, &body, "timeZone");
    assert_eq!(
        server.get(&format!("{LOTS}/12"), &server.operator).await.1,
        lot,
        "a rejected update changes nothing"
    );
    let (status, body) = server
        .patch(
            &format!("{LOTS}/404"),
            &server.operator,
            &json!({"name": "x"}),
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

async fn providers_are_created_with_a_token_shown_once(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.lot(12, 123, "Europe/Stockholm").await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let (status, created) = server
        .post(
            PROVIDERS,
            &server.operator,
            &json!({"name": "easypark", "parkingLotIds": [14, 12, 14]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(created["name"], "easypark");
    assert_eq!(created["parkingLotIds"], json!([12, 14]));
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("phk_") && token.len() >= 47, "{token}");
    let id = created["id"].as_i64().unwrap();
    // the token works as a provider token
    assert_eq!(
        server.get("/api/v1/actions/tickets", token).await.0,
        StatusCode::OK
    );

    let (status, everywhere) = server
        .post(PROVIDERS, &server.operator, &json!({"name": "parkster"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        everywhere["parkingLotIds"],
        json!(null),
        "no list: every lot"
    );

    let (status, listed) = server.get(PROVIDERS, &server.operator).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!([
            {"id": id, "name": "easypark", "parkingLotIds": [12, 14]},
            {"id": everywhere["id"], "name": "parkster", "parkingLotIds": null},
        ])
    );
    assert!(
        !listed.to_string().contains("phk_"),
        "a listing never shows a token"
    );
    let (status, one) = server
        .get(&format!("{PROVIDERS}/{id}"), &server.operator)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one, listed[0]);
    let (status, body) = server
        .get(&format!("{PROVIDERS}/99999"), &server.operator)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    // the operator is a principal too, but not a provider
    let (status, body) = server
        .get(&format!("{PROVIDERS}/1"), &server.operator)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
}

async fn provider_validation_changes_nothing(backend: Backend) {
    let server = TestServer::start(backend).await;
    server.lot(12, 123, "Europe/Stockholm").await;
    server.provider("easypark", None).await;
    let (status, body) = server
        .post(PROVIDERS, &server.operator, &json!({"name": "easypark"}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);
    for (field, body) in [
        ("name", json!({})),
        ("name", json!({"name": ""})),
        ("name", json!({"name": "x".repeat(101)})),
        (
            "parkingLotIds",
            json!({"name": "new", "parkingLotIds": [12, 999]}),
        ),
        (
            "parkingLotIds",
            json!({"name": "new", "parkingLotIds": "12"}),
        ),
    ] {
        let (status, answer) = server.post(PROVIDERS, &server.operator, &body).await;
        assert_invalid(status, &answer, field);
    }
    let (_, listed) = server.get(PROVIDERS, &server.operator).await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
}

async fn provider_tokens_are_issued_listed_and_revoked(backend: Backend) {
    let server = TestServer::start(backend).await;
    let (id, first) = server.provider("easypark", None).await;
    let (other_id, other_token) = server.provider("other", None).await;
    let (status, issued) = server
        .post(
            &format!("{PROVIDERS}/{id}/tokens"),
            &server.operator,
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let second = issued["token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    assert_eq!(issued["principalId"], id);
    assert_eq!(
        server.get("/api/v1/actions/tickets", &second).await.0,
        StatusCode::OK
    );

    let (status, tokens) = server
        .get(&format!("{PROVIDERS}/{id}/tokens"), &server.operator)
        .await;
    assert_eq!(status, StatusCode::OK);
    let tokens = tokens.as_array().unwrap().clone();
    assert_eq!(tokens.len(), 2);
    assert!(
        !serde_json::to_string(&tokens)
            .unwrap()
            .contains(&first[8..]),
        "secrets never listed"
    );
    assert!(
        tokens
            .iter()
            .all(|t| t["revokedAt"].is_null() && t["hint"].as_str().unwrap().starts_with("phk_"))
    );

    // revoking the first leaves the second working
    let first_id = tokens[0]["id"].as_i64().unwrap();
    let (status, _) = server
        .delete(
            &format!("{PROVIDERS}/{id}/tokens/{first_id}"),
            &server.operator,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        server.get("/api/v1/actions/tickets", &first).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        server.get("/api/v1/actions/tickets", &second).await.0,
        StatusCode::OK
    );
    let (_, tokens) = server
        .get(&format!("{PROVIDERS}/{id}/tokens"), &server.operator)
        .await;
    assert!(tokens[0]["revokedAt"].is_string(), "{tokens}");

    // another provider's token cannot be revoked through this provider, nor an absent one
    let (_, theirs) = server
        .get(&format!("{PROVIDERS}/{other_id}/tokens"), &server.operator)
        .await;
    let their_id = theirs[0]["id"].as_i64().unwrap();
    for path in [
        format!("{PROVIDERS}/{id}/tokens/{their_id}"),
        format!("{PROVIDERS}/{id}/tokens/999999"),
        format!("{PROVIDERS}/{id}/tokens/abc"),
        format!("{PROVIDERS}/999999/tokens/{first_id}"),
    ] {
        let (status, body) = server.delete(&path, &server.operator).await;
        assert_error(status, &body, StatusCode::NOT_FOUND);
    }
    assert_eq!(
        server.get("/api/v1/actions/tickets", &other_token).await.0,
        StatusCode::OK
    );
}
