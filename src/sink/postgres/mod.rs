//! The PostgreSQL sink (contract §5): binary COPY into a staging table, the primary key built after
//! the load, and one transaction that puts the new rows in place of the target.
//!
//! [`Loader::prepare`] does everything that can fail before any work is done — connect, create the
//! database, find the schema, take an advisory lock on the target, check privileges, drop a
//! staging table a killed run left behind, create the new one — so a bad password or a missing
//! privilege is reported in a second, not after the aggregation. [`Loader::copy`] streams the
//! runs from the reducers in the binary COPY format, written straight into `CopyInWriter` (contract §5
//! measured this at a tenth of `BinaryCopyInWriter`'s client CPU). [`Loader::finish`] adds the
//! primary key, analyzes, and swaps: a rename when nothing depends on the target, or `TRUNCATE` +
//! `INSERT … SELECT` when views do, so they keep working. Until that commit the target is
//! untouched, and a dropped `Loader` drops its staging table.

//!
//! [`table`] validates the target's name, [`preflight`] checks it, [`copy`] encodes the rows,
//! [`swap`] puts them in place.

mod copy;
pub mod incremental;
mod preflight;
mod swap;
mod table;

pub use crate::db::TableName;
pub use copy::encode_copy_row;
pub use table::staging_name;

use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use postgres::Client;

use crate::db::connect::{Connection, db_error, quote_ident};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::reduce::{Run, RunRows};
use copy::copy_runs;
use preflight::{Checked, check_target};
use table::truncate_identifier;

/// How long each phase of the load took.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadTimes {
    /// Time the COPY spent sending rows and finishing (it overlaps the reduce).
    pub copy: Duration,
    /// Building the primary key.
    pub primary_key: Duration,
    /// `ANALYZE`.
    pub analyze: Duration,
    /// The swap transaction.
    pub swap: Duration,
}

/// A load in progress into one target table.
pub struct Loader {
    client: Client,
    schema: String,
    table: String,
    staging: String,
    lock_timeout: Duration,
    /// The staging table exists and is ours to drop.
    staging_exists: bool,
    times: LoadTimes,
    /// The connection's protection, in words ([`Connection::encryption`]).
    encryption: String,
}

impl Loader {
    /// Connects and checks all that can be checked before the aggregation (see [`preflight`]),
    /// then creates the staging table.
    pub fn prepare(
        connection: &Connection,
        target: &TableName,
        lock_timeout: Duration,
    ) -> Result<Loader> {
        let Checked {
            mut client,
            schema,
            qualified,
            encryption,
        } = check_target(connection, target)?;
        let shown = connection.shown().to_string();
        refuse_incremental_state(&mut client, &schema, &target.table, &qualified)?;
        let mut loader = Loader {
            client,
            schema,
            table: target.table.clone(),
            staging: staging_name(&qualified),
            lock_timeout,
            staging_exists: false,
            times: LoadTimes::default(),
            encryption,
        };
        // Holding the advisory lock, any staging table of this target is a killed run's.
        let sql = format!(
            "DROP TABLE IF EXISTS {staging}; \
             CREATE TABLE {staging} (customer_id text NOT NULL, favourite_product text NOT NULL, \
                                     longest_streak integer NOT NULL)",
            staging = loader.staging_ident()
        );
        loader.client.batch_execute(&sql).map_err(|e| {
            let what = format!("{shown}: cannot create a table in schema {}", loader.schema);
            db_error(&what, &e)
        })?;
        loader.staging_exists = true;
        Ok(loader)
    }

    /// How the connection is protected: `TLS 1.3, verify-full` or `not encrypted`.
    pub fn encryption(&self) -> &str {
        &self.encryption
    }

