//! Connecting to PostgreSQL: settings from flags, the `PG*` variables or a URL, the password from
//! `PGPASSWORD` or `~/.pgpass`, TLS as libpq's `sslmode` has it ([`super::tls`]), a connect
//! timeout, and the target database created when missing.
//!
//! Nothing here ever formats a password: errors name the server as `user@host:port/database`.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use postgres::Client;
use postgres::config::Host;

use super::tls::{SslMode, Tls, split_tls_params};
use crate::error::{Error, Result};

/// How long to wait for a connection before giving up.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and as whom to connect.
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    /// A whole connection string (`postgresql://…` or `key=value …`); the other fields fill in
    /// only what it leaves out.
    pub url: Option<String>,
    /// Host name, address or Unix socket directory.
    pub host: String,
    /// Port.
    pub port: u16,
    /// User name.
    pub user: String,
    /// Database; overrides the URL's.
    pub database: Option<String>,
    /// `sslmode`; overrides the URL's, and `PGSSLMODE` applies only when neither says.
    pub sslmode: Option<SslMode>,
}

/// Settings ready to connect with.
#[derive(Clone)]
pub struct Connection {
    config: postgres::Config,
    tls: Tls,
    database: String,
    shown: String,
}

impl Connection {
    /// Resolves `options` and the environment into connection settings.
    pub fn new(options: &ConnectOptions) -> Result<Connection> {
        let (url, mut tls_params) = match &options.url {
            Some(url) => split_tls_params(url)?,
            None => (String::new(), Default::default()),
        };
        let mut config = match &options.url {
            Some(_) => postgres::Config::from_str(&url).map_err(|e| {
                // The parser's message never repeats the URL, so no password can leak through it.
                Error::Usage(format!(
                    "--db-url / DATABASE_URL is not a valid connection string: {e}"
                ))
            })?,
            None => postgres::Config::new(),
        };
        if options.sslmode.is_some() {
            tls_params.sslmode = options.sslmode;
        }
        let tls = Tls::new(&tls_params.or_environment()?)?;
        if config.get_hosts().is_empty() {
            config.host(&options.host);
        }
        if config.get_ports().is_empty() {
            config.port(options.port);
        }
        if config.get_user().is_none() {
            config.user(&options.user);
        }
        let database = match (&options.database, config.get_dbname()) {
            (Some(db), _) => db.clone(),
            (None, Some(db)) => db.to_string(),
            (None, None) => {
                return Err(Error::Usage(
                    "no database given: use --database NAME (or a database in --db-url)".into(),
                ));
            }
        };
        if database.is_empty() || database.len() > 63 || database.contains('\0') {
            return Err(Error::Usage(format!(
                "`{}` is not a database name (1 to 63 bytes, no NUL)",
                database.escape_default()
            )));
        }
        config.dbname(&database);
        config.application_name("custagg");
        config.connect_timeout(CONNECT_TIMEOUT);
        // libpq never encrypts a Unix socket, whatever the mode; nor do we.
        let unix = matches!(config.get_hosts().first(), Some(Host::Unix(_)));
        config.ssl_mode(match unix {
            true => postgres::config::SslMode::Disable,
            false => tls.postgres_mode(),
        });

        let host = match config.get_hosts().first() {
            Some(Host::Tcp(h)) => h.clone(),
            Some(Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let user = config.get_user().unwrap_or("postgres").to_string();
        if config.get_password().is_none() {
            let password = std::env::var("PGPASSWORD")
                .ok()
                .filter(|p| !p.is_empty())
                .or_else(|| pgpass_password(&host, port, &database, &user));
            if let Some(password) = password {
                config.password(password);
            }
        }
        let shown = format!("{user}@{host}:{port}/{database}");
        Ok(Connection {
            config,
            tls,
            database,
            shown,
        })
    }

    /// The database to load into.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `user@host:port/database`, for messages.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The TLS settings in force.
    pub fn tls(&self) -> &Tls {
        &self.tls
    }

    /// Connects to the database.
    pub fn connect(&self) -> Result<Client> {
        self.try_connect(&self.config)
            .map_err(|e| self.connect_error(&e))
    }

    /// Connects to the target database, creating it first when it does not exist.
    pub fn connect_creating_database(&self) -> Result<Client> {
        match self.try_connect(&self.config) {
            Ok(client) => Ok(client),
            Err(e) if e.code() == Some(&postgres::error::SqlState::INVALID_CATALOG_NAME) => {
                self.create_database()?;
                self.connect()
            }
            Err(e) => Err(self.connect_error(&e)),
        }
    }

    /// Whether `client`'s session is encrypted, as the server reports it (`pg_stat_ssl`), in
    /// words for the summary: `TLS 1.3, verify-full` or `not encrypted`.
    pub fn encryption(&self, client: &mut Client) -> Result<String> {
        let row = client
            .query_opt(
                "SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .map_err(|e| db_error(&format!("{}: cannot read pg_stat_ssl", self.shown), &e))?;
        Ok(match row {
            Some(row) if row.get::<_, bool>(0) => {
                let version: Option<String> = row.get(1);
                let version = version
                    .unwrap_or_else(|| "TLS".into())
                    .replace("TLSv", "TLS ");
                format!("{version}, {}", self.tls.checks())
            }
            _ => "not encrypted".into(),
        })
    }

    fn try_connect(
        &self,
        config: &postgres::Config,
    ) -> std::result::Result<Client, postgres::Error> {
        config.connect(self.tls.connector())
    }

    fn connect_error(&self, e: &postgres::Error) -> Error {
        let error = db_error(&format!("cannot connect to {}", self.shown), e);
        match (error, self.tls.hint(e)) {
            (Error::Database { what, message }, Some(hint)) => Error::Database {
                what,
                message: format!("{message}: {hint}"),
            },
            (error, _) => error,
        }
    }

    fn create_database(&self) -> Result<()> {
        let mut last = None;
        for maintenance in ["postgres", "template1"] {
            let mut config = self.config.clone();
            config.dbname(maintenance);
            match self.try_connect(&config) {
                Ok(mut client) => {
                    let sql = format!("CREATE DATABASE {}", quote_ident(&self.database));
                    return match client.batch_execute(&sql) {
                        Ok(()) => Ok(()),
                        // Another run made it in between: fine.
                        Err(e)
                            if e.code() == Some(&postgres::error::SqlState::DUPLICATE_DATABASE) =>
                        {
                            Ok(())
                        }
                        Err(e) => Err(db_error(
                            &format!(
                                "database {} does not exist and cannot be created",
                                self.database
                            ),
                            &e,
                        )),
                    };
                }
                Err(e) => last = Some(e),
            }
        }
        let e = last.expect("tried at least once");
        if self.tls.hint(&e).is_some() {
            return Err(self.connect_error(&e));
        }
        Err(db_error(
            &format!(
                "database {} does not exist, and no maintenance database to create it from",
                self.database
            ),
            &e,
        ))
    }
}

/// Quotes an identifier for SQL: `"name"`, with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Turns a `postgres` error into one line: the server's message, SQLSTATE, detail, hint and
/// context where there are any, or the client-side cause chain.
pub fn db_error(what: &str, e: &postgres::Error) -> Error {
    let message = match e.as_db_error() {
        Some(db) => {
            let mut m = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            for (label, part) in [
                ("detail", db.detail()),
                ("hint", db.hint()),
                ("context", db.where_()),
            ] {
                if let Some(part) = part {
                    m.push_str(&format!("; {label}: {}", part.replace('\n', " / ")));
                }
            }
            m
        }
        None => {
            let mut m = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                let text = s.to_string();
                if !m.contains(&text) {
                    m.push_str(&format!(": {text}"));
                }
                source = s.source();
            }
            m
        }
    };
    Error::Database {
        what: what.to_string(),
        message,
    }
}

/// The password for a connection from the password file (`PGPASSFILE` or `~/.pgpass`), as libpq
/// reads it: `host:port:database:user:password` lines, `*` matching anything, `\` escaping, the
/// first match winning, and the file ignored when others may read it.
fn pgpass_password(host: &str, port: u16, database: &str, user: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let path = match std::env::var_os("PGPASSFILE") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".pgpass"),
    };
    let meta = std::fs::metadata(&path).ok()?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return None;
    }
    let text = std::fs::read_to_string(&path).ok()?;
    // A socket directory is matched as `localhost`, as libpq does.
    let host = if host.starts_with('/') {
        "localhost"
    } else {
        host
    };
    let port = port.to_string();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| pgpass_match(line, [host, &port, database, user]))
}

