//! The library's one error type: what failed and where, in words a user can act on.
//!
//! Every variant knows its exit code (contract §6: 1 runtime failure, 2 usage, 3 bad input), so the
//! binary only prints the message and exits with `Error::exit_code`.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in a run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call on a file or directory failed.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        path: PathBuf,
        action: &'static str,
        source: io::Error,
    },
    /// The input file as a whole is unusable: empty, no header, a required column missing.
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    /// The first bad row, when bad rows are not allowed (the default).
    #[error("{0}")]
    BadRow(Box<BadRow>),
    /// A bad row beyond what `--max-bad-rows` allows, or one that can never be skipped.
    #[error("{row}\n{why}")]
    TooManyBadRows { row: Box<BadRow>, why: String },
    /// The command line or the configuration is wrong.
    #[error("{0}")]
    Usage(String),
    /// PostgreSQL refused or failed something; `message` is the server's words (never a password).
    #[error("{what}: {message}")]
    Database { what: String, message: String },
    /// The arithmetic of an aggregate would overflow (needs more than 2^63 units for one product).
    #[error("customer {customer}: {what} overflows a 64-bit integer")]
    Overflow {
        customer: String,
        what: &'static str,
    },
}

impl Error {
    /// The process exit code for this error (contract §6).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Io { .. } | Error::Overflow { .. } | Error::Database { .. } => 1,
            Error::Usage(_) => 2,
            Error::Input { .. } | Error::BadRow(_) | Error::TooManyBadRows { .. } => 3,
        }
    }

    /// The `Overflow` error of a customer's total units of one product.
    pub fn product_total_overflow(customer: &[u8]) -> Error {
        Error::Overflow {
            customer: String::from_utf8_lossy(customer).into_owned(),
            what: "the total units of a product",
        }
    }

    /// Shorthand for an `Io` error.
    pub fn io(path: impl Into<PathBuf>, action: &'static str, source: io::Error) -> Error {
        Error::Io {
            path: path.into(),
            action,
            source,
        }
    }
}

/// A result with the library's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One row of the input that cannot be aggregated, with where it is and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// The input file.
    pub path: PathBuf,
    /// Index of that file among the run's inputs (0 when there is one).
    pub input: u32,
    /// Byte offset of the record's first byte in the file; for a Parquet file, the row's index.
    pub offset: u64,
    /// Physical line (1-based) on which the record starts; for a Parquet file, the row number.
    pub line: u64,
    /// Whether `line` numbers the rows of a Parquet file rather than lines.
    pub is_row_number: bool,
    /// The column at fault, by its name in the header, or `record` for the record as a whole.
    pub column: String,
    /// What is wrong, in words.
    pub reason: String,
    /// The record's bytes as they stand in the file, without the line end.
    pub raw: Vec<u8>,
    /// Whether skipping this row is impossible because the record boundaries after it are in doubt.
    pub fatal: bool,
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (path, line) = (self.path.display(), self.line);
        if self.is_row_number {
            write!(f, "{path}: row {line}: {}: {}", self.column, self.reason)
        } else {
            write!(f, "{path}:{line}: {}: {}", self.column, self.reason)
        }
    }
}
