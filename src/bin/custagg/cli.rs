//! The command line (clap derive): flags as the user types them, turned once into a validated
//! [`custagg::Config`].

use std::path::PathBuf;

use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};
use custagg::Config;
use custagg::config::{default_memory_limit, default_threads, parse_memory_limit};
use custagg::db::TableName;
use custagg::db::connect::ConnectOptions;
use custagg::db::tls::SslMode;
use custagg::generate::{GenerateConfig, OutputFormat, Popularity, Shape, parse_duplicates};
use custagg::parse::Delimiter;
use custagg::source::inputs::SourceSpec;
use custagg::source::postgres::{PgSource, Select};

const EXAMPLES: &str = "\
Examples:
  Load a file into PostgreSQL, replacing the table atomically:
    custagg --source data/transaction.csv --database warehouse --table customers

  Write the rows to a local CSV file instead:
    custagg --source data/transaction.csv --output customers.csv

  Read a day's compressed exports (gzip, zstd or Parquet, told from their bytes):
    custagg --source 'exports/2026-12-*.csv.gz' --database warehouse --table customers

  Read standard input, or a table of an operational database:
    zcat day.csv.gz | custagg --source - --output customers.csv
    custagg --source 'postgresql://reader@ops/shop?table=sales.transactions' --output out.csv

  Load each day's new files into what was loaded before (files already loaded are skipped):
    custagg --source 'exports/*.csv.gz' --mode incremental --database warehouse --table customers
    custagg state --database warehouse --table customers

  Skip up to 100 bad rows, keeping them in rejects.csv:
    custagg --source big.csv --output out.csv --max-bad-rows 100 --rejects rejects.csv

  Make a 1 GB test file:
    custagg generate --rows 22000000 --customers 2000000 --seed 1 --out data/1g.csv

Exit codes: 0 success, 1 runtime failure (database, I/O), 2 usage error, 3 bad input data.";

/// Aggregate a huge delimited file of retail transactions by customer — each customer's
/// favourite product and longest streak of consecutive purchase days — into PostgreSQL or CSV.
#[derive(Debug, Parser)]
#[command(
    name = "custagg",
    version,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,

    #[command(flatten)]
    pub run: RunArgs,
}

/// Subcommands besides the main run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a deterministic synthetic transactions file in the sample's format.
    Generate(GenerateArgs),
    /// Print what a table loaded with --mode incremental holds: its ledger of loaded sources
    /// and the size of its state.
    State(StateArgs),
    /// Print a shell completion script to standard output.
    #[command(after_help = "Example: custagg completions bash > /etc/bash_completion.d/custagg")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output.
    #[command(after_help = "Example: custagg man > custagg.1 && man ./custagg.1")]
    Man,
}

