//! The record driver: one [`ChunkParser`] per worker walks a chunk record by record, sends
//! each through the fastest path that can split it — the bit-mask window, the plain splitter,
//! or csv-core for any other quoting — checks the fields, and reports good rows and bad rows
//! to a [`RowSink`].
//!
//! Bad rows carry the physical line on which the record starts, counted from the chunk's first
//! line only when a bad row is found (counting every chunk's lines would cost a pass).

use std::path::Path;

use super::check::{check_text, check_units, text_key, units_value};
use super::dates::DateCache;
use super::quoted::{Fields, QuotingError, check_quoting, csv_reader, trim_line_end};
use super::scan::{Span, Specials, Window, split_plain};
use super::{Layout, MAX_FIELDS, MAX_RECORD_BYTES, Record};
use crate::error::BadRow;
use crate::source::{Chunk, count_newlines, find_boundary};

/// Parses the records of chunks.
pub struct ChunkParser<'a> {
    path: &'a Path,
    /// Index of the input among the run's, for bad rows.
    input: u32,
    layout: &'a Layout,
    /// Required columns sorted by position, so checks report the leftmost bad field first.
    checks: [(usize, Column); 4],
    /// Field buffer of the csv-core path.
    fields: Fields,
    /// Field ranges of the plain path.
    spans: Vec<Span>,
    dates: DateCache,
}

#[derive(Clone, Copy, Debug)]
enum Column {
    Customer,
    Date,
    Product,
    Units,
}

/// What a chunk parser reports to.
pub trait RowSink {
    /// A good row.
    fn record(&mut self, record: &Record<'_>);
    /// A bad row.
    fn bad_row(&mut self, row: BadRow);
    /// Records that start after this file offset need not be parsed (an earlier error decides
    /// the run already).
    fn stop_after(&self) -> u64 {
        u64::MAX
    }
}

impl<'a> ChunkParser<'a> {
    /// A parser for records of `layout`, reporting bad rows against `path`.
    pub fn new(path: &'a Path, layout: &'a Layout) -> Self {
        let mut checks = [
            (layout.customer, Column::Customer),
            (layout.date, Column::Date),
            (layout.product, Column::Product),
            (layout.units, Column::Units),
        ];
        checks.sort_by_key(|&(i, _)| i);
        ChunkParser {
            path,
            input: 0,
            layout,
            checks,
            fields: Fields::new(),
            spans: vec![Span::default(); layout.field_count],
            dates: DateCache::default(),
        }
    }

    /// The parser of the run's input number `input` (0 by default), which its bad rows name.
    pub fn of_input(mut self, input: u32) -> Self {
        self.input = input;
        self
    }

    /// Parses every record of `chunk`, and returns how many records were read (good and bad).
    ///
    /// Records without quotes or stray carriage returns — nearly all of them in practice — are
    /// split from bit masks of the delimiter and the line end (`Window` when the record has the
    /// header's number of fields and fits the window, `split_plain` otherwise); the rest go
    /// through csv-core, which handles all of RFC 4180. All give the same fields for such
    /// records.
    #[inline(never)]
    pub fn parse(&mut self, chunk: &Chunk<'_>, sink: &mut impl RowSink) -> u64 {
        let data: &[u8] = &chunk.data;
        let mut reader: Option<csv_core::Reader> = None;
        let mut specials = Specials::new(data, self.layout.delimiter);
        let mut window = Window::new(data, self.layout.delimiter);
        let mut rows = 0;
        let mut pos = 0;
        let (mut line_pos, mut line) = (0, chunk.first_line);
        loop {
            // Blank lines are skipped here, so `start` is the record's first byte.
            while pos < data.len() && (data[pos] == b'\n' || data[pos] == b'\r') {
                pos += 1;
            }
            if pos == data.len() || chunk.offset + pos as u64 > sink.stop_after() {
                return rows;
            }
            let start = pos;
            let delimiter = self.layout.delimiter;
            let fast = window.split(start, &mut self.spans);
            let outcome = match fast.or_else(|| split_plain(&mut specials, start, &mut self.spans))
            {
                Some(split) => {
                    pos = split.next;
                    // The common case is handed over here, not after the match: a record that
                    // joined the other paths' outcome was copied on the way, and the copy's
                    // 8-byte read of the day and units, just written as two 4-byte halves,
                    // waited for both stores to reach the cache (15 % of this function's
                    // samples).
                    if let Some(record) = self.plain_record(data, split.fields) {
                        rows += 1;
                        sink.record(&record);
                        continue;
                    }
                    self.check_plain(data, split.fields)
                }
                None => {
                    let reader = reader.get_or_insert_with(|| {
                        let mut reader = csv_reader(delimiter);
                        // A fresh csv-core reader strips a UTF-8 BOM from its first input. Only
                        // the file's first bytes may be a BOM (the header took those), so get
                        // the reader past its first read.
                        reader.read_record(b"\n", &mut [], &mut []);
                        reader
                    });
                    let Some(consumed) = self.fields.read(reader, &data[start..]) else {
                        return rows;
                    };
                    pos = start + consumed;
                    if data[pos - 1] == b'\r' && data.get(pos) != Some(&b'\n') && pos < data.len() {
                        Err(bare_carriage_return(data, start, &mut pos, delimiter))
                    } else {
                        let at_end = chunk.is_last && pos == data.len();
                        self.check_quoted(trim_line_end(&data[start..pos]), at_end)
                    }
                }
            };
            rows += 1;
            match outcome {
                Ok(record) => sink.record(&record),
                Err(error) => {
                    line += count_newlines(&data[line_pos..start]);
                    line_pos = start;
                    sink.bad_row(BadRow {
                        path: self.path.into(),
                        input: self.input,
                        offset: chunk.offset + start as u64,
                        line,
                        is_row_number: false,
                        column: error.column,
                        reason: error.reason,
                        raw: trim_line_end(&data[start..pos]).to_vec(),
                        fatal: error.fatal,
                    });
                }
            }
        }
    }

