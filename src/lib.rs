//! parkhub: the central system of a parking operator.
//!
//! Every right to park and everything car-park equipment sees lands here, is answered from
//! here, and is pushed out in real time. The binary (`main.rs`) only parses the command line;
//! tests, benchmarks and `main` all start the service with [`app::serve`].

pub mod app;
pub mod carparks;
pub mod cli;
pub mod console;
pub mod domain;
pub mod events;
pub mod http;
pub mod lots;
pub mod ops;
pub mod permits;
pub mod principals;
pub mod rights;
pub mod setup;
pub mod store;
pub mod tickets;

pub use app::{ServeConfig, serve, serve_with_store};
