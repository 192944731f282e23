//! The run's inputs, opened: a mapped text file with its header read, a text stream (a pipe,
//! standard input, a gzip or zstd file) whose header is read as it is decoded, a Parquet file
//! with its footer read, or a PostgreSQL source, connected. Everything that can fail before any
//! row is read fails here, before the read phase starts.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use postgres::Client;

use crate::config::Config;
use crate::error::Result;
use crate::parse::{Delimiter, Header, Layout, REQUIRED_COLUMNS, read_header};
use crate::source::parquet::ParquetFile;
use crate::source::postgres::PgSource;
use crate::source::{Format, Input, Source, expand};

/// One input of the run, opened.
pub(super) enum Opened {
    /// A mapped text file, and its header.
    Mapped { source: Source, header: Header },
    /// Text read front to back; its header once its first chunk is read.
    Stream {
        source: Source,
        header: OnceLock<Header>,
    },
    /// A Parquet file and its footer.
    Parquet { source: Source, file: ParquetFile },
    /// A PostgreSQL source, connected; the connection is taken by the thread that reads it.
    Postgres {
        source: PgSource,
        shown: PathBuf,
        client: Mutex<Option<Box<Client>>>,
        header: OnceLock<Header>,
    },
}

/// How much larger than its file a compressed file's text is taken to be, to size the run.
const COMPRESSION_RATIO: u64 = 5;

impl Opened {
    /// How messages name the input.
    pub(super) fn path(&self) -> &Path {
        match self {
            Opened::Mapped { source, .. }
            | Opened::Stream { source, .. }
            | Opened::Parquet { source, .. } => source.path(),
            Opened::Postgres { shown, .. } => shown,
        }
    }

    /// Where the columns of a text input stand, once its header is read.
    pub(super) fn layout(&self) -> Option<&Layout> {
        match self {
            Opened::Mapped { header, .. } => Some(&header.layout),
            Opened::Stream { header, .. } | Opened::Postgres { header, .. } => {
                header.get().map(|h| &h.layout)
            }
            Opened::Parquet { .. } => None,
        }
    }

    /// The mapped file and its header.
    pub(super) fn mapped(&self) -> Option<(&Source, &Header)> {
        match self {
            Opened::Mapped { source, header } => Some((source, header)),
            _ => None,
        }
    }

    /// The delimiter its text is read with.
    pub(super) fn delimiter(&self, config: &Config) -> Delimiter {
        match self {
            Opened::Postgres { .. } => Delimiter::COMMA,
            _ => config.delimiter,
        }
    }

    /// The bytes the read phase's progress counts for the input, when known before reading
    /// it: a mapped file's text, a Parquet file's columns uncompressed.
    pub(super) fn text_len(&self) -> Option<u64> {
        match self {
            Opened::Mapped { source, .. } => source.len(),
            Opened::Parquet { .. } => self.estimated_len(),
            Opened::Stream { .. } | Opened::Postgres { .. } => None,
        }
    }

    /// About how many bytes of text the input holds, when that can be told before reading it.
    pub(super) fn estimated_len(&self) -> Option<u64> {
        match self {
            Opened::Mapped { source, .. } => source.len(),
            Opened::Stream { source, .. } => match source.format() {
                Some(Format::Text) | None => source.len(),
                Some(_) => source.stored_len().map(|n| n * COMPRESSION_RATIO),
            },
            Opened::Parquet { file, .. } => {
                Some((0..file.row_groups()).map(|g| file.group_bytes(g)).sum())
            }
            Opened::Postgres { .. } => None,
        }
    }
}

/// Expands and opens the sources of `config`, in order.
pub(super) fn open_inputs(config: &Config) -> Result<Vec<Opened>> {
    expand(&config.sources)?
        .into_iter()
        .map(|input| open_input(input, config))
        .collect()
}

fn open_input(input: Input, config: &Config) -> Result<Opened> {
    let source = match input {
        Input::File(path) => Source::open(&path)?,
        Input::Stdin => Source::stdin()?,
        Input::Postgres(source) => {
            let client = source.connect()?;
            return Ok(Opened::Postgres {
                shown: PathBuf::from(source.shown()),
                source,
                client: Mutex::new(Some(Box::new(client))),
                header: OnceLock::new(),
            });
        }
    };
    if source.format() == Some(Format::Parquet) {
        let file = source.file().expect("a Parquet file is not empty");
        let file = ParquetFile::open(source.path(), file, REQUIRED_COLUMNS)?;
        return Ok(Opened::Parquet { source, file });
    }
    match source.bytes() {
        Some(bytes) => {
            let header = read_header(source.path(), bytes, config.delimiter)?;
            source.release(0..header.data_start);
            Ok(Opened::Mapped { source, header })
        }
        None => Ok(Opened::Stream {
            source,
            header: OnceLock::new(),
        }),
    }
}
