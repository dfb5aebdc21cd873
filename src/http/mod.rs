//! Shared HTTP plumbing: the one error type, the JSON and query extractors, authentication,
//! and the middleware every route goes through.

pub mod auth;
pub mod breaker;
pub mod error;
pub mod extract;
pub mod limits;
pub mod middleware;
pub mod openapi;
pub mod paging;

pub use auth::Principal;
pub use error::{AppError, FieldErrors};
pub use extract::{Json, QueryMap};
