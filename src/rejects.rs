//! Bad rows: collected from all workers, decided in file order, and written to the rejects file.
//!
//! Workers meet bad rows in any order. The outcome must not depend on that, so bad rows are kept
//! sorted by their [`position`] in the input — the input's index, then the byte offset in that
//! file — and the *decisive* one — the first that cannot be skipped, or the one past
//! `--max-bad-rows` — is always the same row of the same file. Once it is known, records after it
//! need not be parsed: its position becomes the cut-off that workers check.

use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::atomic::AtomicFile;
use crate::csv_field::write_field;
use crate::error::{BadRow, Error, Result};
use crate::source::count_newlines;

/// Bits of a [`position`] that hold the byte offset (files up to 16 TiB).
const OFFSET_BITS: u32 = 44;

/// The place of byte `offset` of the run's input number `input`, as one number that sorts in
/// input order: inputs are read as if they stood one after another.
pub fn position(input: u32, offset: u64) -> u64 {
    debug_assert!(offset < 1 << OFFSET_BITS && u64::from(input) < 1 << (64 - OFFSET_BITS));
    (u64::from(input) << OFFSET_BITS) | offset
}

/// The byte offset of input `input` that nothing after matters beyond, given a `cutoff`
/// [`position`]: all of it before the cut-off's input, none after.
pub fn offset_cutoff(cutoff: u64, input: u32) -> u64 {
    match (cutoff >> OFFSET_BITS).cmp(&u64::from(input)) {
        std::cmp::Ordering::Greater => u64::MAX,
        std::cmp::Ordering::Equal => cutoff & ((1 << OFFSET_BITS) - 1),
        std::cmp::Ordering::Less => 0,
    }
}

/// Bad rows found so far, in input order.
pub struct BadRows {
    max: u64,
    rows: Mutex<BTreeMap<u64, BadRow>>,
    cutoff: AtomicU64,
}

impl BadRows {
    /// A collector that lets up to `max` bad rows be skipped.
    pub fn new(max: u64) -> Self {
        BadRows {
            max,
            rows: Mutex::default(),
            cutoff: AtomicU64::new(u64::MAX),
        }
    }

    /// Records after this [`position`] cannot change the outcome.
    pub fn cutoff(&self) -> u64 {
        self.cutoff.load(Ordering::Relaxed)
    }

    /// Adds a bad row.
    pub fn push(&self, row: BadRow) {
        let mut rows = self.rows.lock().expect("no panics while locked");
        rows.insert(position(row.input, row.offset), row);
        if let Some(index) = decisive(rows.values(), self.max) {
            let offset = *rows.keys().nth(index).expect("an index of the map");
            // Rows after the decisive one are of no interest.
            rows.split_off(&(offset + 1));
            self.cutoff.fetch_min(offset, Ordering::Relaxed);
        }
    }

    /// Sets the line of every bad row of input `input` from its offset in `data`, that whole
    /// file (1 plus the line feeds before it): for chunks that were not numbered. One pass up
    /// to the last bad row.
    pub fn number_lines(&self, input: u32, data: &[u8]) {
        let mut rows = self.rows.lock().expect("no panics while locked");
        let (mut line, mut at) = (1, 0);
        let range = position(input, 0)..position(input + 1, 0);
        for row in rows.range_mut(range).map(|(_, row)| row) {
            let offset = row.offset as usize;
            line += count_newlines(&data[at..offset]);
            at = offset;
            row.line = line;
        }
    }

    /// The skipped rows, in file order, or the error that ends the run.
    ///
    /// `rejects` names the rejects file in the error's explanation.
    pub fn finish(self, rejects: &Path) -> (Vec<BadRow>, Option<Error>) {
        let mut rows: Vec<BadRow> = self
            .rows
            .into_inner()
            .expect("no panics while locked")
            .into_values()
            .collect();
        let Some(index) = decisive(rows.iter(), self.max) else {
            return (rows, None);
        };
        let row = Box::new(rows[index].clone());
        rows.truncate(index);
        let error = if self.max == 0 {
            Error::BadRow(row)
        } else if row.fatal {
            Error::TooManyBadRows {
                row,
                why: "This row cannot be skipped with --max-bad-rows; fix the file.".into(),
            }
        } else {
            Error::TooManyBadRows {
                row,
                why: format!(
                    "That is more than --max-bad-rows {} bad rows; the rows skipped before it are in {}.",
                    self.max,
                    rejects.display()
                ),
            }
        };
        (rows, Some(error))
    }
}