/// Flags of the main run.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Where the transactions are; repeat it to read several as one input, in order. A file
    /// (plain delimited text, gzip, zstd or Parquet, told from its first bytes), a directory
    /// (its files, sorted by name), a glob ('exports/2026-*.csv.gz', expanded by custagg), `-`
    /// for standard input, or a PostgreSQL table: 'postgresql://host/db?table=schema.name'.
    /// Text has a header line naming custId, transactionDate, productSold and unitsSold (any
    /// order, any case; other columns are ignored), as Parquet names its columns.
    #[arg(
        long,
        value_name = "PATH|-|URL",
        env = "CUSTAGG_SOURCE",
        required_unless_present = "source_query"
    )]
    pub source: Vec<SourceSpec>,

    /// Read the rows a query returns (one SELECT, run read-only in one snapshot) from the
    /// database of --source-db-url, after any --source.
    #[arg(
        long,
        value_name = "SQL",
        env = "CUSTAGG_SOURCE_QUERY",
        requires = "source_db_url"
    )]
    pub source_query: Option<String>,

    /// The database --source-query reads: postgresql://user@host:port/db; what it leaves out
    /// comes from the PG* variables.
    #[arg(
        long,
        value_name = "URL",
        env = "CUSTAGG_SOURCE_DB_URL",
        hide_env_values = true,
        requires = "source_query"
    )]
    pub source_db_url: Option<String>,

    /// Target table, `name` or `schema.name` (letters, digits and _; folded to lower case);
    /// replaced atomically at the end of the run.
    #[arg(
        long,
        value_name = "NAME",
        env = "CUSTAGG_TABLE",
        required_unless_present = "output"
    )]
    pub table: Option<TableName>,

    #[command(flatten)]
    pub connect: ConnectArgs,

    /// How the table is loaded: `replace` recomputes it from the sources given and swaps it in
    /// atomically; `incremental` merges the sources not loaded before into what was loaded
    /// (state kept in <table>_custagg_state and <table>_custagg_ledger), updating the rows of
    /// the customers they touch, in one transaction.
    #[arg(long, value_name = "MODE", env = "CUSTAGG_MODE", default_value = "replace",
          value_parser = ["replace", "incremental"])]
    pub mode: String,

    /// With --mode incremental: take sources whose content the ledger already holds again
    /// (their rows are added a second time; nothing is subtracted).
    #[arg(long, env = "CUSTAGG_RELOAD")]
    pub reload: bool,

    /// Seconds the final swap waits for a lock on the target before giving up (the table is then
    /// left as it was).
    #[arg(
        long,
        value_name = "SECONDS",
        env = "CUSTAGG_LOCK_TIMEOUT",
        default_value_t = 10.0
    )]
    pub lock_timeout: f64,

    /// Write the rows to this CSV file (sorted by customer_id) instead of PostgreSQL; it appears
    /// whole at the end or not at all. /dev/stdout or a pipe gets the rows as they come.
    #[arg(long, value_name = "FILE.csv", env = "CUSTAGG_OUTPUT")]
    pub output: Option<PathBuf>,

    /// Field delimiter of the source: one ASCII character, or `\t` for a tab.
    #[arg(
        long,
        default_value = "|",
        value_name = "CHAR",
        env = "CUSTAGG_DELIMITER"
    )]
    pub delimiter: Delimiter,

    /// Worker threads [default: all cores].
    #[arg(
        long,
        value_name = "N",
        env = "CUSTAGG_THREADS",
        value_parser = clap::value_parser!(u16).range(1..=1024)
    )]
    pub threads: Option<u16>,

    /// Memory budget for buffered records, e.g. 512MB or 2GiB (MB = 10^6, MiB = 2^20);
    /// beyond half of it, partitions spill to --spill-dir. Without it: at most a quarter of
    /// RAM, and partitions spill beyond 64 MiB (a few percent slower than keeping them all,
    /// a third of the memory) [default: a quarter of RAM].
    #[arg(long, value_name = "SIZE", env = "CUSTAGG_MEMORY_LIMIT", value_parser = parse_memory_limit)]
    pub memory_limit: Option<u64>,

    /// Directory for spill files (a private subdirectory is made and removed) [default: the
    /// system temporary directory].
    #[arg(long, value_name = "DIR", env = "CUSTAGG_SPILL_DIR")]
    pub spill_dir: Option<PathBuf>,

    /// Bad rows that may be skipped (each written to --rejects); one more ends the run, exit 3.
    #[arg(
        long,
        value_name = "N",
        env = "CUSTAGG_MAX_BAD_ROWS",
        default_value_t = 0
    )]
    pub max_bad_rows: u64,

    /// Where skipped bad rows go: CSV of line (a Parquet file's row), column, reason, the record
    /// and its file [default: <table>.rejects.csv, or <output>.rejects.csv].
    #[arg(long, value_name = "FILE", env = "CUSTAGG_REJECTS")]
    pub rejects: Option<PathBuf>,

    /// Print nothing but errors: no progress bars, no summary.
    #[arg(long, short, env = "CUSTAGG_QUIET")]
    pub quiet: bool,

    /// Also write the summary as JSON to this file, for schedulers: rows read and rejected,
    /// customers, bytes, seconds per phase, peak memory, exit status (written on failure too).
    #[arg(long, value_name = "FILE.json", env = "CUSTAGG_REPORT")]
    pub report: Option<PathBuf>,

    /// Spill every partition to disk even when it fits in memory (for tests).
    #[arg(long, hide = true)]
    pub force_spill: bool,

    /// Target chunk size in bytes (for tests).
    #[arg(long, hide = true, value_parser = |s: &str| parse_size::parse_size(s))]
    pub chunk_size: Option<u64>,

    /// Parse and check every row, then drop it: the output is empty (timing only, for
    /// scripts/bench.sh; with --output only, so that no table is ever replaced by an empty one).
    #[arg(long, hide = true, requires = "output")]
    pub parse_only: bool,
}

