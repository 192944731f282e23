//! Incremental loads (`--mode incremental`): the new sources' customer states merged into the
//! states kept next to the target, and the rows of the customers they touch updated — the
//! states, the ledger of loaded sources and the target's rows in ONE transaction.
//!
//! Next to the target `t` live `t_custagg_state` (a row a customer: its [`CustomerState`] as
//! `bytea`) and `t_custagg_ledger` (a row a loaded source: name, bytes, content hash, rows, the
//! customers its load touched, when). A load:
//! 1. `COPY`s the new sources' states into a temporary table while the partitions reduce;
//! 2. reads them back joined with the stored states of the same customers, merges each pair
//!    here (the merge and the rules are the engine's own, see [`CustomerState`]) into a spool
//!    file, and `COPY`s the merged states and rows into a second temporary table;
//! 3. upserts the states and the target's rows from it, appends the ledger, and commits.
//!
//! Until the commit nothing is visible: a killed run or a stopped server leaves all three as they
//! were. The session's advisory lock on the target (the one `--mode replace` takes) makes runs on
//! one target take turns. The first load of a target (an empty ledger) empties it first, so that
//! it equals `--mode replace` on the same sources.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use postgres::{Client, Transaction};

use super::copy::{COPY_HEADER, COPY_TRAILER, copy_runs, put_tuple, put_tuple_nullable};
use super::preflight::{Checked, Preflight, check_target};
use super::table::relation_exists;
use super::{TableName, locked_or_failed};
use crate::db::MAX_IDENTIFIER;
use crate::db::connect::{Connection, db_error, quote_ident};
use crate::error::{Error, Result};
use crate::reduce::{CustomerState, Run, StateRows};

/// The suffixes of the state tables' names.
const STATE_SUFFIX: &str = "_custagg_state";
const LEDGER_SUFFIX: &str = "_custagg_ledger";
/// The state table's pages keep a tenth free, so that a day's new version of a state mostly
/// fits on its page: a HOT update, which writes no index entry.
const STATE_STORAGE: &str = "WITH (fillfactor = 90)";
/// The server memory a load's session may cache its temporary tables in.
const TEMP_BUFFERS: &str = "64MB";

/// The names a target's incremental loads work with.
#[derive(Clone, Debug)]
pub struct StateTables {
    /// Schema-qualified and quoted: the target, its states, its ledger.
    pub target: String,
    pub state: String,
    pub ledger: String,
    /// Unquoted, for the catalog: the schema and the three tables.
    pub schema: String,
    pub table: String,
    pub state_name: String,
    pub ledger_name: String,
}

impl StateTables {
    /// The names for `table` in `schema`; a table name too long to take the suffixes is refused.
    pub fn new(schema: &str, table: &str) -> Result<StateTables> {
        let longest = MAX_IDENTIFIER - LEDGER_SUFFIX.len();
        if table.len() > longest {
            return Err(Error::Usage(format!(
                "--table {table}: an incremental load keeps its state in {table}{LEDGER_SUFFIX}, \
                 which is longer than PostgreSQL's {MAX_IDENTIFIER} bytes; use a name of at most \
                 {longest} bytes"
            )));
        }
        let q = |name: &str| format!("{}.{}", quote_ident(schema), quote_ident(name));
        let (state_name, ledger_name) = (
            format!("{table}{STATE_SUFFIX}"),
            format!("{table}{LEDGER_SUFFIX}"),
        );
        Ok(StateTables {
            target: q(table),
            state: q(&state_name),
            ledger: q(&ledger_name),
            schema: schema.into(),
            table: table.into(),
            state_name,
            ledger_name,
        })
    }

    /// Whether the ledger table exists.
    pub fn exist(&self, client: &mut Client) -> std::result::Result<bool, postgres::Error> {
        relation_exists(client, &self.schema, &self.ledger_name)
    }
}

/// A source as the ledger records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerSource {
    /// The path as given.
    pub name: String,
    /// Its size in bytes, as stored (compressed or not).
    pub bytes: u64,
    /// `blake3:` and the hex digest of its bytes.
    pub hash: String,
}

