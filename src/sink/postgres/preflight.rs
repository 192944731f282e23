//! What is checked before the source is read, so that a wrong password or a missing privilege
//! costs a second, not the whole aggregation: the schema, the advisory lock that makes one run
//! per target at a time, and that the target, if it exists, is a table this user may replace.

use postgres::Client;

use crate::db::connect::{Connection, db_error};
use crate::error::{Error, Result};

/// A connection to the target's database that passed the checks, holding the target's lock.
pub(super) struct Checked {
    pub client: Client,
    /// The target's schema, and `schema.table`.
    pub schema: String,
    pub qualified: String,
    /// How the connection is protected ([`Connection::encryption`]).
    pub encryption: String,
}

/// Connects (creating the database if needed), finds the target's schema, takes the advisory
/// lock on the target and checks that this user may replace it: what a load does first.
pub(super) fn check_target(connection: &Connection, target: &super::TableName) -> Result<Checked> {
    let mut client = connection.connect_creating_database()?;
    let encryption = connection.encryption(&mut client)?;
    let mut checks = Preflight::new(&mut client, connection);
    let schema = checks.schema_of(target)?;
    let qualified = format!("{schema}.{}", target.table);
    checks.lock_target(&qualified)?;
    checks.may_replace(&schema, &target.table, &qualified)?;
    Ok(Checked {
        client,
        schema,
        qualified,
        encryption,
    })
}

/// The checks, on the run's connection.
pub(super) struct Preflight<'c> {
    client: &'c mut Client,
    /// The connection as shown in messages (never with a password).
    shown: String,
}

impl<'c> Preflight<'c> {
    pub(super) fn new(client: &'c mut Client, connection: &Connection) -> Self {
        Preflight {
            client,
            shown: connection.shown().to_string(),
        }
    }

    fn sql_error(&self, what: &str, e: postgres::Error) -> Error {
        db_error(&format!("{}: {what}", self.shown), &e)
    }

    fn refuse(&self, message: String) -> Error {
        Error::Database {
            what: self.shown.clone(),
            message,
        }
    }

    /// The target's schema: the one given, or the current one; it must exist.
    pub(super) fn schema_of(&mut self, target: &super::TableName) -> Result<String> {
        let schema = match &target.schema {
            Some(schema) => schema.clone(),
            None => self
                .client
                .query_one("SELECT current_schema()", &[])
                .map_err(|e| self.sql_error("cannot read the current schema", e))?
                .get::<_, Option<String>>(0)
                .ok_or_else(|| {
                    self.refuse(
                        "the search_path names no schema; give --table as schema.name".into(),
                    )
                })?,
        };
        let exists: bool = self
            .client
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
                &[&schema],
            )
            .map_err(|e| self.sql_error("cannot look up the schema", e))?
            .get(0);
        if !exists {
            return Err(self.refuse(format!(
                "schema {schema} does not exist; create it or choose another --table"
            )));
        }
        Ok(schema)
    }

    /// The session's advisory lock on `qualified`, held until the connection closes: one run
    /// per target at a time, the others refused at once.
    pub(super) fn lock_target(&mut self, qualified: &str) -> Result<()> {
        let locked: bool = self
            .client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtext($1))",
                &[&format!("custagg {qualified}")],
            )
            .map_err(|e| self.sql_error("cannot take the advisory lock", e))?
            .get(0);
        if !locked {
            return Err(self.refuse(format!(
                "another custagg run is loading {qualified} right now; wait for it to end"
            )));
        }
        Ok(())
    }

    /// The target, if it exists, must be a table this user owns or may truncate and insert into.
    pub(super) fn may_replace(&mut self, schema: &str, table: &str, qualified: &str) -> Result<()> {
        let existing = self
            .client
            .query_opt(
                "SELECT c.relkind::text, pg_has_role(c.relowner, 'MEMBER'), \
                        has_table_privilege(c.oid, 'TRUNCATE, INSERT') \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = $1 AND c.relname = $2",
                &[&schema, &table],
            )
            .map_err(|e| self.sql_error("cannot look up the target table", e))?;
        let Some(row) = existing else {
            return Ok(());
        };
        let kind: String = row.get(0);
        let (owner, can_refill): (bool, bool) = (row.get(1), row.get(2));
        if kind != "r" && kind != "p" {
            return Err(self.refuse(format!(
                "{qualified} exists and is not a table (relkind {kind}); choose another --table"
            )));
        }
        if !owner && !can_refill {
            let user = self.shown.split('@').next().unwrap_or("this user");
            return Err(self.refuse(format!(
                "{user} may not replace {qualified}: it must own the table or hold TRUNCATE and \
                 INSERT on it"
            )));
        }
        Ok(())
    }
}
