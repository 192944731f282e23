//! The CSV sink: every run written into one file sorted by `customer_id`, atomically.
//!
//! Runs arrive from the reducers in any order; each is sorted, and partitions hold disjoint
//! customers. Runs of range partitions hold disjoint *ranges* and come with their place in
//! customer order: each is formatted by the thread that hands it over and written as soon as the
//! runs before it are (one that comes early waits). Runs of hash partitions (a stream source) are
//! merged at the end, which gives the global byte order whatever the thread count or memory
//! limit: the customers are cut into ranges at quantiles of the runs' indexes, every run is cut
//! at the same customers, and each range is merged and formatted on its own, a few ranges at a
//! time, then written in order. Runs stay in memory within the sink's budget and go to the
//! run's spill files (those of the partitions) beyond it. The output is written to a temporary
//! file beside the target and renamed over it at the end, so a failed run never leaves a
//! half-written file.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use rayon::prelude::*;

use crate::atomic::AtomicFile;
use crate::csv_field::write_field;
use crate::error::Result;
use crate::key::{prefix_key, rekey_past_shared_bytes, sort_by_text};
use crate::progress::Progress;
use crate::reduce::{CustomerRow, Run, RunRows};
use crate::spill::{Extent, SpillDir};

/// The CSV header of the output.
pub const HEADER: &str = "customer_id,favourite_product,longest_streak";

/// Bytes of runs merged by one task: small enough that a few tasks' inputs and outputs fit in
/// memory next to the runs, large enough that a task is worth starting.
const RANGE_BYTES: usize = 4 << 20;

/// Collects runs and writes them, in order or merged, to a CSV file.
pub struct CsvSink<'d> {
    dir: &'d SpillDir,
    budget: usize,
    state: Mutex<State>,
}

struct State {
    output: AtomicFile,
    rows: u64,
    /// Runs of hash partitions, merged at the end.
    merged: Vec<StoredRun>,
    /// Runs of range partitions that came before their turn, as CSV, by place.
    early: BTreeMap<usize, StoredRun>,
    /// The place of the next run of range partitions to write.
    next: usize,
    /// The customer of the last row written in order.
    last: Option<Box<[u8]>>,
    memory_bytes: usize,
}

/// A run (or its CSV), kept in memory or spilled.
struct StoredRun {
    bytes: Stored,
    len: usize,
    index: Vec<(Box<[u8]>, usize)>,
    /// For a run of a range partition, the customers of its first and last rows (none when it is
    /// empty, or kept for the merge).
    bounds: Option<[Box<[u8]>; 2]>,
}

/// Where a stored run's bytes are.
enum Stored {
    Memory(Vec<u8>),
    Spilled(Extent),
}

impl<'d> CsvSink<'d> {
    /// A sink into `path` that keeps at most `budget` bytes of runs in memory. The output is
    /// written beside `path` and replaces it only on [`CsvSink::finish`].
    pub fn new(path: &Path, dir: &'d SpillDir, budget: usize) -> Result<Self> {
        let mut output = AtomicFile::create(path, "cannot write the output file")?;
        output.write_with(|f| writeln!(f, "{HEADER}"))?;
        Ok(CsvSink {
            dir,
            budget,
            state: Mutex::new(State {
                output,
                rows: 0,
                merged: Vec::new(),
                early: BTreeMap::new(),
                next: 0,
                last: None,
                memory_bytes: 0,
            }),
        })
    }

