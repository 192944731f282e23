//! Progress of a run, told to whoever shows it: the binary draws bars on a terminal; tests and
//! quiet runs pass [`NoProgress`].
//!
//! The pipeline calls these from its workers, so implementations must be cheap and `Sync`.

/// The phases of a run, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Reading, parsing and partitioning the source; measured in bytes.
    Read,
    /// Reducing partitions; measured in partitions.
    Reduce,
    /// Writing the CSV output (measured in rows) or finishing the PostgreSQL load (in steps).
    Write,
}

/// Receives progress.
pub trait Progress: Sync {
    /// `phase` begins, with `total` units of work when known.
    fn start(&self, _phase: Phase, _total: Option<u64>) {}
    /// `amount` more units of the current phase are done.
    fn advance(&self, _amount: u64) {}
    /// What the current phase is doing now, in a few words.
    fn step(&self, _what: &str) {}
    /// The run is over (successfully or not).
    fn finish(&self) {}
}

/// Progress that goes nowhere.
pub struct NoProgress;

impl Progress for NoProgress {}

/// Peak resident memory of this process so far, in bytes (`VmHWM`), where the system tells it.
pub fn peak_memory() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn peak_memory_is_known_on_linux() {
        let peak = super::peak_memory().unwrap();
        assert!(peak > 1 << 20, "{peak}");
    }
}
