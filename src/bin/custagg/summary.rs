//! The one-screen summary on stderr at the end of a run (contract §7).

use custagg::Summary;

/// The summary, on stderr: what was done, then time per phase, then memory.
pub fn print_summary(s: &Summary, target: &str, config: &custagg::Config) {
    let total = s.read_time + s.reduce_time + s.write_time;
    let rate = |bytes: u64, secs: f64| human_bytes((bytes as f64 / secs.max(1e-9)) as u64);
    let encryption = s
        .encryption
        .as_ref()
        .map_or(String::new(), |e| format!(" ({e})"));
    eprintln!(
        "custagg: {} rows read, {} rejected, {} customers -> {target}{encryption}",
        s.rows_read, s.rows_rejected, s.customers
    );
    if s.rows_rejected > 0 {
        eprintln!("  rejected rows are in {}", config.rejects.display());
    }
    eprintln!(
        "  read    {:>7.2} s   {} at {}/s",
        s.read_time.as_secs_f64(),
        human_bytes(s.bytes),
        rate(s.bytes, s.read_time.as_secs_f64())
    );
    eprintln!(
        "  reduce  {:>7.2} s   {} partitions, {} spilled",
        s.reduce_time.as_secs_f64(),
        s.partitions,
        human_bytes(s.spilled_bytes)
    );
    let copy = if s.copy_time.is_zero() {
        String::new()
    } else {
        format!(
            " (and COPY {:.2} s during the reduce)",
            s.copy_time.as_secs_f64()
        )
    };
    eprintln!("  write   {:>7.2} s{copy}", s.write_time.as_secs_f64());
    eprintln!(
        "  total   {:>7.2} s   {}/s; peak memory {}",
        total.as_secs_f64(),
        rate(s.bytes, total.as_secs_f64()),
        s.peak_memory.map_or("unknown".into(), human_bytes)
    );
}

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
