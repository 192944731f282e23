//! The CSV sink: every run merged into one file sorted by `customer_id`, written atomically.
//!
//! Runs arrive from the reducers in any order; each is sorted, and partitions hold disjoint
//! customers, so a k-way merge gives the global byte order whatever the thread count or memory
//! limit. Runs stay in memory within the sink's budget and go to the spill directory beyond it.
//! The output is written to a temporary file beside the target and renamed over it at the end, so
//! a failed run never leaves a half-written file.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::reduce::{Run, RunRows, prefix_key};
use crate::spill::SpillDir;

/// The CSV header of the output.
pub const HEADER: &str = "customer_id,favourite_product,longest_streak";

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
}

/// A run kept in memory, or written whole to a file of the spill directory.
enum StoredRun {
    Memory(Vec<u8>),
    File(PathBuf),
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
        let stored = if runs.memory_bytes + run.bytes.len() <= self.budget {
            runs.memory_bytes += run.bytes.len();
            StoredRun::Memory(run.bytes)
        } else {
            let path = self
                .dir
                .path()
                .join(format!("run-{:05}", runs.stored.len()));
            std::fs::write(&path, &run.bytes).map_err(|e| {
                Error::io(
                    &path,
                    "cannot write a run file (is the disk under --spill-dir full?)",
                    e,
                )
            })?;
            StoredRun::File(path)
        };
        runs.stored.push(stored);
        runs.rows += run.rows;
        Ok(())
    }

    /// Merges every run into the output file; returns the number of rows written.
    pub fn finish(self, progress: &dyn Progress) -> Result<u64> {
        let runs = self.runs.into_inner().expect("no panics while locked");
        let mut file = AtomicFile::create(&self.path, "cannot write the output file")?;
        let written = file.write_with(|f| write_merged(runs.stored, f, progress))?;
        debug_assert_eq!(written, runs.rows);
        file.commit()?;
        Ok(written)
    }
}

fn write_merged(runs: Vec<StoredRun>, file: &File, progress: &dyn Progress) -> io::Result<u64> {
    let mut cursors = Vec::with_capacity(runs.len());
    for run in runs {
        let mut cursor = match run {
            StoredRun::Memory(bytes) => RunCursor::new(bytes, None),
            // Files are streamed, so the merge holds one buffer per run, not the runs.
            StoredRun::File(path) => RunCursor::new(Vec::new(), Some(File::open(path)?)),
        };
        if cursor.advance()? {
            cursors.push(cursor);
        }
    }

    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(HEADER.as_bytes())?;
    out.write_all(b"\n")?;
    // A binary min-heap of cursors by their current customer: the top is the next row.
    let before = |a: &RunCursor, b: &RunCursor| (a.key, a.customer()) < (b.key, b.customer());
    let mut heap = MinHeap::new(cursors, before);
    let mut rows = 0;
    while let Some(top) = heap.top_mut() {
        write_field(&mut out, top.customer())?;
        out.write_all(b",")?;
        write_field(&mut out, top.product())?;
        out.write_all(b",")?;
        out.write_all(itoa::Buffer::new().format(top.streak).as_bytes())?;
        out.write_all(b"\n")?;
        rows += 1;
        if rows % (1 << 16) == 0 {
            progress.advance(1 << 16);
        }
        if top.advance()? {
            heap.top_changed();
        } else {
            heap.pop();
        }
    }
    out.flush()?;
    Ok(rows)
}

/// Longest row of the run encoding: two 255-byte texts, their lengths and the streak.
const MAX_ROW: usize = 2 * 256 + 4;

/// The current row of one run, decoded in place from a buffer that holds the whole run (memory)
/// or is refilled from its file.
struct RunCursor {
    buf: Vec<u8>,
    /// Where the next row starts.
    pos: usize,
    file: Option<File>,
    customer: (usize, usize),
    product: (usize, usize),
    streak: i32,
    /// [`prefix_key`] of the customer.
    key: u64,
}

impl RunCursor {
    fn new(buf: Vec<u8>, file: Option<File>) -> Self {
        RunCursor {
            buf,
            pos: 0,
            file,
            customer: (0, 0),
            product: (0, 0),
            streak: 0,
            key: 0,
        }
    }

    fn customer(&self) -> &[u8] {
        &self.buf[self.customer.0..self.customer.1]
    }

    fn product(&self) -> &[u8] {
        &self.buf[self.product.0..self.product.1]
    }

    /// Moves to the next row; false at the end of the run.
    fn advance(&mut self) -> io::Result<bool> {
        if self.buf.len() - self.pos < MAX_ROW
            && let Some(file) = &mut self.file
        {
            self.buf.drain(..self.pos);
            self.pos = 0;
            let have = self.buf.len();
            self.buf.resize(have + (1 << 16), 0);
            let mut filled = have;
            while filled < have + MAX_ROW {
                let n = file.read(&mut self.buf[filled..])?;
                if n == 0 {
                    self.file = None;
                    break;
                }
                filled += n;
            }
            self.buf.truncate(filled);
        }
        let Some(row) = RunRows::new(&self.buf[self.pos..]).next() else {
            return Ok(false);
        };
        let start = self.pos + 1;
        self.customer = (start, start + row.customer_id.len());
        let start = self.customer.1 + 1;
        self.product = (start, start + row.favourite_product.len());
        self.streak = row.longest_streak;
        self.key = prefix_key(row.customer_id);
        self.pos = self.product.1 + 4;
        Ok(true)
    }
}

/// A binary min-heap over `items` ordered by `before`, with the one operation a k-way merge
/// needs besides `pop`: re-sifting the top after it has advanced.
struct MinHeap<T, F> {
    items: Vec<T>,
    before: F,
}

impl<T, F: Fn(&T, &T) -> bool> MinHeap<T, F> {
    fn new(items: Vec<T>, before: F) -> Self {
        let mut heap = MinHeap { items, before };
        for i in (0..heap.items.len() / 2).rev() {
            heap.sift_down(i);
        }
        heap
    }

    fn top_mut(&mut self) -> Option<&mut T> {
        self.items.first_mut()
    }

    fn top_changed(&mut self) {
        self.sift_down(0);
    }

    fn pop(&mut self) {
        if !self.items.is_empty() {
            self.items.swap_remove(0);
            self.sift_down(0);
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.items.len();
        loop {
            let (left, right) = (2 * i + 1, 2 * i + 2);
            let mut least = i;
            if left < n && (self.before)(&self.items[left], &self.items[least]) {
                least = left;
            }
            if right < n && (self.before)(&self.items[right], &self.items[least]) {
                least = right;
            }
            if least == i {
                return;
            }
            self.items.swap(i, least);
            i = least;
        }
    }
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
    use crate::reduce::{CustomerRow, encode_row};

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
        let mut bytes = Vec::new();
        for id in ids {
            encode_row(
                &mut bytes,
                &CustomerRow {
                    customer_id: id.as_bytes(),
                    favourite_product: b"P",
                    longest_streak: 1,
                },
            );
        }
        Run {
            bytes,
            rows: ids.len() as u64,
        }
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
        assert_eq!(sink.finish(&crate::progress::NoProgress).unwrap(), 5);
        let text = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<&str> = text.lines().skip(1).map(|l| &l[..1]).collect();
        assert_eq!(ids, ["B", "a", "c", "d", "e"]);
        assert!(text.starts_with(HEADER));
    }
}
