//! The CSV sink: every run merged into one file sorted by `customer_id`, written atomically.
//!
//! Runs arrive from the reducers in any order; each is sorted, and partitions hold disjoint
//! customers, so a k-way merge gives the global byte order whatever the thread count or memory
//! limit. Runs stay in memory within the sink's budget and go to the spill directory beyond it.
//! The output is written to a temporary file beside the target and renamed over it at the end, so
//! a failed run never leaves a half-written file.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::atomic::AtomicFile;
use crate::error::{Error, Result};
use crate::reduce::Run;
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
    pub fn finish(self) -> Result<u64> {
        let runs = self.runs.into_inner().expect("no panics while locked");
        let mut file = AtomicFile::create(&self.path, "cannot write the output file")?;
        let written = file.write_with(|f| write_merged(runs.stored, f))?;
        debug_assert_eq!(written, runs.rows);
        file.commit()?;
        Ok(written)
    }
}

fn write_merged(runs: Vec<StoredRun>, file: &File) -> io::Result<u64> {
    let mut cursors = Vec::with_capacity(runs.len());
    for run in runs {
        // Files are streamed, so the merge holds one buffer per run, not the runs.
        let reader: Box<dyn BufRead> = match run {
            StoredRun::Memory(bytes) => Box::new(Cursor::new(bytes)),
            StoredRun::File(path) => Box::new(BufReader::with_capacity(1 << 16, File::open(path)?)),
        };
        cursors.push(RunCursor {
            reader,
            product: Vec::new(),
            streak: 0,
        });
    }

    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(HEADER.as_bytes())?;
    out.write_all(b"\n")?;
    let mut heap = BinaryHeap::with_capacity(cursors.len());
    for (run, cursor) in cursors.iter_mut().enumerate() {
        let mut customer = Vec::new();
        if cursor.next_row(&mut customer)? {
            heap.push(Reverse((customer, run)));
        }
    }
    let mut rows = 0;
    while let Some(Reverse((mut customer, run))) = heap.pop() {
        let cursor = &mut cursors[run];
        write_field(&mut out, &customer)?;
        out.write_all(b",")?;
        write_field(&mut out, &cursor.product)?;
        out.write_all(b",")?;
        out.write_all(itoa::Buffer::new().format(cursor.streak).as_bytes())?;
        out.write_all(b"\n")?;
        rows += 1;
        if cursor.next_row(&mut customer)? {
            heap.push(Reverse((customer, run)));
        }
    }
    out.flush()?;
    Ok(rows)
}

/// Reads the rows of one run in order.
struct RunCursor {
    reader: Box<dyn BufRead>,
    product: Vec<u8>,
    streak: i32,
}

impl RunCursor {
    /// Reads the next row: its customer into `customer`, the rest into `self`.
    fn next_row(&mut self, customer: &mut Vec<u8>) -> io::Result<bool> {
        let mut len = [0u8; 1];
        match self.reader.read_exact(&mut len) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
            Err(e) => return Err(e),
        }
        read_text(&mut self.reader, len[0], customer)?;
        self.reader.read_exact(&mut len)?;
        read_text(&mut self.reader, len[0], &mut self.product)?;
        let mut streak = [0u8; 4];
        self.reader.read_exact(&mut streak)?;
        self.streak = i32::from_le_bytes(streak);
        Ok(true)
    }
}

fn read_text(reader: &mut dyn BufRead, len: u8, into: &mut Vec<u8>) -> io::Result<()> {
    into.resize(usize::from(len), 0);
    reader.read_exact(into)
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
        assert_eq!(sink.finish().unwrap(), 5);
        let text = std::fs::read_to_string(&out).unwrap();
        let ids: Vec<&str> = text.lines().skip(1).map(|l| &l[..1]).collect();
        assert_eq!(ids, ["B", "a", "c", "d", "e"]);
        assert!(text.starts_with(HEADER));
    }
}