    /// The record split by [`split_plain`] into `self.spans` (`count` fields) when it is plainly
    /// good: the common case, in straight-line code. `None` leaves any doubt to
    /// [`Self::check_plain`].
    #[inline(always)]
    fn plain_record<'d>(&self, data: &'d [u8], count: usize) -> Option<Record<'d>> {
        let layout = self.layout;
        if count != layout.field_count {
            return None;
        }
        let span = |i: usize| self.spans[i];
        let field = |i: usize| &data[span(i).start..span(i).end];
        Some(Record {
            customer: field(layout.customer),
            product: field(layout.product),
            customer_key: text_key(data, span(layout.customer))?,
            product_key: text_key(data, span(layout.product))?,
            day: self.dates.day_fast(field(layout.date))?,
            units: units_value(data, span(layout.units))?,
        })
    }

    /// Checks a record split by [`split_plain`] into `self.spans` (`count` fields) in column
    /// order, which names the leftmost bad field.
    #[cold]
    fn check_plain<'d>(&self, data: &'d [u8], count: usize) -> Result<Record<'d>, RowError> {
        if count != self.layout.field_count {
            return Err(field_count_error(count, self.layout.field_count));
        }
        self.check_values(|i: usize| {
            let Span { start, end } = self.spans[i];
            &data[start..end]
        })
    }

    /// Checks the record just read by csv-core into `self.fields`; `raw` is its text in the file.
    fn check_quoted(&self, raw: &[u8], at_end: bool) -> Result<Record<'_>, RowError> {
        if memchr::memchr(b'"', raw).is_some()
            && let Some(quoting) = check_quoting(raw, self.layout.delimiter, at_end)
        {
            return Err(RowError::record(quoting.reason, quoting.fatal));
        }
        let fields = &self.fields;
        if fields.overflow {
            return Err(RowError::record(
                format!(
                    "the record is longer than {} MiB or has more than {MAX_FIELDS} fields; \
                     is a line end or a quote missing?",
                    MAX_RECORD_BYTES >> 20
                ),
                false,
            ));
        }
        if fields.count != self.layout.field_count {
            return Err(field_count_error(fields.count, self.layout.field_count));
        }
        self.check_values(|i| fields.get(i))
    }

    /// Checks the four required fields of a record with the right number of fields.
    fn check_values<'d>(&self, field: impl Fn(usize) -> &'d [u8]) -> Result<Record<'d>, RowError> {
        let (mut customer, mut product, mut day, mut units) = (&[][..], &[][..], 0, 0);
        for &(index, column) in &self.checks {
            let value = field(index);
            let result = match column {
                Column::Customer => check_text(value).map(|v| customer = v),
                Column::Product => check_text(value).map(|v| product = v),
                Column::Date => self.dates.day(value).map(|d| day = d),
                Column::Units => check_units(value).map(|u| units = u),
            };
            if let Err(reason) = result {
                let name = match column {
                    Column::Customer => &self.layout.names[0],
                    Column::Date => &self.layout.names[1],
                    Column::Product => &self.layout.names[2],
                    Column::Units => &self.layout.names[3],
                };
                return Err(RowError {
                    column: name.clone(),
                    reason,
                    fatal: false,
                });
            }
        }
        Ok(Record::new(customer, product, day, units))
    }
}

/// What is wrong with a record.
struct RowError {
    /// The header's name of the bad column, or `record` for the record as a whole.
    column: String,
    reason: String,
    /// The row cannot be skipped (see [`QuotingError::fatal`]).
    fatal: bool,
}

impl RowError {
    /// An error of the record as a whole.
    fn record(reason: impl Into<String>, fatal: bool) -> Self {
        RowError {
            column: "record".into(),
            reason: reason.into(),
            fatal,
        }
    }
}

fn field_count_error(count: usize, expected: usize) -> RowError {
    RowError::record(
        format!(
            "has {count} field{}, the header has {expected}",
            if count == 1 { "" } else { "s" }
        ),
        false,
    )
}

/// The bad record that csv-core ended at a bare CR at `*pos`. Line ends here are LF or CRLF, so
/// the rest of the physical line belongs to this record — up to the line feed that quote parity
/// (as the chunk planner counts it) says ends it: `*pos` moves there.
fn bare_carriage_return(data: &[u8], start: usize, pos: &mut usize, delimiter: u8) -> RowError {
    let head = &data[start..*pos];
    let quoting = check_quoting(trim_line_end(head), delimiter, false);
    let odd = bytecount::count(head, b'"') % 2 == 1;
    *pos = find_boundary(data, *pos, odd).unwrap_or(data.len());
    match quoting {
        Some(QuotingError {
            reason,
            fatal: true,
        }) => RowError::record(reason, true),
        _ => RowError::record(
            "a carriage return in the middle of a line (line ends are LF or CRLF)",
            false,
        ),
    }
}