/// Where PostgreSQL is, for a run's target and for `custagg state`.
#[derive(Debug, Args)]
pub struct ConnectArgs {
    /// Database to load into; created when it does not exist.
    #[arg(long, value_name = "NAME", env = "PGDATABASE")]
    pub database: Option<String>,

    /// PostgreSQL host name or socket directory.
    #[arg(long, env = "PGHOST", default_value = "localhost")]
    pub host: String,

    /// PostgreSQL port.
    #[arg(long, env = "PGPORT", default_value_t = 5432)]
    pub port: u16,

    /// PostgreSQL user. The password comes from PGPASSWORD or ~/.pgpass, never from a flag.
    #[arg(long, env = "PGUSER", default_value = "postgres")]
    pub user: String,

    /// A whole connection string (postgresql://user@host:port/db) instead of the flags above.
    #[arg(long, value_name = "URL", env = "DATABASE_URL", hide_env_values = true)]
    pub db_url: Option<String>,

    /// TLS to PostgreSQL, as libpq's sslmode: disable; prefer (encrypt when the server offers
    /// it); require (encrypt or fail); verify-ca (and check the server's certificate against
    /// sslrootcert / PGSSLROOTCERT, by default ~/.postgresql/root.crt, or `system`); verify-full
    /// (and check that it names the host). A client certificate comes from sslcert/sslkey
    /// (PGSSLCERT/PGSSLKEY, by default ~/.postgresql/postgresql.crt and .key) when present.
    /// Applies to the target and to PostgreSQL sources, over their connection strings' sslmode.
    /// [default: the connection string's sslmode, else PGSSLMODE, else prefer]
    #[arg(
        long,
        value_name = "MODE",
        value_parser = clap::builder::PossibleValuesParser::new(SslMode::NAMES)
            .map(|s| s.parse::<SslMode>().expect("a possible value"))
    )]
    pub sslmode: Option<SslMode>,
}

/// Flags of `custagg state`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    custagg state --database warehouse --table customers\n  \
    custagg state --database warehouse --table customers --reset")]
pub struct StateArgs {
    /// The table loaded with --mode incremental, `name` or `schema.name`.
    #[arg(long, value_name = "NAME", env = "CUSTAGG_TABLE")]
    pub table: TableName,

    #[command(flatten)]
    pub connect: ConnectArgs,

    /// Drop the table's incremental state (its states and ledger; the table itself stays), so
    /// that the next incremental load starts afresh, or a replace run is allowed.
    #[arg(long)]
    pub reset: bool,
}

/// Flags of `custagg generate`.
#[derive(Debug, Args)]
#[command(after_help = "Example (about 1 GB, the benchmark set):\n  \
    custagg generate --rows 22000000 --customers 2000000 --seed 1 --out data/1g.csv")]
pub struct GenerateArgs {
    /// Data rows to write (the header not counted).
    #[arg(long, value_name = "N", env = "CUSTAGG_ROWS")]
    pub rows: u64,

    /// Distinct customers; all appear when there are at least as many rows.
    #[arg(long, value_name = "M", env = "CUSTAGG_CUSTOMERS")]
    pub customers: u64,

    /// Distinct product codes: the sample's 48 (`PURA100`…), and beyond them 7-character codes
    /// and 13-digit EAN-style numbers, half each — a large retail catalogue.
    #[arg(long, value_name = "P", env = "CUSTAGG_PRODUCTS", default_value_t = 48,
          value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub products: u64,

    /// Seed: the same seed and counts give the same bytes.
    #[arg(long, value_name = "S", env = "CUSTAGG_SEED", default_value_t = 1)]
    pub seed: u64,

    /// The file to write (replaced atomically; /dev/stdout or a pipe is written as it goes).
    #[arg(long, value_name = "FILE", env = "CUSTAGG_OUT")]
    pub out: PathBuf,

