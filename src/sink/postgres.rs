//! The PostgreSQL sink (SPEC §5): binary COPY into a staging table, the primary key built after
//! the load, and one transaction that puts the new rows in place of the target.
//!
//! [`Loader::prepare`] does everything that can fail before any work is done — connect, create the
//! database, find the schema, take an advisory lock on the target, check privileges, drop a
//! staging table a killed run left behind, create the new one — so a bad password or a missing
//! privilege is reported in a second, not after the aggregation. [`Loader::copy`] streams the
//! runs from the reducers in the binary COPY format, written straight into `CopyInWriter` (SPEC §5
//! measured this at a tenth of `BinaryCopyInWriter`'s client CPU). [`Loader::finish`] adds the
//! primary key, analyzes, and swaps: a rename when nothing depends on the target, or `TRUNCATE` +
//! `INSERT … SELECT` when views do, so they keep working. Until that commit the target is
//! untouched, and a dropped `Loader` drops its staging table.

use std::fmt;
use std::io::Write;
use std::str::FromStr;
use std::time::{Duration, Instant};

use crossbeam_channel::Receiver;
use postgres::Client;

use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::reduce::{Run, RunRows};
use crate::sink::connect::{Connection, db_error, quote_ident};

/// Longest identifier PostgreSQL keeps (NAMEDATALEN - 1).
const MAX_IDENTIFIER: usize = 63;

/// A validated target table: `name` or `schema.name`.
///
/// Each part starts with an ASCII letter or `_` and holds only ASCII letters, digits and `_`, at
/// most 63 bytes; it is folded to lower case, as SQL folds an unquoted name, and always quoted
/// when used. Anything else is refused before the database is touched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableName {
    /// The schema, when given.
    pub schema: Option<String>,
    /// The table.
    pub table: String,
}

impl FromStr for TableName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let part = |p: &str| -> Result<String, String> {
            let ok_start = p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
            let ok_rest = p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok_start || !ok_rest {
                return Err(format!(
                    "`{}` is not a table name: use letters, digits and _ (starting with a letter \
                     or _), as `name` or `schema.name`",
                    s.escape_default()
                ));
            }
            if p.len() > MAX_IDENTIFIER {
                return Err(format!(
                    "`{p}` is {} bytes long; PostgreSQL names hold at most {MAX_IDENTIFIER}",
                    p.len()
                ));
            }
            Ok(p.to_ascii_lowercase())
        };
        match s.split_once('.') {
            Some((schema, table)) => Ok(TableName {
                schema: Some(part(schema)?),
                table: part(table)?,
            }),
            None => Ok(TableName {
                schema: None,
                table: part(s)?,
            }),
        }
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.schema {
            Some(schema) => write!(f, "{schema}.{}", self.table),
            None => f.write_str(&self.table),
        }
    }
}

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
}

impl Loader {
    /// Connects and checks all that can be checked before the aggregation, then creates the
    /// staging table.
    pub fn prepare(
        connection: &Connection,
        target: &TableName,
        lock_timeout: Duration,
    ) -> Result<Loader> {
        let mut client = connection.connect_creating_database()?;
        let where_ = connection.shown().to_string();
        let sql_error = |what: &str, e: postgres::Error| db_error(&format!("{where_}: {what}"), &e);

        let schema = match &target.schema {
            Some(schema) => schema.clone(),
            None => client
                .query_one("SELECT current_schema()", &[])
                .map_err(|e| sql_error("cannot read the current schema", e))?
                .get::<_, Option<String>>(0)
                .ok_or_else(|| Error::Database {
                    what: where_.clone(),
                    message: "the search_path names no schema; give --table as schema.name".into(),
                })?,
        };
        let schema_exists: bool = client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )
            .map_err(|e| sql_error("cannot look up the schema", e))?
            .get(0);
        if !schema_exists {
            return Err(Error::Database {
                what: where_,
                message: format!(
                    "schema {schema} does not exist; create it or choose another --table"
                ),
            });
        }