fn pgpass_match(line: &str, want: [&str; 4]) -> Option<String> {
    let mut fields = Vec::with_capacity(5);
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' if fields.len() < 4 => fields.push(std::mem::take(&mut field)),
            _ => field.push(c),
        }
    }
    fields.push(field);
    if fields.len() != 5 {
        return None;
    }
    let matches = fields[..4]
        .iter()
        .zip(want)
        .all(|(have, want)| have == "*" || have == want);
    matches.then(|| fields.pop().expect("five fields"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pgpass_lines() {
        let want = ["db.example", "5432", "warehouse", "etl"];
        assert_eq!(
            pgpass_match("db.example:5432:warehouse:etl:s3cret", want).as_deref(),
            Some("s3cret")
        );
        assert_eq!(
            pgpass_match("*:*:*:etl:a\\:b\\\\c", want).as_deref(),
            Some("a:b\\c")
        );
        assert_eq!(pgpass_match("*:5433:*:etl:x", want), None);
        assert_eq!(pgpass_match("garbage", want), None);
    }

    #[test]
    fn settings_from_flags_and_url() {
        let options = ConnectOptions {
            url: None,
            host: "h".into(),
            port: 6543,
            user: "u".into(),
            database: Some("d".into()),
            sslmode: None,
        };
        assert_eq!(Connection::new(&options).unwrap().shown(), "u@h:6543/d");

        let options = ConnectOptions {
            url: Some("postgresql://etl:hunter2@db.example:5433/warehouse".into()),
            database: None,
            ..options
        };
        let c = Connection::new(&options).unwrap();
        assert_eq!(c.shown(), "etl@db.example:5433/warehouse");
        assert!(!c.shown().contains("hunter2"));

        let bad = ConnectOptions {
            url: Some("postgresql://etl:hunter2@db.example:notaport/x".into()),
            ..ConnectOptions::default()
        };
        let e = Connection::new(&bad).err().unwrap().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("customers"), "\"customers\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
