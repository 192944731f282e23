//! `--mode incremental`: only the sources not loaded before are read, their customers' states
//! merged into the stored ones, and those customers' rows updated, in one transaction (see
//! [`crate::sink::postgres::incremental`]).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{Summary, aggregate_into_copy, thread_pool};
use crate::config::Config;
use crate::db::connect::Connection;
use crate::error::{Error, Result};
use crate::progress::{Phase, Progress, peak_memory};
use crate::reduce::Emit;
use crate::sink::postgres::TableName;
use crate::sink::postgres::incremental::{Incremental, LedgerSource, Merged, PriorLoad};
use crate::source::hash::content_hash;
use crate::source::inputs::SourceSpec;
use crate::source::{Input, expand};
use crate::spill::SpillDir;

/// A source left out of an incremental run, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skipped {
    /// Its content was loaded before.
    LoadedBefore { name: String, prior: PriorLoad },
    /// The same content stands earlier in this run's sources.
    Repeated { name: String, first: String },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Skipped::LoadedBefore { name, prior } => {
                let also = match prior.name == *name {
                    true => String::new(),
                    false => format!(" as {}", prior.name),
                };
                write!(
                    f,
                    "{name}: already loaded on {}{also} ({} rows); skipped (--reload takes it again)",
                    prior.loaded_at, prior.rows
                )
            }
            Skipped::Repeated { name, first } => write!(
                f,
                "{name}: the same content as {first}, earlier in this run; skipped"
            ),
        }
    }
}

/// What an incremental run did.
#[derive(Clone, Debug, Default)]
pub struct IncrementalRun {
    /// The aggregation of the sources taken, unless every one was skipped.
    pub summary: Option<Summary>,
    /// The sources left out.
    pub skipped: Vec<Skipped>,
    /// The sources taken.
    pub loaded: Vec<String>,
    /// What the merge changed.
    pub merged: Merged,
    /// How the connection is protected.
    pub encryption: String,
}

/// Loads the sources of `config` that the target's ledger does not hold (all of them with
/// `reload`) into `target` incrementally.
pub fn run_incremental(
    config: &Config,
    connection: &Connection,
    target: &TableName,
    lock_timeout: Duration,
    reload: bool,
    progress: &dyn Progress,
) -> Result<IncrementalRun> {
    let files = files_of(&config.sources)?;
    let mut loader = Incremental::prepare(connection, target, lock_timeout)?;
    let pool = thread_pool(config.threads)?;
    let hashed = pool.install(|| {
        files
            .into_iter()
            .map(|path| {
                let (bytes, hash) = content_hash(&path)?;
                let name = path.display().to_string();
                Ok((path, LedgerSource { name, bytes, hash }))
            })
            .collect::<Result<Vec<_>>>()
    })?;
    let mut outcome = IncrementalRun {
        encryption: loader.encryption().to_string(),
        ..IncrementalRun::default()
    };
    // The files to read, by path (their ledger names are for showing: not every path is UTF-8).
    let mut taken: Vec<(PathBuf, LedgerSource)> = Vec::new();
    for (path, source) in hashed {
        if !reload && let Some((_, first)) = taken.iter().find(|(_, t)| t.hash == source.hash) {
            let (name, first) = (source.name.clone(), first.name.clone());
            outcome.skipped.push(Skipped::Repeated { name, first });
            continue;
        }
        if !reload && let Some(prior) = loader.loaded_before(&source.hash)? {
            let name = source.name.clone();
            outcome.skipped.push(Skipped::LoadedBefore { name, prior });
            continue;
        }
        taken.push((path, source));
    }
    if taken.is_empty() {
        return Ok(outcome);
    }
    let config = Config {
        sources: taken
            .iter()
            .map(|(path, _)| SourceSpec::Path(path.clone()))
            .collect(),
        emit: Emit::State,
        ..config.clone()
    };
    let spill = SpillDir::create(&config.spill_dir)?;
    let mut load = loader.begin()?;
    let (mut summary, copied) =
        aggregate_into_copy(&config, &pool, &spill, progress, target, |runs| {
            load.copy_states(runs)
        })?;
    let started = Instant::now();
    progress.start(Phase::Write, None);
    progress.step("merging into the stored states");
    if copied != summary.customers {
        return Err(Error::Database {
            what: target.to_string(),
            message: format!(
                "the COPY stored {copied} states, but {} customers were reduced",
                summary.customers
            ),
        });
    }
    let merged = load.merge(spill.path(), summary.customers)?;
    let ledger: Vec<(LedgerSource, u64)> = taken
        .into_iter()
        .map(|(_, source)| source)
        .zip(summary.rows_by_input.iter().copied())
        .collect();
    load.commit(&ledger, merged.customers)?;
    if merged.first {
        loader.vacuum();
    }
    summary.write_time = started.elapsed();
    summary.peak_memory = peak_memory();
    summary.encryption = Some(outcome.encryption.clone());
    outcome.loaded = ledger.iter().map(|(s, _)| s.name.clone()).collect();
    outcome.summary = Some(summary);
    outcome.merged = merged;
    Ok(outcome)
}

/// The files of `sources`; an incremental load hashes each before reading it, so standard input
/// and PostgreSQL sources are refused.
fn files_of(sources: &[SourceSpec]) -> Result<Vec<PathBuf>> {
    expand(sources)?
        .into_iter()
        .map(|input| match input {
            Input::File(path) => Ok(path),
            Input::Stdin => Err(Error::Usage(
                "--mode incremental reads files only: it checks each file's content hash \
                 against the ledger before reading it; save standard input to a file first"
                    .into(),
            )),
            Input::Postgres(source) => Err(Error::Usage(format!(
                "--mode incremental reads files only, not {}: export the day's rows to a file \
                 (or use --mode replace)",
                source.shown()
            ))),
        })
        .collect()
}