        let qualified = format!("{schema}.{}", target.table);
        let locked: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1))",
                &[&format!("custagg {qualified}")],
            )
            .map_err(|e| sql_error("cannot take the advisory lock", e))?
            .get(0);
        if !locked {
            return Err(Error::Database {
                what: where_,
                message: format!(
                    "another custagg run is loading {qualified} right now; wait for it to end"
                ),
            });
        }

        // The target, if it exists, must be a table we can replace.
        let existing = client
            .query_opt(
                "SELECT c.relkind::text, pg_has_role(c.relowner, 'MEMBER'), \
                        has_table_privilege(c.oid, 'TRUNCATE, INSERT') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &target.table],
            )
            .map_err(|e| sql_error("cannot look up the target table", e))?;
        if let Some(row) = existing {
            let kind: String = row.get(0);
            let (owner, can_refill): (bool, bool) = (row.get(1), row.get(2));
            if kind != "r" && kind != "p" {
                return Err(Error::Database {
                    what: where_,
                    message: format!(
                        "{qualified} exists and is not a table (relkind {kind}); choose another --table"
                    ),
                });
            }
            if !owner && !can_refill {
                return Err(Error::Database {
                    what: where_,
                    message: format!(
                        "{} may not replace {qualified}: it must own the table or hold TRUNCATE and INSERT on it",
                        connection.shown().split('@').next().unwrap_or("this user")
                    ),
                });
            }
        }

        let staging = staging_name(&qualified);
        let mut loader = Loader {
            client,
            schema,
            table: target.table.clone(),
            staging,
            lock_timeout,
            staging_exists: false,
            times: LoadTimes::default(),
        };
        // Holding the advisory lock, any staging table of this target is a killed run's.
        let sql = format!(
            "DROP TABLE IF EXISTS {staging}; \
             CREATE TABLE {staging} (customer_id text NOT NULL, favourite_product text NOT NULL, \
                                     longest_streak integer NOT NULL)",
            staging = loader.staging_ident()
        );
        loader.client.batch_execute(&sql).map_err(|e| {
            sql_error(
                &format!("cannot create a table in schema {}", loader.schema),
                e,
            )
        })?;
        loader.staging_exists = true;
        Ok(loader)
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
        let mut busy = Duration::ZERO;
        let mut writer = self
            .client
            .copy_in(&sql)
            .map_err(|e| db_error("cannot start the COPY", &e))?;
        let mut buf = Vec::with_capacity(1 << 20);
        buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
        let mut send = |buf: &mut Vec<u8>, writer: &mut postgres::CopyInWriter<'_>| {
            let started = Instant::now();
            let result = writer.write_all(buf);
            busy += started.elapsed();
            buf.clear();
            result
        };
        for run in runs {
            for row in RunRows::new(&run.bytes) {
                encode_copy_row(
                    &mut buf,
                    row.customer_id,
                    row.favourite_product,
                    row.longest_streak,
                );
                if buf.len() >= 1 << 20 {
                    // A write error means the server ended the COPY; `finish` says why.
                    if send(&mut buf, &mut writer).is_err() {
                        break;
                    }
                    crate::faults::point("copy");
                }
            }
        }
        buf.extend_from_slice(&(-1i16).to_be_bytes()); // trailer
        let _ = send(&mut buf, &mut writer);
        let started = Instant::now();
        let rows = writer
            .finish()
            .map_err(|e| db_error(&format!("{}: the COPY failed", self.target()), &e))?;
        self.times.copy = busy + started.elapsed();
        Ok(rows)
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

    /// The swap transaction. Returns whether the target was refilled in place (views depend on it).
    fn swap(&mut self) -> Result<bool> {
        let target = self.ident(&self.table);
        let staging = self.staging_ident();
        let target_name = self.target();
        let lock_ms = self.lock_timeout.as_millis().max(1);
        let fail = |what: &str, e: postgres::Error| {
            if e.code() == Some(&postgres::error::SqlState::LOCK_NOT_AVAILABLE) {
                return Error::Database {
                    what: target_name.clone(),
                    message: format!(
                        "the table is locked by another session and stayed locked for {} ms \
                         (lock_timeout); the table is unchanged, try again when it is free",
                        lock_ms
                    ),
                };
            }
            db_error(&format!("{target_name}: {what}"), &e)
        };
        let (schema, table, stage) = (
            self.schema.clone(),
            self.table.clone(),
            self.staging.clone(),
        );
        let mut tx = self
            .client
            .transaction()
            .map_err(|e| fail("cannot begin the swap", e))?;
        tx.batch_execute(&format!("SET LOCAL lock_timeout = {lock_ms}"))
            .map_err(|e| fail("cannot set lock_timeout", e))?;
        let existing: Option<u32> = tx
            .query_opt(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &table],
            )
            .map_err(|e| fail("cannot look up the table", e))?
            .map(|row| row.get(0));

        let mut refilled = false;
        match existing {
            None => {
                tx.batch_execute(&format!(
                    "ALTER TABLE {staging} RENAME TO {}",
                    quote_ident(&table)
                ))
                .map_err(|e| fail("cannot rename the new table into place", e))?;
            }
            Some(oid) => {
                tx.batch_execute(&format!("LOCK TABLE {target} IN ACCESS EXCLUSIVE MODE"))
                    .map_err(|e| fail("cannot lock the table", e))?;
                let dependents: bool = tx
                    .query_one(
                        "SELECT EXISTS (SELECT 1 FROM pg_depend WHERE refclassid = 'pg_class'::regclass \
                         AND refobjid = $1 AND deptype = 'n')",
                        &[&oid],
                    )
                    .map_err(|e| fail("cannot look up dependent objects", e))?
                    .get(0);
                if dependents {
                    // A rename would leave views pointing at the old table: refill it instead.
                    tx.batch_execute(&format!(
                        "TRUNCATE {target}; \
                         INSERT INTO {target} (customer_id, favourite_product, longest_streak) \
                         SELECT customer_id, favourite_product, longest_streak FROM {staging}; \
                         DROP TABLE {staging}"
                    ))
                    .map_err(|e| fail("cannot refill the table in place", e))?;
                    refilled = true;
                } else {
                    // Privileges and owner of the old table, granted again on the new one. Every
                    // name comes from the catalog through quote_ident: no user text in SQL.
                    let grants: Vec<String> = tx
                        .query(
                            "SELECT 'GRANT ' || a.privilege_type || ' ON ' || $2 || ' TO ' || \
                                    CASE WHEN a.grantee = 0 THEN 'PUBLIC' \
                                         ELSE quote_ident(pg_get_userbyid(a.grantee)) END || \
                                    CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END \
                             FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = $1",
                            &[&oid, &target],
                        )
                        .map_err(|e| fail("cannot read the table's privileges", e))?
                        .iter()
                        .map(|row| row.get(0))
                        .collect();
                    let owner: Option<String> = tx
                        .query_one(
                            "SELECT CASE WHEN relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user) \
                                    THEN quote_ident(pg_get_userbyid(relowner)) END \
                             FROM pg_class WHERE oid = $1",
                            &[&oid],
                        )
                        .map_err(|e| fail("cannot read the table's owner", e))?
                        .get(0);
                    tx.batch_execute(&format!(
                        "DROP TABLE {target}; ALTER TABLE {staging} RENAME TO {}",
                        quote_ident(&table)
                    ))
                    .map_err(|e| fail("cannot replace the table", e))?;
                    for grant in &grants {
                        tx.batch_execute(grant)
                            .map_err(|e| fail("cannot grant the old privileges again", e))?;
                    }
                    if let Some(owner) = owner {
                        tx.batch_execute(&format!("ALTER TABLE {target} OWNER TO {owner}"))
                            .map_err(|e| fail("cannot give the table back to its owner", e))?;
                    }
                }
            }
        }
        if !refilled {
            // Name the new primary key after the table, unless that name is taken.
            let wanted = truncate_identifier(&format!("{table}_pkey"));
            let taken: bool = tx
                .query_one(
                    "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                     WHERE n.nspname = $1 AND c.relname = $2)",
                    &[&schema, &wanted],
                )
                .map_err(|e| fail("cannot look up index names", e))?
                .get(0);
            if !taken {
                let current = truncate_identifier(&format!("{stage}_pkey"));
                tx.batch_execute(&format!(
                    "ALTER INDEX {}.{} RENAME TO {}",
                    quote_ident(&schema),
                    quote_ident(&current),
                    quote_ident(&wanted)
                ))
                .map_err(|e| fail("cannot rename the primary key", e))?;
            }
        }
        tx.commit().map_err(|e| fail("cannot commit the swap", e))?;
        self.staging_exists = false;
        Ok(refilled)
    }
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