/// A row of the ledger, as `custagg state` prints it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerRow {
    /// The load that took it (files loaded by one run share it).
    pub load: i64,
    pub source: String,
    pub bytes: i64,
    pub content_hash: String,
    pub rows: i64,
    /// Customers the load touched.
    pub customers: i64,
    /// When, to the second, in the server's time zone.
    pub loaded_at: String,
}

/// An earlier load of a source with the same content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorLoad {
    /// Its name then.
    pub name: String,
    /// When, to the second, in the server's time zone (`2026-12-07 03:41:09 UTC`).
    pub loaded_at: String,
    /// Its rows.
    pub rows: i64,
}

/// What a load changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Customers of the new sources.
    pub customers: u64,
    /// Of them, customers not seen before.
    pub new_customers: u64,
    /// Whether this was the target's first incremental load (the target was emptied first).
    pub first: bool,
}

/// A connection holding the target's advisory lock, its state tables made.
pub struct Incremental {
    client: Client,
    names: StateTables,
    shown: String,
    lock_ms: u128,
    encryption: String,
}

impl Incremental {
    /// Connects, checks what can be checked before the sources are read (as
    /// [`Loader::prepare`](super::Loader::prepare)), takes the advisory lock and makes the
    /// state tables if they are not there.
    pub fn prepare(
        connection: &Connection,
        target: &TableName,
        lock_timeout: Duration,
    ) -> Result<Incremental> {
        let Checked {
            mut client,
            schema,
            qualified: shown,
            encryption,
        } = check_target(connection, target)?;
        let names = StateTables::new(&schema, &target.table)?;
        // The load's temporary tables (a day's are tens of MB) are read three times; past the
        // default 8 MB of temp_buffers every read of them goes to the file system. No JIT: the
        // temporary tables have no statistics, so the planner takes the states' update by ctid
        // for a costly query and compiled it, with inlining and optimisation, for 0.11 s of a
        // day's 0.27 s update (auto_explain); none of the load's plans gains from it.
        let sql = format!(
            "SET temp_buffers = '{TEMP_BUFFERS}'; SET jit = off; \
             CREATE TABLE IF NOT EXISTS {state} (customer_id text PRIMARY KEY, \
                                                 state bytea NOT NULL) {STATE_STORAGE}; \
             CREATE TABLE IF NOT EXISTS {ledger} (load_id bigint NOT NULL, source text NOT NULL, \
                 bytes bigint NOT NULL, content_hash text NOT NULL, rows bigint NOT NULL, \
                 customers bigint NOT NULL, loaded_at timestamptz NOT NULL DEFAULT now())",
            state = names.state,
            ledger = names.ledger,
        );
        client.batch_execute(&sql).map_err(|e| {
            db_error(
                &format!("{shown}: cannot create the incremental state tables"),
                &e,
            )
        })?;
        Ok(Incremental {
            client,
            names,
            shown,
            lock_ms: lock_timeout.as_millis().max(1),
            encryption,
        })
    }

    /// How the connection is protected ([`Connection::encryption`]).
    pub fn encryption(&self) -> &str {
        &self.encryption
    }

    fn fail(&self, what: &str, e: postgres::Error) -> Error {
        fail(&self.shown, self.lock_ms, what, e)
    }

    /// The first earlier load of a source with content `hash`, if there is one.
    pub fn loaded_before(&mut self, hash: &str) -> Result<Option<PriorLoad>> {
        let sql = format!(
            "SELECT source, to_char(loaded_at, 'YYYY-MM-DD HH24:MI:SS TZ'), rows FROM {} \
             WHERE content_hash = $1 \
             ORDER BY load_id LIMIT 1",
            self.names.ledger
        );
        let row = self
            .client
            .query_opt(&sql, &[&hash])
            .map_err(|e| self.fail("cannot read the ledger", e))?;
        Ok(row.map(|row| PriorLoad {
            name: row.get(0),
            loaded_at: row.get(1),
            rows: row.get(2),
        }))
    }

    /// After a first load, outside its transaction: `VACUUM` the state and the target, so that
    /// the next load finds their pages marked visible and does not write every page it reads
    /// (best effort: a failure only costs the next load time).
    pub fn vacuum(&mut self) {
        let sql = format!("VACUUM {}, {}", self.names.state, self.names.target);
        if let Err(e) = self.client.batch_execute(&sql) {
            log::warn!("{}: VACUUM after the first load failed: {e}", self.shown);
        }
    }

