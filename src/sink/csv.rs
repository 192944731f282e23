//! The CSV sink: every run written into one file sorted by `customer_id`, atomically.
//!
//! Runs arrive from the reducers in any order; each is sorted, and partitions hold disjoint
//! customers. Runs of range partitions hold disjoint *ranges*: sorted by their first customer,
//! they are written one after the other, formatted a few pieces at a time in parallel. Runs of
//! hash partitions (a stream source) are merged, which gives the global byte order whatever the
//! thread count or memory limit: the customers are cut into ranges at quantiles of the runs'
//! indexes, every run is cut at the same customers, and each range is merged and formatted on
//! its own, a few ranges at a time, then written in order. Runs stay in memory within the sink's
//! budget and are appended to one spill file beyond it. The output is written to a temporary
//! file beside the target and renamed over it at the end, so a failed run never leaves a
//! half-written file.

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::reduce::{CustomerRow, Run, RunRows, prefix_key, sort_by_text};
use crate::spill::SpillDir;

/// The CSV header of the output.
pub const HEADER: &str = "customer_id,favourite_product,longest_streak";

/// Bytes of runs merged by one task: small enough that a few tasks' inputs and outputs fit in
/// memory next to the runs, large enough that a task is worth starting.
const RANGE_BYTES: usize = 4 << 20;

/// Collects runs and writes them, merged, to a CSV file.
pub struct CsvSink<'d> {
    path: PathBuf,
    dir: &'d SpillDir,
    budget: usize,
    runs: Mutex<Runs>,
}

#[derive(Default)]
struct Runs {
    stored: Vec<StoredRun>,
    memory_bytes: usize,
    rows: u64,
    /// The spill file that runs beyond the budget are appended to, and its length.
    file: Option<(File, PathBuf)>,
    file_len: u64,
}

/// A run kept in memory (`bytes`), or stored in the spill file at `offset`.
struct StoredRun {
    bytes: Option<Vec<u8>>,
    offset: u64,
    len: usize,
    index: Vec<(Box<[u8]>, usize)>,
    /// The customers of its first and last rows (none when it is empty).
    bounds: Option<[Box<[u8]>; 2]>,
}

impl<'d> CsvSink<'d> {
    /// A sink into `path` that keeps at most `budget` bytes of runs in memory.
    pub fn new(path: &Path, dir: &'d SpillDir, budget: usize) -> Self {
        CsvSink {
            path: path.into(),
            dir,
            budget,
            runs: Mutex::default(),
        }
    }

    /// Takes one reduced partition.
    pub fn accept(&self, run: Run) -> Result<()> {
        let mut runs = self.runs.lock().expect("no panics while locked");
        runs.rows += run.rows;
        let len = run.bytes.len();
        let bounds = run
            .bounds()
            .map(|(first, last)| [first.into(), last.into()]);
        if runs.memory_bytes + len <= self.budget {
            runs.memory_bytes += len;
            runs.stored.push(StoredRun {
                bytes: Some(run.bytes),
                offset: 0,
                len,
                index: run.index,
                bounds,
            });
            return Ok(());
        }
        let path = self.dir.path().join("runs");
        let failed = |e| {
            Error::io(
                &path,
                "cannot write the spill file of runs (is the disk under --spill-dir full?)",
                e,
            )
        };
        if runs.file.is_none() {
            let file = File::options()
                .create_new(true)
                .read(true)
                .append(true)
                .open(&path)
                .map_err(failed)?;
            runs.file = Some((file, path.clone()));
        }
        let offset = runs.file_len;
        let (file, _) = runs.file.as_mut().expect("opened above");
        file.write_all(&run.bytes).map_err(failed)?;
        runs.file_len += len as u64;
        runs.stored.push(StoredRun {
            bytes: None,
            offset,
            len,
            index: run.index,
            bounds,
        });
        Ok(())
    }