    /// Takes one reduced partition: the run of the range partition at `place` (counted from 0
    /// in customer order) is written as soon as the runs before it are; a run of a hash partition
    /// (no place) is kept for the merge at the end.
    pub fn accept(&self, run: Run, place: Option<usize>) -> Result<()> {
        let Some(place) = place else {
            let mut state = self.state.lock().expect("no panics while locked");
            state.rows += run.rows;
            let stored = state.store(self.dir, self.budget, run.bytes, run.index, None)?;
            state.merged.push(stored);
            return Ok(());
        };
        let bounds = run
            .bounds()
            .map(|(first, last)| [first.into(), last.into()]);
        // Formatted here, in parallel, before taking the lock.
        let mut csv = Vec::with_capacity(run.bytes.len() + run.bytes.len() / 4);
        for row in RunRows::new(&run.bytes) {
            write_row(&mut csv, &row);
        }
        drop(run.index);
        let mut state = self.state.lock().expect("no panics while locked");
        state.rows += run.rows;
        if place != state.next {
            let stored = state.store(self.dir, self.budget, csv, Vec::new(), bounds)?;
            state.early.insert(place, stored);
            return Ok(());
        }
        state.write_next(Cow::Owned(csv), bounds)?;
        loop {
            let next = state.next;
            let Some(mut stored) = state.early.remove(&next) else {
                break;
            };
            if let Stored::Memory(_) = stored.bytes {
                state.memory_bytes -= stored.len;
            }
            let bounds = stored.bounds.take();
            let csv = stored.into_bytes(self.dir)?;
            state.write_next(Cow::Owned(csv), bounds)?;
        }
        Ok(())
    }

    /// Writes what is still to be written (the merge of hash partitions' runs) and moves the
    /// output into place; returns the number of rows written.
    pub fn finish(self, pool: &rayon::ThreadPool, progress: &dyn Progress) -> Result<u64> {
        let mut state = self.state.into_inner().expect("no panics while locked");
        assert!(
            state.early.is_empty(),
            "every range partition's run was written in turn"
        );
        let threads = pool.current_num_threads();
        let (merged, dir) = (&state.merged, self.dir);
        let written = state
            .output
            .write_with(|f| pool.install(|| write_merged(merged, dir, f, threads, progress)))??;
        progress.advance(state.rows - written);
        state.output.commit()?;
        Ok(state.rows)
    }
}

impl State {
    /// Keeps `bytes` in memory within `budget`, else appends them to the spill files.
    fn store(
        &mut self,
        dir: &SpillDir,
        budget: usize,
        bytes: Vec<u8>,
        index: Vec<(Box<[u8]>, usize)>,
        bounds: Option<[Box<[u8]>; 2]>,
    ) -> Result<StoredRun> {
        let len = bytes.len();
        let bytes = if self.memory_bytes + len <= budget {
            self.memory_bytes += len;
            Stored::Memory(bytes)
        } else {
            let action = "cannot spill the reduced rows (is the disk under --spill-dir full?)";
            Stored::Spilled(dir.append(&[&bytes], action)?)
        };
        Ok(StoredRun {
            bytes,
            len,
            index,
            bounds,
        })
    }

    /// Writes the CSV of the run whose turn it is, checking that it follows the last one.
    fn write_next(&mut self, csv: Cow<'_, [u8]>, bounds: Option<[Box<[u8]>; 2]>) -> Result<()> {
        if let Some([first, last]) = bounds {
            assert!(
                self.last.as_ref().is_none_or(|before| *before < first),
                "range partitions hold ascending, disjoint customers"
            );
            self.last = Some(last);
        }
        self.output.write_with(|f| f.write_all(&csv))?;
        self.next += 1;
        Ok(())
    }
}

