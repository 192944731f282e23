//! `--report FILE.json`: the figures of a run for a scheduler, written on failure too.

use std::path::Path;
use std::time::Instant;

use custagg::{Error, Summary};

/// The figures of a run as JSON, for schedulers; written on failure too.
pub fn write_report(
    path: &Path,
    summary: Option<&Summary>,
    incremental: Option<&serde_json::Value>,
    error: Option<&str>,
    exit_status: u8,
    started: Instant,
) -> Result<(), Error> {
    let seconds = |d: Option<std::time::Duration>| d.map(|d| d.as_secs_f64());
    let report = serde_json::json!({
        "exit_status": exit_status,
        "error": error,
        "rows_read": summary.map(|s| s.rows_read),
        "rows_rejected": summary.map(|s| s.rows_rejected),
        "rows_aggregated": summary.map(|s| s.rows_aggregated),
        "customers": summary.map(|s| s.customers),
        "bytes": summary.map(|s| s.bytes),
        "partitions": summary.map(|s| s.partitions),
        "spilled_bytes": summary.map(|s| s.spilled_bytes),
        "encryption": summary.and_then(|s| s.encryption.as_deref()),
        "incremental": incremental,
        "seconds": {
            "read": seconds(summary.map(|s| s.read_time)),
            "reduce": seconds(summary.map(|s| s.reduce_time)),
            "write": seconds(summary.map(|s| s.write_time)),
            "copy_during_reduce": seconds(summary.map(|s| s.copy_time)),
            "total": started.elapsed().as_secs_f64(),
        },
        "peak_memory_bytes": summary
            .and_then(|s| s.peak_memory)
            .or_else(custagg::progress::peak_memory),
    });
    let mut file = custagg::atomic::AtomicFile::create(path, "cannot write the report")?;
    file.write_with(|f| {
        serde_json::to_writer_pretty(&mut *f, &report)?;
        std::io::Write::write_all(f, b"\n")
    })?;
    file.commit()
}
