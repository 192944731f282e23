//! Sinks: where the customer rows go. `csv` writes a sorted local file; `postgres` loads a table
//! (over a connection made by [`crate::db::connect`]).

pub mod csv;
pub mod postgres;
