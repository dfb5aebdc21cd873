//! A world for the permit tests: lots 12 and 14, a tenant, a weekday-morning definition, and
//! helpers to grant allocations and give permits; and the weekday-morning permit the rights
//! and car-park tests give to a plate.

use jiff::Zoned;
use jiff::civil::Date;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Backend, TestServer};

pub const TENANTS: &str = "/api/v1/admin/tenants";
pub const DEFINITIONS: &str = "/api/v1/admin/permit-definitions";
pub const ALLOCATIONS: &str = "/api/v1/admin/permit-allocations";
pub const PERMIT: &str = "/permit/v3/end_user_permit";
pub fn today() -> Date {
    Zoned::now().in_tz("Europe/Stockholm").unwrap().date()
}

/// A year relative to this one, so the tests keep meaning the same as time passes.
pub fn y(offset: i16) -> i16 {
    today().year() + offset
}

/// The end of the long allocations: the 13th of January, five years on (winter time).
pub fn end() -> String {
    format!("{}-01-13", y(5))
}

pub struct Setup {
    pub server: TestServer,
    pub tenant: String,
    pub tenant_id: i64,
    pub definition_id: i64,
}

pub async fn setup(backend: Backend) -> Setup {
    let server = TestServer::start(backend).await;
    server.lot(12, 123, "Europe/Stockholm").await;
    server.lot(14, 140, "Europe/Stockholm").await;
    let (status, tenant) = server
        .post(TENANTS, &server.operator, &json!({"name": "Acme AB"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    let (status, definition) = server
        .post(
            DEFINITIONS,
            &server.operator,
            &json!({"name": "Free parking from 5 to 9", "parkingLotIds": [12, 14],
                    "schedule": [{"days": ["mon", "tue", "wed", "thu", "fri"], "from": "05:00", "to": "09:00"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{definition}");
    Setup {
        tenant: tenant["token"].as_str().unwrap().to_owned(),
        tenant_id: tenant["id"].as_i64().unwrap(),
        definition_id: definition["id"].as_i64().unwrap(),
        server,
    }
}

impl Setup {
    pub async fn allocation(&self, permit_count: i64, from: &str, to: &str) -> String {
        let (status, body) = self
            .server
            .post(
                ALLOCATIONS,
                &self.server.operator,
                &json!({"tenantId": self.tenant_id, "permitDefinitionId": self.definition_id,
                        "parkingSpacesCount": 50, "permitCount": permit_count,
                        "validFrom": from, "validTo": to}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn give(&self, email: &str, allocation: &str, extra: Value) -> (StatusCode, Value) {
        let mut body = json!({"email": email, "permit_allocation_id": allocation});
        if let Value::Object(map) = extra {
            for (k, v) in map {
                body[k] = v;
            }
        }
        self.server.post(PERMIT, &self.tenant, &body).await
    }

    pub async fn issued(&self, allocation: &str) -> i64 {
        let (_, body) = self
            .server
            .get(
                &format!("{ALLOCATIONS}/{allocation}"),
                &self.server.operator,
            )
            .await;
        body["issuedPermitCount"].as_i64().unwrap()
    }
}

/// A tenant ("Acme") with a weekday 05:00-09:00 definition ("Mornings") for lot 12 and an
/// allocation of five permits from 2020 to 2030: the tenant's token and the allocation's id.
pub async fn mornings_at_lot_12(server: &TestServer) -> (String, String) {
    let (status, tenant) = server
        .post(TENANTS, &server.operator, &json!({"name": "Acme"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{tenant}");
    let (status, definition) = server
        .post(DEFINITIONS, &server.operator,
              &json!({"name": "Mornings", "parkingLotIds": [12], "schedule": [{"days": ["mon","tue","wed","thu","fri"], "from": "05:00", "to": "09:00"}]}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{definition}");
    let (status, allocation) = server
        .post(ALLOCATIONS, &server.operator,
              &json!({"tenantId": tenant["id"], "permitDefinitionId": definition["id"], "parkingSpacesCount": 5, "permitCount": 5, "validFrom": "2020-01-01", "validTo": "2030-12-31"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{allocation}");
    (
        tenant["token"].as_str().unwrap().to_owned(),
        allocation["id"].as_str().unwrap().to_owned(),
    )
}

/// A permit of `allocation` for `email` from 2020, and `plate` on that holder's profile: the
/// permit's id.
pub async fn permit_with_vehicle(
    server: &TestServer,
    tenant: &str,
    allocation: &str,
    email: &str,
    plate: &str,
) -> String {
    let (status, permit) = server
        .post(PERMIT, tenant, &json!({"email": email, "permit_allocation_id": allocation, "valid_from": "2020-01-01"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{permit}");
    for path in [
        format!("/api/v1/admin/end-users/{email}"),
        format!("/api/v1/admin/end-users/{email}/vehicles/{plate}"),
    ] {
        let (status, body) = server
            .call(Method::PUT, &path, Some(&server.operator), None)
            .await;
        assert!(status.is_success(), "{path}: {status} {body}");
    }
    permit["permit_id"].as_str().unwrap().to_owned()
}
