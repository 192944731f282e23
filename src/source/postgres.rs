//! A PostgreSQL source: a table (`--source 'postgresql://…/db?table=schema.name'`) or a query
//! (`--source-query` with `--source-db-url`), read with one `COPY … TO STDOUT` in CSV inside a
//! read-only transaction — one snapshot, nothing written — and streamed into the engine like any
//! other text.
//!
//! The table's name is validated and quoted; a query is the user's own SQL, run as the one
//! statement of a `COPY (…)` (the extended protocol takes no second statement) in a transaction
//! that cannot write.

use std::io::Read;

use postgres::{Client, IsolationLevel};

use crate::db::TableName;
use crate::db::connect::{ConnectOptions, Connection, db_error, quote_ident};
use crate::db::tls::SslMode;
use crate::error::{Error, Result};

/// What a PostgreSQL source reads, and from where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgSource {
    /// The connection string (a URL or `key=value` pairs); what it leaves out comes from the
    /// `PG*` variables, as for the target.
    pub url: String,
    /// The rows to read.
    pub select: Select,
    /// `--sslmode`, over the URL's.
    pub sslmode: Option<SslMode>,
}

/// The rows a PostgreSQL source reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Select {
    /// All rows of a table.
    Table(TableName),
    /// What a query returns.
    Query(String),
}

impl PgSource {
    /// The connection settings.
    pub fn connection(&self) -> Result<Connection> {
        let var = |name: &str, default: &str| {
            std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| default.to_string())
        };
        Connection::new(&ConnectOptions {
            url: Some(self.url.clone()),
            host: var("PGHOST", "localhost"),
            port: var("PGPORT", "5432").parse().unwrap_or(5432),
            user: var("PGUSER", "postgres"),
            database: None,
            sslmode: self.sslmode,
        })
        .map_err(|e| match e {
            Error::Usage(m) => Error::Usage(format!("the PostgreSQL source: {m}")),
            other => other,
        })
    }

    /// How messages name the source: `user@host:port/db` and the table, never a password.
    pub fn shown(&self) -> String {
        let at = self
            .connection()
            .map_or_else(|_| "postgresql".to_string(), |c| c.shown().to_string());
        match &self.select {
            Select::Table(table) => format!("{at}?table={table}"),
            Select::Query(_) => format!("{at} (--source-query)"),
        }
    }

    /// The COPY statement: CSV with a header, so that columns are found by name as in a file.
    pub fn copy_sql(&self) -> String {
        let from = match &self.select {
            Select::Table(TableName { schema, table }) => match schema {
                Some(schema) => format!("{}.{}", quote_ident(schema), quote_ident(table)),
                None => quote_ident(table),
            },
            Select::Query(query) => format!("({})", query.trim().trim_end_matches(';')),
        };
        format!("COPY {from} TO STDOUT (FORMAT csv, HEADER true)")
    }

    /// Connects (before any work, so that a wrong address fails first).
    pub fn connect(&self) -> Result<Client> {
        let connection = self.connection()?;
        connection.connect()
    }

    /// Runs `read` over the CSV text of the source, inside a read-only transaction on `client`.
    pub fn read<T>(
        &self,
        client: &mut Client,
        read: impl FnOnce(Box<dyn Read + Send + '_>) -> Result<T>,
    ) -> Result<T> {
        let what = self.shown();
        let mut tx = client
            .build_transaction()
            .isolation_level(IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .map_err(|e| db_error(&format!("{what}: cannot start a read-only transaction"), &e))?;
        // Dates as YYYY-MM-DD, whatever the server's default.
        tx.batch_execute("SET LOCAL DateStyle = 'ISO, YMD'")
            .map_err(|e| db_error(&what, &e))?;
        let reader = tx
            .copy_out(&self.copy_sql())
            .map_err(|e| db_error(&format!("{what}: cannot read"), &e))?;
        let result = read(Box::new(reader))?;
        tx.commit().map_err(|e| db_error(&what, &e))?;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_statements_quote_names() {
        let table = PgSource {
            url: "postgresql://h/db".into(),
            select: Select::Table("Sales.Tx".parse().unwrap()),
            sslmode: None,
        };
        assert_eq!(
            table.copy_sql(),
            "COPY \"sales\".\"tx\" TO STDOUT (FORMAT csv, HEADER true)"
        );
        let query = PgSource {
            select: Select::Query(" select 1; ".into()),
            ..table
        };
        assert_eq!(
            query.copy_sql(),
            "COPY (select 1) TO STDOUT (FORMAT csv, HEADER true)"
        );
    }
}
