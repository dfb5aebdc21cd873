//! Permit definitions, allocations, end users and permits in the database.

mod allocations;
mod definitions;
mod end_users;
mod grants;
mod held;

pub use allocations::*;
pub use definitions::*;
pub use end_users::*;
pub use grants::*;
pub use held::*;

use jiff::Timestamp;
use jiff::civil::Date;

use super::rules::{self, Days};
use super::schedule::{Schedule, WindowSpec};
use crate::domain::time::{from_micros, to_micros};
use crate::domain::{Email, LicensePlate, TimeZoneName};
use crate::http::{AppError, FieldErrors};
use crate::principals::Role;
use crate::store::{Param, Store, lookup};
use crate::{read, write_tx};

fn now_us() -> i64 {
    to_micros(Timestamp::now())
}

fn bad_data(what: impl std::fmt::Display) -> AppError {
    AppError::internal(anyhow::anyhow!("stored permit data is invalid: {what}"))
}

fn zone(name: &str) -> Result<TimeZoneName, AppError> {
    TimeZoneName::parse(name).map_err(bad_data)
}

fn date(text: &str) -> Result<Date, AppError> {
    text.parse::<Date>().map_err(bad_data)
}

fn days(from: &str, to: &str) -> Result<Days, AppError> {
    Ok(Days {
        from: date(from)?,
        to: date(to)?,
    })
}
