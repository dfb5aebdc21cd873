//! How permits and allocations look on the tenant API (the seed's snake_case, dates as
//! `2018-06-19T00:00:00+0100`), shared by the operator's end-user view.

use serde::Serialize;

use super::store::{Allocation, Permit};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PermitView {
    pub permit_id: String,
    pub email: String,
    pub permit_allocation_id: String,
    pub permit_definition_name: String,
    #[schema(example = "2018-06-19T00:00:00+0100")]
    pub valid_from: String,
    #[schema(example = "2028-01-13T23:59:59+0100")]
    pub valid_to: String,
    /// True while the end user has a profile with at least one vehicle.
    pub activated: bool,
    /// When it first became activated; null if never.
    pub activated_at: Option<String>,
}

impl From<Permit> for PermitView {
    fn from(p: Permit) -> Self {
        Self {
            valid_from: p.days.render_from(&p.time_zone),
            valid_to: p.days.render_to(&p.time_zone),
            activated_at: p.activated_at.map(|at| p.time_zone.render_compact(at)),
            permit_id: p.id,
            email: p.email,
            permit_allocation_id: p.allocation_id,
            permit_definition_name: p.definition_name,
            activated: p.activated,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantAllocationView {
    pub permit_allocation_id: String,
    pub permit_definition_name: String,
    pub parking_spaces_count: i64,
    pub permit_count: i64,
    pub issued_permit_count: i64,
    #[schema(example = "2018-06-19T00:00:00+0100")]
    pub valid_from: String,
    #[schema(example = "2028-01-13T23:59:59+0100")]
    pub valid_to: String,
}

impl From<Allocation> for TenantAllocationView {
    fn from(a: Allocation) -> Self {
        Self {
            valid_from: a.days.render_from(&a.time_zone),
            valid_to: a.days.render_to(&a.time_zone),
            permit_allocation_id: a.id,
            permit_definition_name: a.definition_name,
            parking_spaces_count: a.parking_spaces_count,
            permit_count: a.permit_count,
            issued_permit_count: a.issued_count,
        }
    }
}
