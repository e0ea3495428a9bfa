//! The ground floor: small helpers and protocol constants that every other module may use and
//! that use nothing of the project themselves.

pub mod names;
pub mod ports;
pub mod progress;
pub mod table;
pub mod time;
pub mod trace;
