//! Parking rights: one answer to "may this vehicle park here now?", drawn from providers'
//! tickets, tenants' permits and open car-park stays together, for enforcement.

pub mod api;
pub mod decide;
pub mod gather;
pub mod log;
pub mod memory;
pub mod privacy;
pub mod snapshot;

pub use api::routes;