/// Where the decisive bad row stands among `rows` (in file order): the first that cannot be
/// skipped, or the one past `max`.
fn decisive<'a>(rows: impl Iterator<Item = &'a BadRow>, max: u64) -> Option<usize> {
    rows.enumerate()
        .position(|(i, r)| r.fatal || i as u64 == max)
}

/// Writes `rows` to `path` as CSV: `line,column,reason,record,file`, atomically (`line` is
/// the row number in a Parquet file; `file`, the input the row is of, came last so that readers
/// of the older four columns read on).
pub fn write_rejects(path: &Path, rows: &[BadRow]) -> Result<()> {
    let mut file = AtomicFile::create(path, "cannot write the rejects file")?;
    file.write_with(|f| {
        let mut out = BufWriter::new(f);
        out.write_all(b"line,column,reason,record,file\n")?;
        for row in rows {
            out.write_all(itoa::Buffer::new().format(row.line).as_bytes())?;
            out.write_all(b",")?;
            write_field(&mut out, row.column.as_bytes())?;
            out.write_all(b",")?;
            write_field(&mut out, row.reason.as_bytes())?;
            out.write_all(b",")?;
            write_field(&mut out, &row.raw)?;
            out.write_all(b",")?;
            write_field(&mut out, row.path.as_os_str().as_encoded_bytes())?;
            out.write_all(b"\n")?;
        }
        out.flush()
    })?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bad(offset: u64, fatal: bool) -> BadRow {
        BadRow {
            path: "f".into(),
            input: 0,
            offset,
            line: offset,
            is_row_number: false,
            column: "c".into(),
            reason: "r".into(),
            raw: vec![],
            fatal,
        }
    }

    #[test]
    fn the_decisive_row_is_the_first_in_file_order_whatever_the_arrival_order() {
        for order in [[30, 10, 20], [10, 20, 30], [20, 30, 10]] {
            let rows = BadRows::new(1);
            for o in order {
                rows.push(bad(o, false));
            }
            assert_eq!(rows.cutoff(), 20);
            let (skipped, error) = rows.finish(Path::new("r.csv"));
            assert_eq!(skipped.iter().map(|r| r.offset).collect::<Vec<_>>(), [10]);
            assert!(error.unwrap().to_string().contains("f:20: c: r"));
        }
    }

    #[test]
    fn fatal_rows_end_the_run_within_the_limit() {
        let rows = BadRows::new(10);
        rows.push(bad(50, false));
        rows.push(bad(40, true));
        assert_eq!(rows.cutoff(), 40);
        let (skipped, error) = rows.finish(Path::new("r.csv"));
        assert!(skipped.is_empty());
        assert!(error.unwrap().to_string().contains("cannot be skipped"));
    }

    #[test]
    fn positions_sort_by_input_then_offset() {
        assert!(position(0, u64::MAX >> 20) < position(1, 0));
        let rows = BadRows::new(0);
        let mut late = bad(5, false);
        late.input = 2;
        rows.push(late);
        assert_eq!(offset_cutoff(rows.cutoff(), 1), u64::MAX);
        assert_eq!(offset_cutoff(rows.cutoff(), 2), 5);
        assert_eq!(offset_cutoff(rows.cutoff(), 3), 0);
        rows.push(bad(900, false));
        assert_eq!(rows.cutoff(), 900);
        let (_, error) = rows.finish(Path::new("r.csv"));
        assert!(error.unwrap().to_string().contains("f:900:"));
    }

    #[test]
    fn within_the_limit_nothing_fails() {
        let rows = BadRows::new(2);
        rows.push(bad(5, false));
        rows.push(bad(1, false));
        assert_eq!(rows.cutoff(), u64::MAX);
        let (skipped, error) = rows.finish(Path::new("r.csv"));
        assert_eq!(skipped.len(), 2);
        assert!(error.is_none());
    }
}
