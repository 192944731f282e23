//! The validated configuration of a run: what the command line asked for, with every default
//! resolved, in plain fields the pipeline reads.

use std::path::PathBuf;

use crate::parse::Delimiter;
use crate::reduce::Emit;
use crate::source::inputs::SourceSpec;

/// How a run aggregates its source.
#[derive(Clone, Debug)]
pub struct Config {
    /// The sources, as given: read as one input, in order.
    pub sources: Vec<SourceSpec>,
    /// Field delimiter of delimited files (a PostgreSQL source's COPY has its own).
    pub delimiter: Delimiter,
    /// Worker threads for parsing and reducing.
    pub threads: usize,
    /// Memory budget in bytes for buffered records and runs.
    pub memory_limit: u64,
    /// Most bytes of partition blocks kept in memory while the source is read (beyond, they
    /// spill), within half of `memory_limit`; `None`: half of it. An explicit `--memory-limit`
    /// gives `None`, the default limit [`DEFAULT_STORE_LIMIT`].
    pub store_limit: Option<u64>,
    /// Parent directory of the run's spill directory.
    pub spill_dir: PathBuf,
    /// Spill every partition and run to disk, however small the input (for tests).
    pub force_spill: bool,
    /// Bad rows that may be skipped before the run fails.
    pub max_bad_rows: u64,
    /// Where skipped bad rows are written (used when `max_bad_rows > 0`).
    pub rejects: PathBuf,
    /// Target size of a chunk of the source, in bytes.
    pub chunk_size: usize,
    /// Timing only (for `scripts/bench.sh`): parse and check every row, then drop it — nothing
    /// is folded, partitioned or reduced, and the output is empty. What reading the file costs.
    pub parse_only: bool,
    /// What the reduce hands the sink: rows, or states for an incremental load.
    pub emit: Emit,
}

/// Default chunk size: big enough to amortise per-chunk work, small enough to balance workers and
/// to keep few pages of the map resident (the chunks queued and being parsed: a quarter of what
/// 8 MiB chunks hold, at the same speed).
pub const DEFAULT_CHUNK_SIZE: usize = 2 << 20;

impl Config {
    /// A configuration with the defaults of contract §4 for the file, directory or glob
    /// `source`.
    pub fn new(source: impl Into<PathBuf>) -> Config {
        Config::of(vec![SourceSpec::Path(source.into())])
    }

    /// A configuration with the defaults of contract §4 for `sources`.
    pub fn of(sources: Vec<SourceSpec>) -> Config {
        Config {
            sources,
            delimiter: Delimiter::default(),
            threads: default_threads(),
            memory_limit: default_memory_limit(),
            store_limit: Some(DEFAULT_STORE_LIMIT),
            spill_dir: std::env::temp_dir(),
            force_spill: false,
            max_bad_rows: 0,
            rejects: PathBuf::from("custagg.rejects.csv"),
            chunk_size: DEFAULT_CHUNK_SIZE,
            parse_only: false,
            emit: Emit::Rows,
        }
    }
}

/// All cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A quarter of the machine's memory (1 GiB when it cannot be read).
pub fn default_memory_limit() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024 / 4)
        })
        .unwrap_or(1 << 30)
}

/// Bytes of partition blocks kept in memory when no `--memory-limit` is given. The default limit
/// (a quarter of the machine) is a ceiling, not a target: blocks spilled beyond this are written
/// once and read back once, mostly from the page cache, which the kernel can write out and take
/// back under pressure while a process's own memory it cannot. On the 1 GB benchmark files this
/// costs 1–2 % of the time (about 10 % with 100,000 product codes) and takes the peak from
/// 145–330 MB to about 110 MB (BENCHMARKS.md).
pub const DEFAULT_STORE_LIMIT: u64 = 64 << 20;

/// Smallest memory limit that makes sense: a few chunks' worth of buffers.
pub const MIN_MEMORY_LIMIT: u64 = 16 << 20;

/// Parses a memory size such as `512MB`, `2GiB` or `1000000` (bytes).
/// `MB` and `GB` are powers of ten, `MiB` and `GiB` powers of two.
pub fn parse_memory_limit(text: &str) -> Result<u64, String> {
    let bytes = parse_size::parse_size(text)
        .map_err(|e| format!("`{text}` is not a size like 512MB or 2GiB ({e})"))?;
    if bytes < MIN_MEMORY_LIMIT {
        return Err(format!(
            "`{text}` is below the minimum of {} MiB",
            MIN_MEMORY_LIMIT >> 20
        ));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_limits() {
        assert_eq!(parse_memory_limit("512MB"), Ok(512_000_000));
        assert_eq!(parse_memory_limit("2GiB"), Ok(2 << 30));
        assert_eq!(parse_memory_limit("64MiB"), Ok(64 << 20));
        assert!(parse_memory_limit("lots").is_err());
        assert!(parse_memory_limit("1MB").unwrap_err().contains("minimum"));
        assert!(default_memory_limit() >= 1 << 20);
    }
}