    fn ident(&self, name: &str) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(name))
    }

    fn staging_ident(&self) -> String {
        self.ident(&self.staging)
    }

    fn target(&self) -> String {
        format!("{}.{}", self.schema, self.table)
    }

    fn error(&self, what: &str, e: postgres::Error) -> Error {
        db_error(&format!("{}: {what}", self.target()), &e)
    }

    /// Copies every run received into the staging table; returns the rows the server counted.
    pub fn copy(&mut self, runs: Receiver<Run>) -> Result<u64> {
        let sql = format!(
            "COPY {} (customer_id, favourite_product, longest_streak) FROM STDIN (FORMAT binary)",
            self.staging_ident()
        );
        let writer = self
            .client
            .copy_in(&sql)
            .map_err(|e| db_error("cannot start the COPY", &e))?;
        let (busy, rows) = copy_runs(writer, runs, |run, buf| {
            for row in RunRows::new(&run.bytes) {
                encode_copy_row(
                    buf,
                    row.customer_id,
                    row.favourite_product,
                    row.longest_streak,
                );
            }
        });
        self.times.copy = busy;
        rows.map_err(|e| db_error(&format!("{}: the COPY failed", self.target()), &e))
    }

    /// Checks the row count, builds the primary key, analyzes, and swaps the staging table in.
    pub fn finish(
        mut self,
        copied: u64,
        expected: u64,
        progress: &dyn Progress,
    ) -> Result<LoadTimes> {
        if copied != expected {
            return Err(Error::Database {
                what: self.target(),
                message: format!(
                    "the COPY stored {copied} rows, but {expected} customers were reduced"
                ),
            });
        }
        let staging = self.staging_ident();
        let started = Instant::now();
        progress.step("building the primary key");
        log::info!(
            "{}: {copied} rows copied; building the primary key",
            self.target()
        );
        let pkey = quote_ident(&truncate_identifier(&format!("{}_pkey", self.staging)));
        self.client
            .batch_execute(&format!(
                "ALTER TABLE {staging} ADD CONSTRAINT {pkey} PRIMARY KEY (customer_id)"
            ))
            .map_err(|e| self.error("cannot build the primary key", e))?;
        self.times.primary_key = started.elapsed();
        let started = Instant::now();
        progress.step("analyzing");
        self.client
            .batch_execute(&format!("ANALYZE {staging}"))
            .map_err(|e| self.error("cannot analyze the new rows", e))?;
        self.times.analyze = started.elapsed();

        let started = Instant::now();
        progress.step("swapping the new table in");
        crate::faults::point("before-swap");
        let refilled = self.swap()?;
        crate::faults::point("after-swap");
        if refilled {
            // Rows were copied into the old table, whose statistics are now stale.
            let target = self.ident(&self.table);
            self.client
                .batch_execute(&format!("ANALYZE {target}"))
                .map_err(|e| self.error("cannot analyze the table", e))?;
        }
        self.times.swap = started.elapsed();
        Ok(self.times.clone())
    }
}

/// The error of a statement run under `lock_timeout` (`lock_ms`): a lock not granted in time says
/// so and that `unchanged` (what stayed as it was); any other is the server's message.
fn locked_or_failed(
    shown: &str,
    lock_ms: u128,
    what: &str,
    e: postgres::Error,
    unchanged: &str,
) -> Error {
    if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
        return Error::Database {
            what: shown.into(),
            message: format!(
                "the table is locked by another session and stayed locked for {lock_ms} ms \
                 (lock_timeout); {unchanged}, try again when it is free"
            ),
        };
    }
    db_error(&format!("{shown}: {what}"), &e)
}

/// A replace would leave a table's incremental state describing rows it no longer holds: refused
/// when its ledger lists any load.
fn refuse_incremental_state(
    client: &mut Client,
    schema: &str,
    table: &str,
    qualified: &str,
) -> Result<()> {
    let Ok(names) = incremental::StateTables::new(schema, table) else {
        return Ok(()); // too long a name to have a state
    };
    let fail = |e| db_error(&format!("{qualified}: cannot look up its state"), &e);
    // A ledger without rows (a first incremental load that failed) describes nothing.
    let loaded = names.exist(client).map_err(fail)?
        && client
            .query_one(
                &format!("SELECT EXISTS (SELECT 1 FROM {})", names.ledger),
                &[],
            )
            .map_err(fail)?
            .get::<_, bool>(0);
    if loaded {
        return Err(Error::Usage(format!(
            "{qualified} is loaded with --mode incremental (its ledger is {}): a replace would \
             leave that state behind; load it with --mode incremental, or drop the state first \
             with `custagg state --table {qualified} --reset`",
            names.ledger_name
        )));
    }
    Ok(())
}

impl Drop for Loader {
    fn drop(&mut self) {
        if self.staging_exists {
            // Best effort: if the server is gone, the next run drops it.
            let sql = format!("DROP TABLE IF EXISTS {}", self.staging_ident());
            let _ = self.client.batch_execute(&sql);
        }
    }
}