/// The staging table of a target: fixed per target (one run at a time holds its advisory lock),
/// short enough for any target name.
pub fn staging_name(qualified: &str) -> String {
    // FNV-1a: stable across versions and machines, which the cleanup of a killed run relies on.
    let hash = qualified.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("custagg_staging_{hash:016x}")
}

fn truncate_identifier(name: &str) -> String {
    // Names here are ASCII (validated), so any byte index is a char boundary.
    name[..name.len().min(MAX_IDENTIFIER)].to_string()
}

/// Appends one tuple of the binary COPY format: three fields, text as UTF-8, int4 big-endian.
pub fn encode_copy_row(
    buf: &mut Vec<u8>,
    customer_id: &[u8],
    favourite_product: &[u8],
    longest_streak: i32,
) {
    buf.extend_from_slice(&3i16.to_be_bytes());
    buf.extend_from_slice(&(customer_id.len() as i32).to_be_bytes());
    buf.extend_from_slice(customer_id);
    buf.extend_from_slice(&(favourite_product.len() as i32).to_be_bytes());
    buf.extend_from_slice(favourite_product);
    buf.extend_from_slice(&4i32.to_be_bytes());
    buf.extend_from_slice(&longest_streak.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert_eq!(
            "Customers".parse::<TableName>().unwrap(),
            TableName {
                schema: None,
                table: "customers".into()
            }
        );
        let t: TableName = "etl.select".parse().unwrap();
        assert_eq!(
            (t.schema.as_deref(), t.table.as_str()),
            (Some("etl"), "select")
        );
        for bad in [
            "customers; DROP TABLE x",
            "a.b.c",
            "\"quoted\"",
            "",
            ".x",
            "x.",
            "1abc",
            "naïve",
            "a b",
            "x'--",
        ] {
            assert!(bad.parse::<TableName>().is_err(), "{bad}");
        }
        let long = "x".repeat(64);
        assert!(
            long.parse::<TableName>()
                .unwrap_err()
                .contains("at most 63")
        );
        assert!("x".repeat(63).parse::<TableName>().is_ok());
    }

    #[test]
    fn staging_names_are_stable_and_short() {
        let a = staging_name(&format!("public.{}", "y".repeat(63)));
        assert_eq!(a, staging_name(&format!("public.{}", "y".repeat(63))));
        assert!(a.len() + "_pkey".len() <= MAX_IDENTIFIER);
        assert_ne!(staging_name("public.a"), staging_name("public.b"));
    }

    #[test]
    fn copy_row_layout() {
        let mut buf = Vec::new();
        encode_copy_row(&mut buf, b"ab", b"P", 7);
        assert_eq!(
            buf,
            [
                0, 3, 0, 0, 0, 2, b'a', b'b', 0, 0, 0, 1, b'P', 0, 0, 0, 4, 0, 0, 0, 7
            ]
        );
    }
}