    /// Merges every run into the output file on `pool`; returns the number of rows written.
    pub fn finish(self, pool: &rayon::ThreadPool, progress: &dyn Progress) -> Result<u64> {
        let runs = self.runs.into_inner().expect("no panics while locked");
        let threads = pool.current_num_threads();
        let mut file = AtomicFile::create(&self.path, "cannot write the output file")?;
        let written =
            file.write_with(|f| pool.install(|| write_merged(&runs, f, threads, progress)))?;
        if let Some((_, path)) = &runs.file {
            let _ = std::fs::remove_file(path);
        }
        debug_assert_eq!(written, runs.rows);
        file.commit()?;
        Ok(written)
    }
}

impl StoredRun {
    /// The bytes `range` of the run, borrowed from memory or read from the spill file.
    fn read<'a>(
        &'a self,
        file: Option<&File>,
        range: std::ops::Range<usize>,
    ) -> io::Result<Cow<'a, [u8]>> {
        if let Some(bytes) = &self.bytes {
            return Ok(Cow::Borrowed(&bytes[range]));
        }
        let file = file.expect("runs not in memory are in the spill file");
        let mut buf = vec![0; range.len()];
        file.read_exact_at(&mut buf, self.offset + range.start as u64)?;
        Ok(Cow::Owned(buf))
    }

    /// Where each of `splits` (ascending customers) cuts the run: the offset of its first row
    /// whose customer is not below the split. Starts with 0 and ends with the run's length.
    fn cuts(&self, file: Option<&File>, splits: &[&[u8]]) -> io::Result<Vec<usize>> {
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
            let span = self.read(file, from..to)?;
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

fn write_merged(
    runs: &Runs,
    file: &File,
    threads: usize,
    progress: &dyn Progress,
) -> io::Result<u64> {
    let stored = &runs.stored;
    let spill = runs.file.as_ref().map(|(file, _)| file);
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(HEADER.as_bytes())?;
    out.write_all(b"\n")?;
    // Runs of range partitions hold disjoint ranges of customers: written one after the other,
    // they are in order already.
    let rows = if let Some(pieces) = ordered_pieces(stored) {
        write_in_waves(&mut out, &pieces, threads, progress, |(run, range)| {
            let span = stored[*run].read(spill, range.clone())?;
            let mut csv = Vec::with_capacity(span.len() + span.len() / 4);
            let mut n = 0;
            for row in RunRows::new(&span) {
                write_row(&mut csv, &row);
                n += 1;
            }
            Ok((csv, n))
        })?
    } else {
        let splits = merge_splits(stored, threads);
        let cuts: Vec<Vec<usize>> = stored
            .par_iter()
            .map(|run| run.cuts(spill, &splits))
            .collect::<io::Result<_>>()?;
        let ranges: Vec<usize> = (0..=splits.len()).collect();
        write_in_waves(&mut out, &ranges, threads, progress, |&range| {
            let spans: Vec<Cow<'_, [u8]>> = stored
                .iter()
                .zip(&cuts)
                .map(|(run, cuts)| run.read(spill, cuts[range]..cuts[range + 1]))
                .collect::<io::Result<_>>()?;
            Ok(merge_range(&spans))
        })?
    };
    out.flush()?;
    Ok(rows)
}

/// When the runs hold disjoint ranges of customers, the pieces to write in order: every run in
/// the order of its customers, cut at its index into pieces of about [`RANGE_BYTES`].
fn ordered_pieces(stored: &[StoredRun]) -> Option<Vec<(usize, std::ops::Range<usize>)>> {
    let mut order: Vec<(&[u8], &[u8], usize)> = stored
        .iter()
        .enumerate()
        .filter_map(|(i, run)| {
            let [first, last] = run.bounds.as_ref()?;
            Some((&**first, &**last, i))
        })
        .collect();
    order.sort_unstable();
    if order.windows(2).any(|w| w[0].1 >= w[1].0) {
        return None;
    }
    let mut pieces = Vec::new();
    for (_, _, i) in order {
        let run = &stored[i];
        let mut from = 0;
        for &(_, offset) in &run.index {
            if offset - from >= RANGE_BYTES {
                pieces.push((i, from..offset));
                from = offset;
            }
        }
        pieces.push((i, from..run.len));
    }
    Some(pieces)
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

/// Turns `tasks` into CSV on the pool, a few at a time (so that only their output waits in
/// memory), and writes the results in the tasks' order; returns the number of rows.
fn write_in_waves<T: Sync>(
    out: &mut impl Write,
    tasks: &[T],
    threads: usize,
    progress: &dyn Progress,
    csv_of: impl Fn(&T) -> io::Result<(Vec<u8>, u64)> + Sync,
) -> io::Result<u64> {
    let mut rows = 0;
    for wave in tasks.chunks(threads * 2) {
        let done: Vec<(Vec<u8>, u64)> = wave.par_iter().map(&csv_of).collect::<io::Result<_>>()?;
        for (bytes, n) in done {
            out.write_all(&bytes)?;
            rows += n;
            progress.advance(n);
        }
    }
    Ok(rows)
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

/// Writes one CSV field, quoted as RFC 4180 asks when it holds a comma, a quote or a line end.
pub fn write_field(out: &mut impl Write, value: &[u8]) -> io::Result<()> {
    if !value
        .iter()
        .any(|&b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        return out.write_all(value);
    }
    out.write_all(b"\"")?;
    for part in value.split_inclusive(|&b| b == b'"') {
        out.write_all(part)?;
        if part.ends_with(b"\"") {
            out.write_all(b"\"")?;
        }
    }
    out.write_all(b"\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(v: &str) -> String {
        let mut out = Vec::new();
        write_field(&mut out, v.as_bytes()).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn quoting_only_where_needed() {
        assert_eq!(field("0023938"), "0023938");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(field("two\nlines"), "\"two\nlines\"");
        assert_eq!(field("a|b"), "a|b");
    }

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

    #[test]
    fn merges_runs_from_memory_and_disk_in_byte_order() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SpillDir::create(parent.path()).unwrap();
        let out = parent.path().join("out.csv");
        let sink = CsvSink::new(&out, &dir, 12);
        sink.accept(run(&["a", "c", "e"])).unwrap();
        sink.accept(run(&["B", "d"])).unwrap(); // beyond the budget: on disk
        sink.accept(run(&[])).unwrap();
        let pool = crate::pipeline::thread_pool(2).unwrap();
        assert_eq!(sink.finish(&pool, &crate::progress::NoProgress).unwrap(), 5);
        let text = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<&str> = text.lines().skip(1).map(|l| &l[..1]).collect();
        assert_eq!(ids, ["B", "a", "c", "d", "e"]);
        assert!(text.starts_with(HEADER));
    }

    #[test]
    fn many_runs_cut_into_ranges_merge_in_byte_order() {
        // 40 runs of ids, some sharing long prefixes (equal keys must stay in one range), the
        // first runs in memory and the rest in the spill file.
        let parent = tempfile::tempdir().unwrap();
        let dir = SpillDir::create(parent.path()).unwrap();
        let out = parent.path().join("out.csv");
        let sink = CsvSink::new(&out, &dir, 4_000);
        let mut all = Vec::new();
        for r in 0..40u32 {
            let mut ids: Vec<String> = (0..300u32)
                .filter(|i| (i * 7 + r * 13) % 40 == r % 40 || i % 40 == r)
                .map(|i| match i % 3 {
                    0 => format!("{:07}", i * 40 + r),
                    1 => format!("CUSTOMER-{}-{r}", i % 5),
                    _ => format!("{}", i * 40 + r),
                })
                .collect();
            ids.sort();
            ids.dedup();
            all.extend(ids.iter().cloned());
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            sink.accept(run(&refs)).unwrap();
        }
        all.sort();
        all.dedup();
        let pool = crate::pipeline::thread_pool(3).unwrap();
        assert_eq!(
            sink.finish(&pool, &crate::progress::NoProgress).unwrap(),
            all.len() as u64
        );
        let text = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<&str> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').next().unwrap())
            .collect();
        assert_eq!(ids, all);
        assert!(
            !dir.path().join("runs").exists(),
            "the spill file is removed"
        );
    }
}
