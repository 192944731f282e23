//! custagg: aggregate a huge delimited file of retail transactions by customer.
//!
//! The stages, in pipeline order (contract §1; the `§` sections cited throughout are those of
//! `docs/contract.md`, and `docs/architecture.md` draws the pipeline): [`source`] expands the
//! `--source`s into inputs and opens each — a mapped file cut into chunks at record boundaries, a
//! stream (a pipe, standard input, gzip or zstd decompressed, a PostgreSQL `COPY`), or a Parquet
//! file's row groups; [`parse`] reads the header and the records of a chunk, or the rows of a
//! Parquet batch; [`partition`] folds records into groups and routes them by customer into memory
//! or [`spill`] files, with product codes interned by [`products`]; [`reduce`] turns a partition
//! into sorted customer rows; a [`sink`] writes them. [`pipeline`] runs the stages on a rayon
//! pool, with the run's settings from [`config`]. Each stage imports only from the stages before
//! it and from the leaf modules: [`key`] (sort keys), [`date`], [`csv_field`], [`error`],
//! [`db`] (PostgreSQL connections and table names, for the source and the sink), [`leftovers`],
//! [`atomic`], [`faults`] and [`progress`]. [`rejects`] collects bad rows beside the parse, and
//! [`generate`] makes test and benchmark inputs.

pub mod atomic;
pub mod config;
pub mod csv_field;
pub mod date;
pub mod db;
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
