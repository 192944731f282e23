//! custagg: aggregate a huge delimited file of retail transactions by customer.
//!
//! The stages, in pipeline order (contract §1; the `§` sections cited throughout are those of
//! `docs/contract.md`, and `docs/architecture.md` draws the pipeline): [`source`] maps the file
//! and cuts it into chunks at record boundaries; [`parse`] reads the header and the records of a
//! chunk; [`partition`] folds records into groups and routes them by customer into memory or
//! [`spill`] files, with product codes interned by [`products`]; [`reduce`] turns a partition
//! into sorted customer rows; a [`sink`] writes them. [`pipeline`] runs the stages on a rayon
//! pool. Each stage imports only from the stages before it and from the leaf modules: [`key`]
//! (sort keys), [`date`], [`csv_field`], [`error`], [`config`], [`leftovers`], [`atomic`],
//! [`faults`] and [`progress`]. [`rejects`] collects bad rows beside the parse, and [`generate`]
//! makes test and benchmark inputs.

pub mod atomic;
pub mod config;
pub mod csv_field;
pub mod date;
pub mod error;
pub mod faults;
pub mod generate;
pub mod key;
pub mod leftovers;
pub mod parse;
pub mod partition;
pub mod pipeline;
pub mod products;
pub mod progress;
pub mod reduce;
pub mod rejects;
pub mod sink;
pub mod source;
pub mod spill;

pub use config::Config;
pub use error::{BadRow, Error, Result};
pub use pipeline::{Summary, aggregate, run_to_csv};
