//! Sinks: where the customer rows go. `csv` writes a sorted local file.

pub mod csv;