    /// Starts the load's transaction, with the temporary table the new states are copied into.
    pub fn begin(&mut self) -> Result<Load<'_>> {
        let (shown, lock_ms) = (self.shown.clone(), self.lock_ms);
        let fail = |what: &str, e| fail(&shown, lock_ms, what, e);
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| fail("cannot begin the load", e))?;
        tx.batch_execute(&format!(
            "SET LOCAL lock_timeout = {lock_ms}; \
             CREATE TEMPORARY TABLE custagg_delta (customer_id text NOT NULL, \
                 state bytea NOT NULL) ON COMMIT DROP"
        ))
        .map_err(|e| fail("cannot create a temporary table", e))?;
        Ok(Load {
            tx,
            names: &self.names,
            shown,
            lock_ms,
        })
    }
}

fn fail(shown: &str, lock_ms: u128, what: &str, e: postgres::Error) -> Error {
    locked_or_failed(shown, lock_ms, what, e, "nothing was loaded")
}

/// One load's open transaction.
pub struct Load<'c> {
    tx: Transaction<'c>,
    names: &'c StateTables,
    shown: String,
    lock_ms: u128,
}

impl Load<'_> {
    fn fail(&self, what: &str, e: postgres::Error) -> Error {
        fail(&self.shown, self.lock_ms, what, e)
    }

    /// Copies the states of every run received (made with [`crate::reduce::Emit::State`]) into
    /// the temporary table; returns the rows the server counted.
    pub fn copy_states(&mut self, runs: Receiver<Run>) -> Result<u64> {
        let writer = self
            .tx
            .copy_in("COPY custagg_delta (customer_id, state) FROM STDIN (FORMAT binary)")
            .map_err(|e| db_error("cannot start the COPY", &e))?;
        let (_, rows) = copy_runs(writer, runs, |run, buf| {
            for (customer, state) in StateRows::new(&run.bytes) {
                put_tuple(buf, &[customer, state]);
            }
        });
        rows.map_err(|e| db_error(&format!("{}: the COPY failed", self.shown), &e))
    }

    /// Merges the copied states into the stored ones and writes the states and the target's
    /// rows; `spill` holds the merged rows between reading and writing them. `expected` is the
    /// number of customers reduced.
    pub fn merge(&mut self, spill: &Path, expected: u64) -> Result<Merged> {
        let started = Instant::now();
        let target_exists = relation_exists(&mut self.tx, &self.names.schema, &self.names.table)
            .map_err(|e| self.fail("cannot look up the table", e))?;
        let first = self.first_load(target_exists)?;
        if first {
            self.empty_target(target_exists)?;
        }
        let created = first && !target_exists;
        let mut spool = tempfile::tempfile_in(spill)
            .map_err(|e| Error::io(spill, "cannot create a spool file", e))?;
        let (customers, new_customers) = self.merge_into(&mut spool, spill, expected)?;
        log::info!(
            "{}: {customers} states merged ({new_customers} new) in {:.2} s",
            self.shown,
            started.elapsed().as_secs_f64()
        );
        if customers != expected {
            return Err(Error::Database {
                what: self.shown.clone(),
                message: format!(
                    "the COPY stored {customers} states, but {expected} customers were reduced"
                ),
            });
        }
        spool
            .rewind()
            .map_err(|e| Error::io(spill, "cannot read the spool file", e))?;
        self.tx
            .batch_execute(
                "CREATE TEMPORARY TABLE custagg_merged (customer_id text NOT NULL, \
                 state bytea NOT NULL, favourite_product text NOT NULL, \
                 longest_streak integer NOT NULL, changed boolean NOT NULL, tid tid) \
                 ON COMMIT DROP",
            )
            .map_err(|e| self.fail("cannot create a temporary table", e))?;
        let mut writer = self
            .tx
            .copy_in("COPY custagg_merged FROM STDIN (FORMAT binary)")
            .map_err(|e| db_error("cannot start the COPY", &e))?;
        let copied = std::io::copy(&mut BufReader::new(spool), &mut writer);
        let copied_rows = writer
            .finish()
            .map_err(|e| db_error(&format!("{}: the COPY failed", self.shown), &e))?;
        copied.map_err(|e| Error::io(spill, "cannot read the spool file", e))?;
        debug_assert_eq!(copied_rows, customers);
        log::info!(
            "{}: merged states copied at {:.2} s",
            self.shown,
            started.elapsed().as_secs_f64()
        );
        crate::faults::point("incremental-write");
        match first {
            true => self.write_first(created)?,
            false => self.upsert(customers - new_customers)?,
        }
        log::info!(
            "{}: states and rows upserted at {:.2} s",
            self.shown,
            started.elapsed().as_secs_f64()
        );
        Ok(Merged {
            customers,
            new_customers,
            first,
        })
    }

    /// Later loads: the stored states of the customers merged updated where the join found
    /// them (by their `ctid`: the key was looked up once, by the join), the new customers'
    /// inserted, and the target's rows of those whose row changed upserted. Unchanged rows are
    /// left out here, not by the upsert's `WHERE`: `ON CONFLICT DO UPDATE` locks every row it
    /// meets, which writes its page. `stored` is the number of customers the join found.
    fn upsert(&mut self, stored: u64) -> Result<()> {
        let names = self.names;
        let updated = self
            .tx
            .execute(
                &format!(
                    "UPDATE {} s SET state = m.state FROM custagg_merged m WHERE s.ctid = m.tid",
                    names.state
                ),
                &[],
            )
            .map_err(|e| self.fail("cannot update the states", e))?;
        // Only another writer of the state table, between the join and here, moves a state
        // from where the join found it (other custagg runs wait for the advisory lock).
        if updated != stored {
            return Err(Error::Database {
                what: self.shown.clone(),
                message: format!(
                    "{} of {stored} stored states changed while they were merged (is something \
                     else writing {}?); nothing was loaded",
                    stored - updated.min(stored),
                    names.state_name
                ),
            });
        }
        let sql = format!(
            "INSERT INTO {state} (customer_id, state) \
                 SELECT customer_id, state FROM custagg_merged WHERE tid IS NULL; \
             INSERT INTO {target} AS t (customer_id, favourite_product, longest_streak) \
                 SELECT customer_id, favourite_product, longest_streak FROM custagg_merged \
                 WHERE changed \
                 ON CONFLICT (customer_id) DO UPDATE \
                 SET favourite_product = EXCLUDED.favourite_product, \
                     longest_streak = EXCLUDED.longest_streak \
                 WHERE (t.favourite_product, t.longest_streak) IS DISTINCT FROM \
                       (EXCLUDED.favourite_product, EXCLUDED.longest_streak)",
            state = names.state,
            target = names.target,
        );
        self.tx.batch_execute(&sql).map_err(|e| {
            if e.code() == Some(&postgres::error::SqlState::INVALID_COLUMN_REFERENCE) {
                return Error::Database {
                    what: self.shown.clone(),
                    message: "an incremental load updates rows by customer_id, but the table has \
                              no primary key or unique index on customer_id; add one, or load \
                              it with --mode replace"
                        .into(),
                };
            }
            self.fail("cannot update the states and the rows", e)
        })
    }

    /// The first load into empty tables: plain inserts, the state's primary key (and the
    /// target's, when this load made it) built after them, as `--mode replace` does; then
    /// statistics for the next load's plans.
    fn write_first(&mut self, created: bool) -> Result<()> {
        let names = self.names;
        let target_key = match created {
            true => format!(
                "ALTER TABLE {} ADD PRIMARY KEY (customer_id);",
                names.target
            ),
            false => String::new(),
        };
        let sql = format!(
            "INSERT INTO {state} (customer_id, state) \
                 SELECT customer_id, state FROM custagg_merged; \
             ALTER TABLE {state} ADD PRIMARY KEY (customer_id); \
             INSERT INTO {target} (customer_id, favourite_product, longest_streak) \
                 SELECT customer_id, favourite_product, longest_streak FROM custagg_merged; \
             {target_key} \
             ANALYZE {state}; ANALYZE {target}",
            state = names.state,
            target = names.target,
        );
        self.tx
            .batch_execute(&sql)
            .map_err(|e| self.fail("cannot write the first load", e))
    }

    /// Whether the ledger is empty (then the target must not hold rows of another history);
    /// `target_exists` says whether the target does. A ledger without its target is refused.
    fn first_load(&mut self, target_exists: bool) -> Result<bool> {
        let names = self.names;
        let first: bool = self
            .tx
            .query_one(
                &format!("SELECT NOT EXISTS (SELECT 1 FROM {})", names.ledger),
                &[],
            )
            .map_err(|e| self.fail("cannot read the ledger", e))?
            .get(0);
        if !first && !target_exists {
            return Err(Error::Database {
                what: self.shown.clone(),
                message: format!(
                    "the table is gone but its incremental state ({}) is still there; drop the \
                     state with `custagg state --reset` and load every source again",
                    names.ledger_name
                ),
            });
        }
        Ok(first)
    }

    /// The first load: the target made (without its key yet) unless it exists, or emptied, and
    /// the state table made again without its key, to be filled by plain inserts.
    fn empty_target(&mut self, target_exists: bool) -> Result<()> {
        let names = self.names;
        let target = match target_exists {
            true => format!("TRUNCATE {};", names.target),
            false => format!(
                "CREATE TABLE {} (customer_id text NOT NULL, favourite_product text NOT NULL, \
                 longest_streak integer NOT NULL);",
                names.target
            ),
        };
        let sql = format!(
            "{target} DROP TABLE {state}; \
             CREATE TABLE {state} (customer_id text NOT NULL, state bytea NOT NULL) \
                 {STATE_STORAGE}",
            state = names.state,
        );
        self.tx
            .batch_execute(&sql)
            .map_err(|e| self.fail("cannot empty the table for its first incremental load", e))
    }

    /// Reads the new states with the stored ones of the same customers, merged into `spool` as
    /// COPY tuples of `custagg_merged`; returns the customers and how many of them are new.
    fn merge_into(&mut self, spool: &mut File, spill: &Path, expected: u64) -> Result<(u64, u64)> {
        let names = self.names;
        let sql = format!(
            "COPY (SELECT d.customer_id, d.state, s.state, s.ctid FROM custagg_delta d \
                   LEFT JOIN {} s ON s.customer_id = d.customer_id) TO STDOUT (FORMAT binary)",
            names.state
        );
        let shown = self.shown.clone();
        // A day's few customers are looked up by the key (and their states updated by their
        // ctids); only a load of many against few stored states is left to the planner (which,
        // without statistics on the temporary tables, would hash every stored state).
        let stored: f32 = self
            .tx
            .query_one(
                "SELECT greatest(reltuples, 0)::real FROM pg_class WHERE oid = $1::text::regclass",
                &[&names.state],
            )
            .map_err(|e| fail(&shown, self.lock_ms, "cannot read the state's size", e))?
            .get(0);
        let by_key = (expected as f32) * 10.0 < stored;
        if by_key {
            self.tx
                .batch_execute("SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off")
                .map_err(|e| fail(&shown, self.lock_ms, "cannot set the join's plan", e))?;
        }
        let reader = self
            .tx
            .copy_out(&sql)
            .map_err(|e| fail(&shown, self.lock_ms, "cannot read the stored states", e))?;
        let mut tuples = CopyTuples::new(BufReader::with_capacity(1 << 20, reader));
        let mut out = BufWriter::with_capacity(1 << 20, spool);
        let write_error = |e| Error::io(spill, "cannot write the spool file", e);
        out.write_all(COPY_HEADER).map_err(write_error)?;
        let (mut customers, mut new_customers) = (0u64, 0u64);
        let mut fields: Vec<Option<Vec<u8>>> = Vec::new();
        let (mut state, mut tuple) = (Vec::new(), Vec::new());
        while tuples
            .next(&mut fields)
            .map_err(|e| copy_out_error(&shown, e))?
        {
            let [Some(customer), Some(delta), old, tid] = fields.as_slice() else {
                return Err(copy_out_error(
                    &shown,
                    "a row of the join is not four fields".into(),
                ));
            };
            let damaged = |what: &str, e: String| Error::Database {
                what: shown.clone(),
                message: format!(
                    "the {what} state of customer {} cannot be read: {e}",
                    String::from_utf8_lossy(customer)
                ),
            };
            let delta = CustomerState::decode(delta).map_err(|e| damaged("new", e))?;
            if old.is_some() != tid.is_some() {
                return Err(copy_out_error(
                    &shown,
                    "a stored state without its ctid".into(),
                ));
            }
            let old = old
                .as_deref()
                .map(CustomerState::decode)
                .transpose()
                .map_err(|e| damaged("stored", e))?;
            let merged = match &old {
                None => {
                    new_customers += 1;
                    delta
                }
                Some(old) => old.merge(&delta, customer)?,
            };
            let (favourite, streak) = (merged.favourite(), merged.longest_streak());
            let changed = old
                .as_ref()
                .is_none_or(|old| old.favourite() != favourite || old.longest_streak() != streak);
            state.clear();
            merged.encode(&mut state);
            tuple.clear();
            put_tuple_nullable(
                &mut tuple,
                &[
                    Some(customer),
                    Some(&state),
                    Some(favourite),
                    Some(&streak.to_be_bytes()), // int4, binary
                    Some(&[changed as u8]),
                    tid.as_deref(),
                ],
            );
            out.write_all(&tuple).map_err(write_error)?;
            customers += 1;
            if customers == 1 {
                crate::faults::point("incremental-read");
            }
        }
        crate::faults::point("incremental-merge");
        drop(tuples);
        out.write_all(&COPY_TRAILER).map_err(write_error)?;
        out.flush().map_err(write_error)?;
        Ok((customers, new_customers))
    }

    /// Appends the ledger's rows for `sources` (with their rows), loaded together touching
    /// `customers`, and commits the load.
    pub fn commit(mut self, sources: &[(LedgerSource, u64)], customers: u64) -> Result<()> {
        let names = self.names;
        let load_id: i64 = self
            .tx
            .query_one(
                &format!("SELECT coalesce(max(load_id), 0) + 1 FROM {}", names.ledger),
                &[],
            )
            .map_err(|e| self.fail("cannot read the ledger", e))?
            .get(0);
        let sql = format!(
            "INSERT INTO {} (load_id, source, bytes, content_hash, rows, customers) \
             VALUES ($1, $2, $3, $4, $5, $6)",
            names.ledger
        );
        let statement = self
            .tx
            .prepare(&sql)
            .map_err(|e| self.fail("cannot write the ledger", e))?;
        for (source, rows) in sources {
            let (bytes, rows, customers) = (source.bytes as i64, *rows as i64, customers as i64);
            self.tx
                .execute(
                    &statement,
                    &[
                        &load_id,
                        &source.name,
                        &bytes,
                        &source.hash,
                        &rows,
                        &customers,
                    ],
                )
                .map_err(|e| self.fail("cannot write the ledger", e))?;
        }
        crate::faults::point("incremental-commit");
        let (shown, lock_ms) = (self.shown.clone(), self.lock_ms);
        self.tx
            .commit()
            .map_err(|e| fail(&shown, lock_ms, "cannot commit the load", e))
    }
}

