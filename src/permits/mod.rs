//! Permits: the operator defines what a permit allows and grants tenants allocations (quotas);
//! tenants give permits to their people by e-mail through the seed's `/permit/v3` API; a permit
//! is active once its end user has a profile with a vehicle.

pub mod admin;
pub mod end_users;
pub mod rules;
pub mod schedule;
pub mod store;
pub mod tenant_api;
pub mod views;

use utoipa_axum::router::OpenApiRouter;

use crate::app::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(admin::routes())
        .merge(end_users::routes())
        .merge(tenant_api::routes())
}
