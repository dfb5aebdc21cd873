//! The world of the parking-rights tests: lots 12 and 14 (zone 123) and 20 (zone 200), a
//! provider, a gate, an officer and a tenant, and helpers to give and check rights.

use reqwest::StatusCode;
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
    let (tenant, allocation) = super::permits::mornings_at_lot_12(&server).await;
    World {
        officer,
        provider,
        gate,
        tenant,
        allocation,
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
        super::permits::permit_with_vehicle(
            &self.server,
            &self.tenant,
            &self.allocation,
            email,
            plate,
        )
        .await
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