impl StoredRun {
    /// The bytes `range` of the run, borrowed from memory or read from the spill files.
    fn read<'a>(&'a self, dir: &SpillDir, range: std::ops::Range<usize>) -> Result<Cow<'a, [u8]>> {
        match &self.bytes {
            Stored::Memory(bytes) => Ok(Cow::Borrowed(&bytes[range])),
            Stored::Spilled(extent) => dir.read(extent.slice(range)).map(Cow::Owned),
        }
    }

    /// All the run's bytes: moved out of memory, or read from the spill files.
    fn into_bytes(self, dir: &SpillDir) -> Result<Vec<u8>> {
        match self.bytes {
            Stored::Memory(bytes) => Ok(bytes),
            Stored::Spilled(extent) => dir.read(extent),
        }
    }

    /// Where each of `splits` (ascending customers) cuts the run: the offset of its first row
    /// whose customer is not below the split. Starts with 0 and ends with the run's length.
    fn cuts(&self, dir: &SpillDir, splits: &[&[u8]]) -> Result<Vec<usize>> {
        let mut cuts = Vec::with_capacity(splits.len() + 2);
        cuts.push(0);
        for &split in splits {
            let i = self
                .index
                .partition_point(|(customer, _)| &**customer < split);
            if i == 0 {
                cuts.push(0);
                continue;
            }
            // The cut is among the rows from index entry i - 1 (below) to entry i.
            let from = self.index[i - 1].1;
            let to = self.index.get(i).map_or(self.len, |&(_, offset)| offset);
            let span = self.read(dir, from..to)?;
            let mut rows = RunRows::new(&span);
            let mut below = 0; // bytes of the span's rows before the split
            while rows.next().is_some_and(|row| row.customer_id < split) {
                below = span.len() - rows.remaining();
            }
            cuts.push(from + below);
        }
        cuts.push(self.len);
        Ok(cuts)
    }
}

/// Merges the runs of hash partitions into `file`; returns the number of rows written. Errors
/// of writing `file` come out as the outer `Err`, those of reading runs back from `dir` as the
/// inner one (each names its own file).
fn write_merged(
    stored: &[StoredRun],
    dir: &SpillDir,
    file: &File,
    threads: usize,
    progress: &dyn Progress,
) -> io::Result<Result<u64>> {
    if stored.is_empty() {
        return Ok(Ok(0));
    }
    let splits = merge_splits(stored, threads);
    let cuts: Result<Vec<Vec<usize>>> = stored
        .par_iter()
        .map(|run| run.cuts(dir, &splits))
        .collect();
    let cuts = match cuts {
        Ok(cuts) => cuts,
        Err(e) => return Ok(Err(e)),
    };
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut rows = 0;
    let all: Vec<usize> = (0..=splits.len()).collect();
    // A few ranges at a time, so that only their output waits in memory to be written in order.
    for wave in all.chunks(threads * 2) {
        let merged: Result<Vec<(Vec<u8>, u64)>> = wave
            .par_iter()
            .map(|&range| {
                let spans: Vec<Cow<'_, [u8]>> = stored
                    .iter()
                    .zip(&cuts)
                    .map(|(run, cuts)| run.read(dir, cuts[range]..cuts[range + 1]))
                    .collect::<Result<_>>()?;
                Ok(merge_range(&spans))
            })
            .collect();
        let merged = match merged {
            Ok(merged) => merged,
            Err(e) => return Ok(Err(e)),
        };
        for (bytes, n) in merged {
            out.write_all(&bytes)?;
            rows += n;
            progress.advance(n);
        }
    }
    out.flush()?;
    Ok(Ok(rows))
}

/// Where to cut the customers into ranges merged apart: at quantiles of every run's indexed
/// customers; hash partitioning makes each run a sample of all customers, so the ranges come
/// out of about equal size. (Customers, not their 8-byte keys: ids that all share their first
/// eight bytes still spread over ranges.)
fn merge_splits(stored: &[StoredRun], threads: usize) -> Vec<&[u8]> {
    let total: usize = stored.iter().map(|r| r.len).sum();
    let ranges = (total / RANGE_BYTES + 1).max(threads * 4);
    let mut indexed: Vec<&[u8]> = stored
        .iter()
        .flat_map(|r| r.index.iter().map(|(customer, _)| &**customer))
        .collect();
    indexed.sort_unstable();
    let mut splits: Vec<&[u8]> = (1..ranges)
        .filter_map(|i| indexed.get(i * indexed.len() / ranges).copied())
        .collect();
    splits.dedup();
    splits
}

