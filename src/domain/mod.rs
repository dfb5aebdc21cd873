//! Value types used by every capability. Each is built by one constructor that rejects bad
//! input, so code past the HTTP edge only ever holds valid values.

pub mod email;
pub mod plate;
pub mod time;

pub use email::Email;
pub use plate::LicensePlate;
pub use time::{DateTimeInput, LocalTimeError, TimeZoneName};