fn copy_out_error(shown: &str, e: String) -> Error {
    Error::Database {
        what: shown.into(),
        message: format!("reading the stored states failed: {e}"),
    }
}

/// The tuples of a binary COPY's output.
struct CopyTuples<R> {
    reader: R,
    header_read: bool,
}

impl<R: Read> CopyTuples<R> {
    fn new(reader: R) -> Self {
        CopyTuples {
            reader,
            header_read: false,
        }
    }

    fn exact(&mut self, buf: &mut [u8]) -> std::result::Result<(), String> {
        self.reader.read_exact(buf).map_err(|e| e.to_string())
    }

    /// Reads the next tuple into `fields` (`None` for NULL); false at the trailer.
    fn next(&mut self, fields: &mut Vec<Option<Vec<u8>>>) -> std::result::Result<bool, String> {
        if !self.header_read {
            let mut header = [0u8; 19];
            self.exact(&mut header)?;
            if header[..11] != COPY_HEADER[..11] {
                return Err("not a binary COPY".into());
            }
            let extension = u32::from_be_bytes(header[15..19].try_into().expect("4 bytes"));
            let mut skip = vec![0; extension as usize];
            self.exact(&mut skip)?;
            self.header_read = true;
        }
        let mut count = [0u8; 2];
        self.exact(&mut count)?;
        let count = i16::from_be_bytes(count);
        if count < 0 {
            return Ok(false);
        }
        fields.resize(count as usize, None);
        for field in fields.iter_mut() {
            let mut len = [0u8; 4];
            self.exact(&mut len)?;
            let len = i32::from_be_bytes(len);
            *field = match usize::try_from(len) {
                Err(_) => None,
                Ok(len) => {
                    let mut bytes = field.take().unwrap_or_default();
                    bytes.resize(len, 0);
                    self.exact(&mut bytes)?;
                    Some(bytes)
                }
            };
        }
        Ok(true)
    }
}

