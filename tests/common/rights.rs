//! The world of the parking-rights tests: lots 12 and 14 (zone 123) and 20 (zone 200), a
//! provider, a gate, an officer and a tenant, and helpers to give and check rights.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Backend, TestServer};

pub struct World {
    pub server: TestServer,
    pub officer: String,
    pub provider: String,
    pub gate: String,
    pub tenant: String,
    pub allocation: String,
}

/// Lot 12 (zone 123, a car park 1/2), lot 14 (zone 123), lot 20 (zone 200); a provider, a gate,
/// an officer, and a tenant with a weekday 05:00-09:00 allocation for lot 12.
pub async fn world(backend: Backend, configure: impl FnOnce(&mut parkhub::ServeConfig)) -> World {
    let server = TestServer::start_with(backend, configure).await;
    server.carpark(12, 1, 2, 100).await;
    let (status, _) = server
        .patch(
            "/api/v1/admin/parking-lots/12",
            &server.operator,
            &json!({"zoneCode": 123}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    server.lot(14, 123, "Europe/Stockholm").await;
    server.lot(20, 200, "Europe/Stockholm").await;
    let (_, provider) = server.provider("easypark", None).await;
    let gate = server.equipment("gate", &[12]).await;
    let officer = server
        .token_for(parkhub::principals::Role::Enforcement, "officer-17")
        .await;
    let (_, tenant) = server
        .post(
            "/api/v1/admin/tenants",
            &server.operator,
            &json!({"name": "Acme"}),
        )
        .await;
    let (_, definition) = server
        .post("/api/v1/admin/permit-definitions", &server.operator,
              &json!({"name": "Mornings", "parkingLotIds": [12], "schedule": [{"days": ["mon","tue","wed","thu","fri"], "from": "05:00", "to": "09:00"}]}))
        .await;
    let (_, allocation) = server
        .post("/api/v1/admin/permit-allocations", &server.operator,
              &json!({"tenantId": tenant["id"], "permitDefinitionId": definition["id"], "parkingSpacesCount": 5, "permitCount": 5, "validFrom": "2020-01-01", "validTo": "2030-12-31"}))
        .await;
    World {
        officer,
        provider,
        gate,
        tenant: tenant["token"].as_str().unwrap().to_owned(),
        allocation: allocation["id"].as_str().unwrap().to_owned(),
        server,
    }
}

impl World {
    pub async fn ticket(&self, id: &str, plate: &str, lot: i64, start: &str, end: Option<&str>) {
        let body = json!({"eventType": "CreateOrUpdate", "ticketId": id, "parkingLotId": lot, "startDate": start, "endDate": end, "licenseNumber": plate});
        let (status, answer) = self
            .server
            .post("/api/v1/actions/tickets", &self.provider, &body)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    pub async fn permit_for(&self, email: &str, plate: &str) -> String {
        let (status, permit) = self
            .server
            .post("/permit/v3/end_user_permit", &self.tenant, &json!({"email": email, "permit_allocation_id": self.allocation, "valid_from": "2020-01-01"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{permit}");
        self.server
            .call(
                Method::PUT,
                &format!("/api/v1/admin/end-users/{email}"),
                Some(&self.server.operator),
                None,
            )
            .await;
        self.server
            .call(
                Method::PUT,
                &format!("/api/v1/admin/end-users/{email}/vehicles/{plate}"),
                Some(&self.server.operator),
                None,
            )
            .await;
        permit["permit_id"].as_str().unwrap().to_owned()
    }

    pub async fn check(&self, query: &str) -> Value {
        let (status, answer) = self
            .server
            .get(&format!("/api/v1/parking-rights?{query}"), &self.officer)
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        answer
    }
}