    /// The kind of file: `text` (`|`-delimited, like the sample) or `parquet` (the same rows;
    /// ids as strings, productSold dictionary-encoded, the day as date32, units as int32).
    #[arg(
        long,
        value_name = "KIND",
        env = "CUSTAGG_FORMAT",
        default_value = "text"
    )]
    pub format: OutputFormat,

    /// Customer skew: visits after each customer's first go to index u^K of the customers (u
    /// uniform): 1 uniform, 2 the top 1 % get a tenth of the visits, 8 a few customers with
    /// thousands of rows and most with a handful.
    #[arg(long, value_name = "K", env = "CUSTAGG_SKEW", default_value_t = 2,
          value_parser = clap::value_parser!(u32).range(1..=16))]
    pub skew: u32,

    /// Cluster each customer's visits within this many days of a date of its own [default:
    /// anywhere in the two years].
    #[arg(long, value_name = "DAYS", env = "CUSTAGG_DAY_SPREAD",
          value_parser = clap::value_parser!(u64).range(1..=730))]
    pub day_spread: Option<u64>,

    /// How popularity falls along the catalogue: `skewed` (low codes sell more), `uniform`, or
    /// `geometric[:P]` (each code P % as likely as the one before, 80 by default).
    #[arg(
        long,
        value_name = "KIND",
        env = "CUSTAGG_POPULARITY",
        default_value = "skewed"
    )]
    pub popularity: Popularity,

    /// The share of rows written twice, a per cent (`0.3`).
    #[arg(long, value_name = "PERCENT", env = "CUSTAGG_DUPLICATES", default_value = "1",
          value_parser = parse_duplicates)]
    pub duplicates: u64,

    /// Customer ids zero-padded to at least this many digits [default: 7].
    #[arg(long, value_name = "DIGITS", env = "CUSTAGG_ID_LENGTH",
          value_parser = clap::value_parser!(u64).range(1..=200))]
    pub id_length: Option<u64>,

    /// Print nothing but errors.
    #[arg(long, short, env = "CUSTAGG_QUIET")]
    pub quiet: bool,
}

impl RunArgs {
    /// The validated configuration of the run.
    pub fn config(&self) -> Config {
        let mut sources = self.source.clone();
        if let (Some(query), Some(url)) = (&self.source_query, &self.source_db_url) {
            sources.push(SourceSpec::Postgres(PgSource {
                url: url.clone(),
                select: Select::Query(query.clone()),
                sslmode: None,
            }));
        }
        for source in &mut sources {
            if let SourceSpec::Postgres(source) = source
                && self.connect.sslmode.is_some()
            {
                source.sslmode = self.connect.sslmode;
            }
        }
        let rejects = self
            .rejects
            .clone()
            .unwrap_or_else(|| match (&self.table, &self.output) {
                (Some(table), _) => PathBuf::from(format!("{table}.rejects.csv")),
                (None, Some(output)) => output.with_extension("rejects.csv"),
                (None, None) => PathBuf::from("custagg.rejects.csv"),
            });
        Config {
            sources,
            delimiter: self.delimiter,
            threads: self.threads.map_or_else(default_threads, usize::from),
            memory_limit: self.memory_limit.unwrap_or_else(default_memory_limit),
            store_limit: match self.memory_limit {
                Some(_) => None,
                None => Some(custagg::config::DEFAULT_STORE_LIMIT),
            },
            spill_dir: self.spill_dir.clone().unwrap_or_else(std::env::temp_dir),
            force_spill: self.force_spill,
            max_bad_rows: self.max_bad_rows,
            rejects,
            chunk_size: self
                .chunk_size
                .map_or(custagg::config::DEFAULT_CHUNK_SIZE, |n| n.max(1) as usize),
            parse_only: self.parse_only,
            emit: custagg::reduce::Emit::Rows,
        }
    }
}

impl RunArgs {
    /// Where to connect.
    pub fn connect_options(&self) -> ConnectOptions {
        self.connect.options()
    }

    /// Whether the run is incremental.
    pub fn incremental(&self) -> bool {
        self.mode == "incremental"
    }
}

impl ConnectArgs {
    /// Where to connect.
    pub fn options(&self) -> ConnectOptions {
        ConnectOptions {
            url: self.db_url.clone(),
            host: self.host.clone(),
            port: self.port,
            user: self.user.clone(),
            database: self.database.clone(),
            sslmode: self.sslmode,
        }
    }
}

impl RunArgs {
    /// The swap's lock timeout.
    pub fn lock_timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs_f64(self.lock_timeout.clamp(0.001, 86_400.0))
    }
}

impl GenerateArgs {
    /// The generator's configuration.
    pub fn config(&self) -> GenerateConfig {
        GenerateConfig {
            rows: self.rows,
            customers: self.customers,
            products: self.products,
            seed: self.seed,
            out: self.out.clone(),
            format: self.format,
            shape: Shape {
                skew: self.skew,
                day_spread: self.day_spread,
                popularity: self.popularity,
                duplicates_bp: self.duplicates,
                id_length: self.id_length.map(|n| n as usize),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