/// Merges sorted spans of rows into CSV lines; returns them and the number of rows.
///
/// With hundreds of runs and a few hundred rows of each in a range, sorting the range's rows by
/// key does as well as a heap of cursors, with less code: every row is placed by one integer
/// sort of (key, span, offset), and only rows with equal keys — customers longer than eight
/// bytes sharing their first eight — are then compared by their bytes.
fn merge_range(spans: &[Cow<'_, [u8]>]) -> (Vec<u8>, u64) {
    let row_at = |entry: u128| {
        let span = &spans[(entry >> 32) as u32 as usize];
        RunRows::new(&span[entry as u32 as usize..])
            .next()
            .expect("entries point at rows")
    };
    let bytes: usize = spans.iter().map(|s| s.len()).sum();
    let mut entries: Vec<u128> = Vec::with_capacity(bytes / 12);
    for (s, span) in spans.iter().enumerate() {
        let mut rows = RunRows::new(span);
        let mut offset = 0;
        while let Some(row) = rows.next() {
            let key = u128::from(prefix_key(row.customer_id)) << 64;
            entries.push(key | (s as u128) << 32 | offset as u128);
            offset = span.len() - rows.remaining();
        }
    }
    // Ids that all share their first eight bytes are keyed by the bytes after them.
    rekey_past_shared_bytes(
        &mut entries,
        |entry| row_at(entry).customer_id,
        |low, _| low,
    );
    // A customer is in one run, once: rows with equal keys are always different customers.
    sort_by_text(&mut entries, |_| true, |entry| row_at(entry).customer_id);

    let mut out = Vec::with_capacity(bytes + bytes / 4);
    for &entry in &entries {
        write_row(&mut out, &row_at(entry));
    }
    (out, entries.len() as u64)
}

/// Appends `row` as a CSV line.
fn write_row(out: &mut Vec<u8>, row: &CustomerRow<'_>) {
    write_field(out, row.customer_id).expect("writing to memory");
    out.push(b',');
    write_field(out, row.favourite_product).expect("writing to memory");
    out.push(b',');
    out.extend_from_slice(itoa::Buffer::new().format(row.longest_streak).as_bytes());
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(ids: &[&str]) -> Run {
        let mut run = Run::default();
        for id in ids {
            run.push(&CustomerRow {
                customer_id: id.as_bytes(),
                favourite_product: b"P",
                longest_streak: 1,
            });
        }
        run
    }

    /// A directory for the test, the spill directory in it, and the output's path.
    fn place() -> (tempfile::TempDir, SpillDir, std::path::PathBuf) {
        let parent = tempfile::tempdir().unwrap();
        let dir = SpillDir::create(parent.path()).unwrap();
        let out = parent.path().join("out.csv");
        (parent, dir, out)
    }

    fn ids_of(text: &str) -> Vec<&str> {
        text.lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect()
    }

    #[test]
    fn writes_runs_of_ranges_in_their_turn_whatever_order_they_come_in() {
        let (_parent, dir, out) = place();
        // A budget of 10 bytes: most early runs wait in the spill file.
        let sink = CsvSink::new(&out, &dir, 10).unwrap();
        sink.accept(run(&["d", "e"]), Some(2)).unwrap();
        sink.accept(run(&[]), Some(1)).unwrap();
        sink.accept(run(&["f"]), Some(4)).unwrap();
        assert!(dir.written_bytes() > 0);
        sink.accept(run(&["B", "a"]), Some(0)).unwrap();
        sink.accept(run(&[]), Some(3)).unwrap();
        let pool = crate::pipeline::thread_pool(2).unwrap();
        assert!(!out.exists(), "the output appears only when finished");
        assert_eq!(sink.finish(&pool, &crate::progress::NoProgress).unwrap(), 5);
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(ids_of(&text), ["B", "a", "d", "e", "f"]);
        assert!(text.starts_with(HEADER));
    }

    #[test]
    #[should_panic(expected = "ascending, disjoint")]
    fn runs_of_ranges_out_of_order_are_a_bug_not_an_output() {
        let (_parent, dir, out) = place();
        let sink = CsvSink::new(&out, &dir, 1 << 20).unwrap();
        sink.accept(run(&["b", "c"]), Some(0)).unwrap();
        let _ = sink.accept(run(&["a"]), Some(1));
    }

    #[test]
    fn merges_runs_from_memory_and_disk_in_byte_order() {
        let (_parent, dir, out) = place();
        let sink = CsvSink::new(&out, &dir, 12).unwrap();
        sink.accept(run(&["a", "c", "e"]), None).unwrap();
        sink.accept(run(&["B", "d"]), None).unwrap(); // beyond the budget: on disk
        assert!(dir.written_bytes() > 0);
        sink.accept(run(&[]), None).unwrap();
        let pool = crate::pipeline::thread_pool(2).unwrap();
        assert_eq!(sink.finish(&pool, &crate::progress::NoProgress).unwrap(), 5);
        let text = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<&str> = text.lines().skip(1).map(|l| &l[..1]).collect();
        assert_eq!(ids, ["B", "a", "c", "d", "e"]);
        assert!(text.starts_with(HEADER));
    }

    /// Hands the sink (of `budget` bytes in memory) one run of each of `runs` (each sorted and
    /// deduplicated here), finishes it with `threads` and checks that every id comes out once,
    /// in byte order; returns the spill directory's bytes written.
    fn merges_in_byte_order(runs: Vec<Vec<String>>, budget: usize, threads: usize) -> u64 {
        let (_parent, dir, out) = place();
        let sink = CsvSink::new(&out, &dir, budget).unwrap();
        let mut all = Vec::new();
        for mut ids in runs {
            ids.sort();
            ids.dedup();
            all.extend(ids.iter().cloned());
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            sink.accept(run(&refs), None).unwrap();
        }
        all.sort();
        all.dedup();
        let pool = crate::pipeline::thread_pool(threads).unwrap();
        assert_eq!(
            sink.finish(&pool, &crate::progress::NoProgress).unwrap(),
            all.len() as u64
        );
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(ids_of(&text), all);
        dir.written_bytes()
    }

    #[test]
    fn many_runs_cut_into_ranges_merge_in_byte_order() {
        // 40 runs of ids, some sharing long prefixes (equal keys must stay in one range), the
        // first runs in memory and the rest in the spill file.
        let runs = (0..40u32)
            .map(|r| {
                (0..300u32)
                    .filter(|i| (i * 7 + r * 13) % 40 == r % 40 || i % 40 == r)
                    .map(|i| match i % 3 {
                        0 => format!("{:07}", i * 40 + r),
                        1 => format!("CUSTOMER-{}-{r}", i % 5),
                        _ => format!("{}", i * 40 + r),
                    })
                    .collect()
            })
            .collect();
        let spilled = merges_in_byte_order(runs, 4_000, 3);
        assert!(spilled > 0, "the last runs were spilled");
    }

    #[test]
    fn runs_of_ids_sharing_their_first_bytes_merge_in_byte_order() {
        // Zero-padded ids of three widths behind the same 12 zeros, so that a range's rows
        // share their first eight bytes and more, some ids prefixes of others.
        let runs = (0..20u64)
            .map(|r| {
                (0..200u64)
                    .map(|i| i * 20 + r)
                    .map(|n| match n % 3 {
                        0 => format!("000000000000{n:012}"),
                        1 => format!("000000000000{:04}", n % 7_000),
                        _ => format!("000000000000{n:09}"),
                    })
                    .collect()
            })
            .collect();
        merges_in_byte_order(runs, 2_000, 2);
    }
}