/// For `custagg state`: a connection to the target's database (not created when missing), the
/// names of its state tables and how messages name the target; with `lock`, holding the
/// target's advisory lock.
fn open_state(
    connection: &Connection,
    target: &TableName,
    lock: bool,
) -> Result<(Client, StateTables, String)> {
    let mut client = connection.connect()?;
    let mut checks = Preflight::new(&mut client, connection);
    let schema = checks.schema_of(target)?;
    let names = StateTables::new(&schema, &target.table)?;
    let shown = format!("{schema}.{}", target.table);
    if lock {
        checks.lock_target(&shown)?;
    }
    Ok((client, names, shown))
}

/// What `custagg state` prints of a target's incremental state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StateReport {
    /// The ledger's rows, by load and source.
    pub ledger: Vec<LedgerRow>,
    /// Customers with a state.
    pub customers: i64,
    /// Bytes on disk of the state table (with its index and TOAST) and of the ledger.
    pub state_bytes: i64,
    pub ledger_bytes: i64,
}

/// The incremental state of `target`, `None` when it has none.
pub fn state_report(connection: &Connection, target: &TableName) -> Result<Option<StateReport>> {
    let (mut client, names, shown) = open_state(connection, target, false)?;
    let fail = |what: &str, e| db_error(&format!("{shown}: {what}"), &e);
    if !names
        .exist(&mut client)
        .map_err(|e| fail("cannot look up the state", e))?
    {
        return Ok(None);
    }
    let ledger = client
        .query(
            &format!(
                "SELECT load_id, source, bytes, content_hash, rows, customers, \
                 to_char(loaded_at, 'YYYY-MM-DD HH24:MI:SS TZ') FROM {} ORDER BY load_id, source",
                names.ledger
            ),
            &[],
        )
        .map_err(|e| fail("cannot read the ledger", e))?
        .iter()
        .map(|r| LedgerRow {
            load: r.get(0),
            source: r.get(1),
            bytes: r.get(2),
            content_hash: r.get(3),
            rows: r.get(4),
            customers: r.get(5),
            loaded_at: r.get(6),
        })
        .collect();
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT count(*) FROM {}), pg_total_relation_size($1::text::regclass), \
                 pg_total_relation_size($2::text::regclass)",
                names.state
            ),
            &[&names.state, &names.ledger],
        )
        .map_err(|e| fail("cannot measure the state", e))?;
    Ok(Some(StateReport {
        ledger,
        customers: row.get(0),
        state_bytes: row.get(1),
        ledger_bytes: row.get(2),
    }))
}

/// Drops the incremental state of `target` (its states and ledger; the table stays), holding its
/// advisory lock; returns whether there was one.
pub fn reset_state(connection: &Connection, target: &TableName) -> Result<bool> {
    let (mut client, names, shown) = open_state(connection, target, true)?;
    let fail = |what: &str, e| db_error(&format!("{shown}: {what}"), &e);
    let existed = names
        .exist(&mut client)
        .map_err(|e| fail("cannot look up the state", e))?;
    client
        .batch_execute(&format!(
            "BEGIN; DROP TABLE IF EXISTS {}, {}; COMMIT",
            names.state, names.ledger
        ))
        .map_err(|e| fail("cannot drop the state", e))?;
    Ok(existed)
}
