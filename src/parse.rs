//! Records: the header found by column name, and every data row parsed with csv-core and
//! checked against the input rules of SPEC §2.
//!
//! A chunk is parsed by one `ChunkParser` on one worker. Good rows come out as borrowed
//! [`Record`]s (no allocation per row); bad rows as [`BadRow`]s with the physical line on which
//! the record starts, counted from the chunk's first line only when a bad row is found.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::date::{DateError, parse_date};
use crate::error::{BadRow, Error, Result};
use crate::reduce::prefix_key;
use crate::source::{Chunk, count_newlines, find_boundary};

/// The columns a source must have, as SPEC §2 spells them (matched case-insensitively).
pub const REQUIRED_COLUMNS: [&str; 4] = ["custId", "transactionDate", "productSold", "unitsSold"];

/// Longest `custId` or `productSold`, in bytes.
pub const MAX_TEXT_BYTES: usize = 255;

/// Longest record the parser holds, in bytes of field data; a longer one is a bad row.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Most fields a record may have before it is a bad row (the header decides the real count).
const MAX_FIELDS: usize = 4096;

/// The field delimiter: one ASCII byte that is not a quote or a line end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delimiter(u8);

impl Delimiter {
    /// The byte.
    pub fn as_byte(self) -> u8 {
        self.0
    }
}

impl Default for Delimiter {
    fn default() -> Self {
        Delimiter(b'|')
    }
}

impl FromStr for Delimiter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let byte = match s {
            "\\t" | "tab" | "TAB" => b'\t',
            _ if s.len() == 1 && s.is_ascii() => s.as_bytes()[0],
            _ => {
                return Err(format!(
                    "`{s}` is not one ASCII character (use `\\t` for a tab)"
                ));
            }
        };
        match byte {
            b'"' | b'\r' | b'\n' | 0 => {
                Err(format!("`{}` cannot be a delimiter", s.escape_default()))
            }
            _ => Ok(Delimiter(byte)),
        }
    }
}

impl fmt::Display for Delimiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            b'\t' => f.write_str("\\t"),
            b => write!(f, "{}", b as char),
        }
    }
}

/// Where the required columns stand in each record.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The delimiter byte.
    pub delimiter: u8,
    /// Number of fields every record must have.
    pub field_count: usize,
    /// Index of `custId`.
    pub customer: usize,
    /// Index of `transactionDate`.
    pub date: usize,
    /// Index of `productSold`.
    pub product: usize,
    /// Index of `unitsSold`.
    pub units: usize,
    /// The header's spelling of each required column, in the order of `REQUIRED_COLUMNS`.
    pub names: [String; 4],
}

/// The parsed header and where the data begins.
#[derive(Clone, Debug)]
pub struct Header {
    /// Column positions.
    pub layout: Layout,
    /// Byte offset just after the header record.
    pub data_start: usize,
    /// Physical line number of `data_start`.
    pub data_line: u64,
}

/// One good data row, borrowed from the parser's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// `custId`, exactly as written.
    pub customer: &'a [u8],
    /// `productSold`, exactly as written.
    pub product: &'a [u8],
    /// `transactionDate` as days since 1970-01-01.
    pub day: i32,
    /// `unitsSold`.
    pub units: i32,
    /// [`prefix_key`] of `customer`.
    pub customer_key: u64,
    /// [`prefix_key`] of `product`.
    pub product_key: u64,
}

impl<'a> Record<'a> {
    /// A record of these values, with their keys.
    pub fn new(customer: &'a [u8], product: &'a [u8], day: i32, units: i32) -> Self {
        Record {
            customer,
            product,
            day,
            units,
            customer_key: prefix_key(customer),
            product_key: prefix_key(product),
        }
    }
}

/// Reads the header at the start of `data` (which may begin with a UTF-8 BOM and blank lines).
///
/// `data` must hold at least the whole header record.
pub fn read_header(path: &Path, data: &[u8], delimiter: Delimiter) -> Result<Header> {
    let input_error = |message: String| Error::Input {
        path: path.into(),
        message,
    };
    let mut reader = csv_reader(delimiter.as_byte());
    let mut fields = Fields::new();
    let Some(consumed) = fields.read(&mut reader, data) else {
        return Err(input_error(format!(
            "the file is empty: expected a header line naming the columns {}",
            REQUIRED_COLUMNS.join(", ")
        )));
    };
    if fields.overflow {
        return Err(input_error(
            "the header line is too long to be a header".into(),
        ));
    }
    let names: Vec<String> = (0..fields.count)
        .map(|i| String::from_utf8_lossy(fields.get(i)).into_owned())
        .collect();

    let mut found = [usize::MAX; 4];
    for (want, slot) in REQUIRED_COLUMNS.iter().zip(found.iter_mut()) {
        for (i, name) in names.iter().enumerate() {
            if name.eq_ignore_ascii_case(want) {
                if *slot != usize::MAX {
                    return Err(input_error(format!(
                        "column `{want}` appears twice in the header (fields {} and {})",
                        *slot + 1,
                        i + 1
                    )));
                }
                *slot = i;
            }
        }
    }
    let missing: Vec<&str> = REQUIRED_COLUMNS
        .iter()
        .zip(found)
        .filter(|&(_, i)| i == usize::MAX)
        .map(|(name, _)| *name)
        .collect();
    if !missing.is_empty() {
        return Err(input_error(missing_columns_message(
            &missing, &names, delimiter,
        )));
    }

    let header_text = &data[..consumed];
    Ok(Header {
        layout: Layout {
            delimiter: delimiter.as_byte(),
            field_count: names.len(),
            customer: found[0],
            date: found[1],
            product: found[2],
            units: found[3],
            names: found.map(|i| names[i].clone()),
        },
        data_start: consumed,
        data_line: 1 + count_newlines(header_text),
    })
}

fn missing_columns_message(missing: &[&str], names: &[String], delimiter: Delimiter) -> String {
    let plural = if missing.len() == 1 { "" } else { "s" };
    let mut message = format!(
        "the header has no column{plural} {} (required: {}; the header's {} column{} split at `{delimiter}`: {})",
        missing
            .iter()
            .map(|m| format!("`{m}`"))
            .collect::<Vec<_>>()
            .join(", "),
        REQUIRED_COLUMNS.join(", "),
        names.len(),
        if names.len() == 1 { " is" } else { "s are" },
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    if names.len() == 1 {
        let guess = [b',', b';', b'\t', b'|']
            .into_iter()
            .filter(|&b| b != delimiter.as_byte())
            .max_by_key(|&b| names[0].bytes().filter(|&c| c == b).count())
            .filter(|&b| names[0].as_bytes().contains(&b));
        if let Some(b) = guess {
            let d = Delimiter(b);
            message.push_str(&format!(
                ". The file looks delimited by `{d}`: try --delimiter '{d}'"
            ));
        }
    }
    message
}

/// The customer id of the first whole line of `bytes` (of the line `bytes` starts with, when
/// `at_line_start`), for a sample of customers: only a line that ends within `bytes`, has the
/// header's number of fields and a valid customer id gives one.
///
/// A sample only steers how partitions are balanced, never what a record holds, so a line that
/// really began inside a quoted field merely adds a stray id.
pub fn sample_customer(bytes: &[u8], at_line_start: bool, layout: &Layout) -> Option<Box<[u8]>> {
    let from = if at_line_start {
        0
    } else {
        memchr::memchr(b'\n', bytes)? + 1
    };
    let end = from + memchr::memchr(b'\n', &bytes[from..])?;
    let line = &bytes[from..=end];
    if memchr::memchr(b'"', line).is_none() {
        let fields = || trim_line_end(line).split(|&b| b == layout.delimiter);
        if fields().count() != layout.field_count {
            return None;
        }
        return check_text(fields().nth(layout.customer)?)
            .ok()
            .map(Box::from);
    }
    let mut fields = Fields::new();
    fields.read(&mut csv_reader(layout.delimiter), line)?;
    if fields.overflow || fields.count != layout.field_count {
        return None;
    }
    check_text(fields.get(layout.customer)).ok().map(Box::from)
}

/// Parses the records of chunks.
pub struct ChunkParser<'a> {
    path: &'a Path,
    layout: &'a Layout,
    /// Required columns sorted by position, so checks report the leftmost bad field first.
    checks: [(usize, Column); 4],
    /// Field buffer of the csv-core path.
    fields: Fields,
    /// Field ranges of the plain path.
    spans: Vec<(usize, usize)>,
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
    fn record(&mut self, record: Record<'_>);
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
            layout,
            checks,
            fields: Fields::new(),
            spans: vec![(0, 0); layout.field_count],
            dates: DateCache::default(),
        }
    }

    /// Parses every record of `chunk`, and returns how many records were read (good and bad).
    ///
    /// Records without quotes or stray carriage returns — nearly all of them in practice — are
    /// split from bit masks of the delimiter and the line end (`Window` when the record has the
    /// header's number of fields and fits the window, `split_plain` otherwise); the rest go
    /// through csv-core, which handles all of RFC 4180. All give the same fields for such
    /// records.
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
                Some((next, count)) => {
                    pos = next;
                    self.check_plain(data, count)
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
                        // csv-core ends a record at a bare CR; here line ends are LF or CRLF, so
                        // the rest of the physical line belongs to this bad record — up to the
                        // line feed that quote parity (as the chunk planner counts it) says ends it.
                        let head = &data[start..pos];
                        let quoting = check_quoting(trim_line_end(head), delimiter, false);
                        let odd = bytecount::count(head, b'"') % 2 == 1;
                        pos = find_boundary(data, pos, odd).unwrap_or(data.len());
                        Err(match quoting {
                            Some((reason, true)) => ("record".to_string(), reason.to_string(), true),
                            _ => (
                                "record".to_string(),
                                "a carriage return in the middle of a line (line ends are LF or CRLF)"
                                    .to_string(),
                                false,
                            ),
                        })
                    } else {
                        let at_end = chunk.is_last && pos == data.len();
                        self.check_quoted(trim_line_end(&data[start..pos]), at_end)
                    }
                }
            };
            rows += 1;
            match outcome {
                Ok(record) => sink.record(record),
                Err((column, reason, fatal)) => {
                    line += count_newlines(&data[line_pos..start]);
                    line_pos = start;
                    sink.bad_row(BadRow {
                        path: self.path.into(),
                        offset: chunk.offset + start as u64,
                        line,
                        column,
                        reason,
                        raw: trim_line_end(&data[start..pos]).to_vec(),
                        fatal,
                    });
                }
            }
        }
    }

    /// Checks a record split by [`split_plain`] into `self.spans` (`count` fields).
    fn check_plain<'d>(&self, data: &'d [u8], count: usize) -> Result<Record<'d>, RowError> {
        let layout = self.layout;
        if count != layout.field_count {
            return Err(field_count_error(count, layout.field_count));
        }
        let field = |i: usize| {
            let (a, b) = self.spans[i];
            &data[a..b]
        };
        // The common case in straight-line code; any doubt goes to the checks in column order,
        // which name the leftmost bad field.
        let (customer, product) = (field(layout.customer), field(layout.product));
        if let Some(customer_key) = text_key(data, self.spans[layout.customer])
            && let Some(product_key) = text_key(data, self.spans[layout.product])
            && let Some(day) = self.dates.day_fast(field(layout.date))
            && let Some(units) = units_value(data, self.spans[layout.units])
        {
            return Ok(Record {
                customer,
                product,
                day,
                units,
                customer_key,
                product_key,
            });
        }
        self.check_values(field)
    }

    /// Checks the record just read by csv-core into `self.fields`; `raw` is its text in the file.
    fn check_quoted(&self, raw: &[u8], at_end: bool) -> Result<Record<'_>, RowError> {
        let record_error = |reason: String, fatal| Err(("record".to_string(), reason, fatal));
        if memchr::memchr(b'"', raw).is_some()
            && let Some((reason, fatal)) = check_quoting(raw, self.layout.delimiter, at_end)
        {
            return record_error(reason.into(), fatal);
        }
        let fields = &self.fields;
        if fields.overflow {
            return record_error(
                format!(
                    "the record is longer than {} MiB or has more than {MAX_FIELDS} fields; \
                     is a line end or a quote missing?",
                    MAX_RECORD_BYTES >> 20
                ),
                false,
            );
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
                return Err((name.clone(), reason, false));
            }
        }
        Ok(Record::new(customer, product, day, units))
    }
}

/// A good text's prefix key, from the word its check loaded when it is that short; `None` when
/// the text at `data[start..end]` needs the full check.
#[inline(always)]
fn text_key(data: &[u8], (start, end): (usize, usize)) -> Option<u64> {
    match short_word(data, start, end - start) {
        Some(word) => is_ascii_without_nul(word, end - start).then(|| word.swap_bytes()),
        None => is_plain_text(&data[start..end]).then(|| prefix_key(&data[start..end])),
    }
}

/// The units at `data[start..end]` when they are plain digits; `None` when they need the full
/// check.
#[inline(always)]
fn units_value(data: &[u8], (start, end): (usize, usize)) -> Option<i32> {
    match short_word(data, start, end - start) {
        Some(word) => digits_value(word, end - start),
        None => small_units(&data[start..end]),
    }
}

/// What is wrong with a record: the column (or `record`), the reason, and whether it is fatal.
type RowError = (String, String, bool);

fn field_count_error(count: usize, expected: usize) -> RowError {
    (
        "record".to_string(),
        format!(
            "has {count} field{}, the header has {expected}",
            if count == 1 { "" } else { "s" }
        ),
        false,
    )
}

/// Splits the record at `data[start..]` at `delimiter` into `spans` (byte ranges of `data`), if it
/// holds no quote and no carriage return other than one before its line feed. Returns the
/// position after the record and its number of fields (which may exceed `spans.len()`), or
/// `None` when the record needs the full CSV parser.
fn split_plain(
    specials: &mut Specials<'_>,
    start: usize,
    spans: &mut [(usize, usize)],
) -> Option<(usize, usize)> {
    let data = specials.data;
    let mut count = 0;
    let mut field_start = start;
    let mut push = |end: usize, field_start: usize, count: &mut usize| {
        if let Some(span) = spans.get_mut(*count) {
            *span = (field_start, end);
        }
        *count += 1;
    };
    specials.seek(start);
    loop {
        let Some(j) = specials.next() else {
            push(data.len(), field_start, &mut count);
            return Some((data.len(), count));
        };
        match data[j] {
            b'\n' => {
                push(j, field_start, &mut count);
                return Some((j + 1, count));
            }
            b'\r' if data.get(j + 1) == Some(&b'\n') => {
                push(j, field_start, &mut count);
                return Some((j + 2, count));
            }
            b'\r' if j + 1 == data.len() => {
                push(j, field_start, &mut count);
                return Some((data.len(), count));
            }
            b if b == specials.delimiter => {
                push(j, field_start, &mut count);
                field_start = j + 1;
            }
            _ => return None, // a quote, or a carriage return inside the line
        }
    }
}

/// The fast way through a chunk's plain records: bit masks of a 128-byte window of the chunk —
/// delimiters, line feeds, and the bytes that need the general path (quotes, and carriage returns
/// not followed by a line feed) — from which a record's fields come out of a few bit operations,
/// without looking at each special byte. The window moves on by 64 bytes as records are taken.
struct Window<'d> {
    data: &'d [u8],
    delimiter: u8,
    /// Where the window starts.
    base: usize,
    delimiters: u128,
    line_feeds: u128,
    quotes: u128,
    carriage_returns: u128,
    /// Quotes, and carriage returns not followed by a line feed (one at the window's last byte
    /// counts, as its next byte is not known yet).
    odd: u128,
}

/// How far ahead of the window the parser asks for the chunk's bytes.
const PREFETCH_BYTES: usize = 1024;

impl<'d> Window<'d> {
    fn new(data: &'d [u8], delimiter: u8) -> Self {
        let mut window = Window {
            data,
            delimiter,
            base: 0,
            delimiters: 0,
            line_feeds: 0,
            quotes: 0,
            carriage_returns: 0,
            odd: 0,
        };
        window.fill(0);
        window
    }

    /// Starts the window at `base`.
    fn fill(&mut self, base: usize) {
        self.base = base;
        let low = class_masks(self.data, base, self.delimiter);
        let high = class_masks(self.data, base + 64, self.delimiter);
        let join = |i: usize| u128::from(low[i]) | (u128::from(high[i]) << 64);
        (self.delimiters, self.line_feeds) = (join(0), join(1));
        (self.quotes, self.carriage_returns) = (join(2), join(3));
        self.set_odd();
    }

    /// Moves the window on by 64 bytes.
    fn slide(&mut self) {
        self.base += 64;
        // Hardware prefetchers stop at page borders: ask for the bytes a little ahead.
        if let Some(ahead) = self.data.get(self.base + PREFETCH_BYTES..) {
            crate::reduce::prefetch_read(ahead);
        }
        let high = class_masks(self.data, self.base + 64, self.delimiter);
        let slide = |old: u128, new: u64| (old >> 64) | (u128::from(new) << 64);
        self.delimiters = slide(self.delimiters, high[0]);
        self.line_feeds = slide(self.line_feeds, high[1]);
        self.quotes = slide(self.quotes, high[2]);
        self.carriage_returns = slide(self.carriage_returns, high[3]);
        self.set_odd();
    }

    fn set_odd(&mut self) {
        self.odd = self.quotes | (self.carriage_returns & !(self.line_feeds >> 1));
    }

    /// Splits the record at `start` into `spans`, like [`split_plain`], when it is plain, lies
    /// within the window and has exactly `spans.len()` fields; `None` sends it the general way.
    ///
    /// A record shorter than 64 bytes — nearly all of them — is split with the masks' 64 bits
    /// from `start` (one shift of each 128-bit mask, the rest on machine words); a longer one
    /// with the whole 128-bit masks.
    #[inline]
    fn split(&mut self, start: usize, spans: &mut [(usize, usize)]) -> Option<(usize, usize)> {
        if start - self.base >= 64 {
            if start - self.base < 128 {
                self.slide();
            } else {
                self.fill(start);
            }
        }
        let shift = start - self.base; // below 64
        let line_feeds = (self.line_feeds >> shift) as u64;
        if line_feeds != 0 {
            let len = line_feeds.trailing_zeros() as usize;
            let inside = |mask: u128| (mask >> shift) as u64 & ((1u64 << len) - 1);
            return self.take_record(start, len, inside, spans);
        }
        let line_feeds = self.line_feeds >> shift;
        if line_feeds == 0 {
            return None; // longer than the window, or the chunk's last record without a line end
        }
        let len = line_feeds.trailing_zeros() as usize;
        let inside = |mask: u128| (mask >> shift) & ((1u128 << len) - 1);
        self.take_record(start, len, inside, spans)
    }

    /// Splits the record of `len` bytes at `start`, whose bits of a window mask `inside` gives
    /// (bit `i`: `start + i`), by [`Window::take_fields`], or by [`Window::take_quoted_fields`]
    /// when it holds quotes or a stray carriage return.
    #[inline(always)]
    fn take_record<M: MaskWord>(
        &self,
        start: usize,
        len: usize,
        inside: impl Fn(u128) -> M,
        spans: &mut [(usize, usize)],
    ) -> Option<(usize, usize)> {
        let (delimiters, odd) = (inside(self.delimiters), inside(self.odd));
        if !odd.is_zero() {
            let quotes = inside(self.quotes);
            return self.take_quoted_fields(start, len, delimiters, odd, quotes, spans);
        }
        self.take_fields(start, len, delimiters, spans)
    }

    /// [`Window::take_fields`] for a record with quotes (`quotes`; `odd` are those and any
    /// carriage return not before a line feed): when every quote opens or closes a whole field
    /// (`"…"` between two delimiters, with no quote, delimiter or line break inside), as files that
    /// quote every field have them, the fields are the texts between the quotes — what RFC 4180
    /// reads there. Any other quoting, or a stray carriage return, goes the general way: a
    /// delimiter or line break inside quotes leaves a field that opens with a quote and does not
    /// close with one, and a doubled quote leaves quotes inside a field.
    #[inline(never)]
    fn take_quoted_fields<M: MaskWord>(
        &self,
        start: usize,
        len: usize,
        delimiters: M,
        odd: M,
        quotes: M,
        spans: &mut [(usize, usize)],
    ) -> Option<(usize, usize)> {
        if odd != quotes {
            return None;
        }
        let split = self.take_fields(start, len, delimiters, spans)?;
        let mut enclosing = M::default();
        for span in spans.iter_mut() {
            let (a, b) = *span;
            if a < b && quotes.has(a - start) {
                if b - a < 2 {
                    return None;
                }
                enclosing = enclosing.with(a - start).with(b - 1 - start);
                *span = (a + 1, b - 1);
            }
        }
        (enclosing == quotes).then_some(split)
    }

    /// Fills `spans` with the fields of the plain record of `len` bytes at `start` whose
    /// delimiters are the set bits of `delimiters` (bit `i`: `start + i`), when it has exactly
    /// `spans.len()` fields.
    #[inline(always)]
    fn take_fields<M: MaskWord>(
        &self,
        start: usize,
        len: usize,
        mut delimiters: M,
        spans: &mut [(usize, usize)],
    ) -> Option<(usize, usize)> {
        let count = spans.len();
        let (last, fields) = spans.split_last_mut()?;
        // One delimiter per field but the last, and none left over (a count of the mask's bits
        // would do, but without the POPCNT instruction in the baseline it costs more than this).
        let mut field_start = start;
        for span in fields {
            if delimiters.is_zero() {
                return None;
            }
            let end = start + delimiters.lowest();
            *span = (field_start, end);
            field_start = end + 1;
            delimiters = delimiters.without_lowest();
        }
        if !delimiters.is_zero() {
            return None;
        }
        let line_feed = start + len;
        let crlf = line_feed > field_start && self.data[line_feed - 1] == b'\r';
        *last = (field_start, line_feed - usize::from(crlf));
        Some((line_feed + 1, count))
    }
}

/// The bit operations [`Window::take_fields`] needs, on a 64- or a 128-bit mask.
trait MaskWord: Copy + Default + PartialEq {
    fn is_zero(self) -> bool;
    /// The index of the lowest set bit (the mask is not zero).
    fn lowest(self) -> usize;
    /// The mask without its lowest set bit.
    fn without_lowest(self) -> Self;
    /// Whether bit `i` is set.
    fn has(self, i: usize) -> bool;
    /// The mask with bit `i` set.
    fn with(self, i: usize) -> Self;
}

macro_rules! mask_word {
    ($($t:ty),*) => {$(
        impl MaskWord for $t {
            #[inline(always)]
            fn is_zero(self) -> bool {
                self == 0
            }
            #[inline(always)]
            fn lowest(self) -> usize {
                self.trailing_zeros() as usize
            }
            #[inline(always)]
            fn without_lowest(self) -> Self {
                self & (self - 1)
            }
            #[inline(always)]
            fn has(self, i: usize) -> bool {
                (self >> i) & 1 == 1
            }
            #[inline(always)]
            fn with(self, i: usize) -> Self {
                self | (1 << i)
            }
        }
    )*};
}

mask_word!(u64, u128);

/// The bytes [`class_masks`] marks, in the order of its masks.
fn classes(delimiter: u8) -> [u8; 4] {
    [delimiter, b'\n', b'"', b'\r']
}

/// Masks of the delimiter, line feeds, quotes and carriage returns among the up to 64 bytes from
/// `from` (bit `i` for `data[from + i]`).
#[inline]
fn class_masks(data: &[u8], from: usize, delimiter: u8) -> [u64; 4] {
    match data.get(from..from + 64) {
        Some(window) => class_masks64(window.try_into().expect("64 bytes"), delimiter),
        None => class_masks_bytewise(data.get(from..).unwrap_or_default(), delimiter),
    }
}

/// [`class_masks`] of up to 64 bytes, one byte at a time.
fn class_masks_bytewise(bytes: &[u8], delimiter: u8) -> [u64; 4] {
    let classes = classes(delimiter);
    let mut masks = [0u64; 4];
    for (i, &b) in bytes.iter().enumerate() {
        for (mask, &class) in masks.iter_mut().zip(&classes) {
            *mask |= u64::from(b == class) << i;
        }
    }
    masks
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn class_masks64(window: &[u8; 64], delimiter: u8) -> [u64; 4] {
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above; std caches the answer).
        return unsafe { class_masks64_avx2(window, delimiter) };
    }
    // SAFETY: SSE2 is part of the x86_64 baseline, so every CPU that runs this code has it.
    unsafe { class_masks64_sse2(window, delimiter) }
}

/// [`class_masks`] of a whole window with AVX2: a 32-byte compare and a `movemask` per class
/// and half window.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn class_masks64_avx2(window: &[u8; 64], delimiter: u8) -> [u64; 4] {
    use std::arch::x86_64::{
        __m256i, _mm256_cmpeq_epi8, _mm256_loadu_si256, _mm256_movemask_epi8, _mm256_set1_epi8,
    };
    let classes = classes(delimiter).map(|b| _mm256_set1_epi8(b as i8));
    let (low, high) = window.split_at(32);
    // SAFETY: each half is 32 readable bytes; the load has no alignment requirement.
    let (low, high) = unsafe {
        (
            _mm256_loadu_si256(low.as_ptr().cast::<__m256i>()),
            _mm256_loadu_si256(high.as_ptr().cast::<__m256i>()),
        )
    };
    classes.map(|class| {
        let bits = |v| u64::from(_mm256_movemask_epi8(_mm256_cmpeq_epi8(v, class)) as u32);
        bits(low) | (bits(high) << 32)
    })
}

/// [`class_masks`] of a whole window with SSE2: a 16-byte compare and a `movemask` per class
/// and 16 bytes.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn class_masks64_sse2(window: &[u8; 64], delimiter: u8) -> [u64; 4] {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};
    let classes = classes(delimiter).map(|b| _mm_set1_epi8(b as i8));
    let mut masks = [0u64; 4];
    for (k, part) in window.chunks_exact(16).enumerate() {
        let word = |i: usize| i64::from_le_bytes(part[i..i + 8].try_into().expect("eight bytes"));
        let v = _mm_set_epi64x(word(8), word(0));
        for (mask, class) in masks.iter_mut().zip(classes) {
            *mask |= u64::from(_mm_movemask_epi8(_mm_cmpeq_epi8(v, class)) as u16) << (16 * k);
        }
    }
    masks
}

#[cfg(not(target_arch = "x86_64"))]
fn class_masks64(window: &[u8; 64], delimiter: u8) -> [u64; 4] {
    class_masks_bytewise(window, delimiter)
}

/// The positions of the delimiter, quotes, CR and LF in a chunk, in order, found 64 bytes at a
/// time: one bit mask per window, from which each position is taken with a count of trailing
/// zeros. Every byte is looked at once, however short the fields.
struct Specials<'d> {
    data: &'d [u8],
    delimiter: u8,
    /// Where the window of `bits` starts.
    base: usize,
    /// Bit `i` set: `data[base + i]` is special and not taken yet.
    bits: u64,
}

impl<'d> Specials<'d> {
    fn new(data: &'d [u8], delimiter: u8) -> Self {
        Specials {
            data,
            delimiter,
            base: 0,
            bits: special_mask(data, 0, delimiter),
        }
    }

    /// Goes to `pos`: positions before it are dropped.
    #[inline]
    fn seek(&mut self, pos: usize) {
        if (self.base..self.base + 64).contains(&pos) {
            self.bits &= u64::MAX << (pos - self.base);
        } else {
            self.base = pos;
            self.bits = special_mask(self.data, pos, self.delimiter);
        }
    }

    /// The next special position, if any.
    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.bits == 0 {
            self.base += 64;
            if self.base >= self.data.len() {
                return None;
            }
            self.bits = special_mask(self.data, self.base, self.delimiter);
        }
        let at = self.base + self.bits.trailing_zeros() as usize;
        self.bits &= self.bits - 1;
        Some(at)
    }
}

/// Bit `i` set when `data[from + i]` is the delimiter, a quote, CR or LF (for the up to 64 bytes
/// from `from`).
#[inline]
fn special_mask(data: &[u8], from: usize, delimiter: u8) -> u64 {
    class_masks(data, from, delimiter)
        .into_iter()
        .fold(0, |bits, mask| bits | mask)
}

/// Day numbers of the months seen, so that most dates cost a table look-up: the key is the
/// `YYYY-MM-` prefix as an integer, in a small direct-mapped table.
struct DateCache {
    months: std::cell::RefCell<Vec<Month>>,
}

#[derive(Clone, Copy, Default)]
struct Month {
    /// The first eight bytes of the date (`YYYY-MM-`) as a little-endian integer; 0 when empty.
    prefix: u64,
    /// Day number of the month's day 0 (the day before the 1st).
    day_zero: i32,
    /// Days in the month.
    days: u8,
}

const DATE_CACHE_SLOTS: usize = 64;

impl Default for DateCache {
    fn default() -> Self {
        DateCache {
            months: std::cell::RefCell::new(vec![Month::default(); DATE_CACHE_SLOTS]),
        }
    }
}

impl DateCache {
    fn day(&self, value: &[u8]) -> Result<i32, String> {
        match self.day_fast(value) {
            Some(day) => Ok(day),
            None => check_date(value),
        }
    }

    /// The day of a valid date; `None` when it is not valid (or not of the usual shape).
    #[inline(always)]
    fn day_fast(&self, value: &[u8]) -> Option<i32> {
        let &[.., d0, d1] = value else { return None };
        let (prefix, _) = value.split_first_chunk::<8>()?;
        if value.len() != 10 || !d0.is_ascii_digit() || !d1.is_ascii_digit() {
            return None;
        }
        let prefix = u64::from_le_bytes(*prefix);
        let day_of_month = u32::from(d0 - b'0') * 10 + u32::from(d1 - b'0');
        let slot = (prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 58) as usize;
        let mut months = self.months.borrow_mut();
        let month = &mut months[slot];
        if month.prefix != prefix {
            // A month not seen yet (or evicted): its 1st, parsed and checked in full.
            let mut first = *b"0000-00-01";
            first[..8].copy_from_slice(&value[..8]);
            let day_one = parse_date(&first).ok()?;
            let (year, mon, _) = crate::date::civil_from_days(day_one);
            *month = Month {
                prefix,
                day_zero: day_one - 1,
                days: crate::date::days_in_month(year as u32, mon) as u8,
            };
        }
        (1..=u32::from(month.days))
            .contains(&day_of_month)
            .then(|| month.day_zero + day_of_month as i32)
    }
}

fn csv_reader(delimiter: u8) -> csv_core::Reader {
    csv_core::ReaderBuilder::new()
        .delimiter(delimiter)
        .terminator(csv_core::Terminator::CRLF)
        .build()
}

fn trim_line_end(mut raw: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = raw {
        raw = rest;
    }
    raw
}

/// The field buffer of one record.
struct Fields {
    out: Vec<u8>,
    ends: Vec<usize>,
    count: usize,
    /// The record did not fit `MAX_RECORD_BYTES` / `MAX_FIELDS`; its fields are lost.
    overflow: bool,
}

impl Fields {
    fn new() -> Self {
        Fields {
            out: vec![0; 4096],
            ends: vec![0; 16],
            count: 0,
            overflow: false,
        }
    }

    fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.out[start..self.ends[i]]
    }

    /// Reads one record from the start of `input`, which ends at a record boundary or at the end
    /// of the file. Returns the bytes consumed, or `None` when `input` holds no record.
    fn read(&mut self, reader: &mut csv_core::Reader, input: &[u8]) -> Option<usize> {
        use csv_core::ReadRecordResult as R;
        let (mut nin, mut nout) = (0, 0);
        self.count = 0;
        self.overflow = false;
        loop {
            let (result, i, o, e) = reader.read_record(
                &input[nin..],
                &mut self.out[nout..],
                &mut self.ends[self.count..],
            );
            nin += i;
            nout += o;
            self.count += e;
            match result {
                R::Record => return Some(nin),
                R::End => return None,
                // All of `input` is consumed; the next call, with empty input, ends the record.
                R::InputEmpty => {}
                R::OutputFull if self.out.len() < MAX_RECORD_BYTES => {
                    self.out.resize(self.out.len() * 2, 0);
                }
                R::OutputEndsFull if self.ends.len() < MAX_FIELDS => {
                    self.ends.resize(self.ends.len() * 2, 0);
                }
                // Too big: keep reading to find the record's end, overwriting what was kept.
                R::OutputFull | R::OutputEndsFull => {
                    self.overflow = true;
                    nout = 0;
                    self.count = 0;
                }
            }
        }
    }
}

/// Checks that quotes in `raw` follow RFC 4180. Returns the reason and whether the row is fatal
/// (its quotes make the record boundaries after it ambiguous).
fn check_quoting(raw: &[u8], delimiter: u8, at_end: bool) -> Option<(&'static str, bool)> {
    #[derive(PartialEq)]
    enum State {
        FieldStart,
        Unquoted,
        Quoted,
        AfterQuote,
    }
    let mut state = State::FieldStart;
    let mut text_after_quote = false;
    for &b in raw {
        state = match (state, b) {
            (State::FieldStart | State::AfterQuote, d) if d == delimiter => State::FieldStart,
            (State::Unquoted, d) if d == delimiter => State::FieldStart,
            (State::FieldStart, b'"') => State::Quoted,
            (State::Unquoted, b'"') => {
                return Some((
                    "a quote inside an unquoted field; RFC 4180 wants the whole field quoted and \
                     inner quotes doubled. This row cannot be skipped: the record boundaries \
                     after it are ambiguous",
                    true,
                ));
            }
            (State::FieldStart | State::Unquoted, _) => State::Unquoted,
            (State::Quoted, b'"') => State::AfterQuote,
            (State::Quoted, _) => State::Quoted,
            (State::AfterQuote, b'"') => State::Quoted,
            (State::AfterQuote, _) => {
                text_after_quote = true;
                State::Unquoted
            }
        };
    }
    if state == State::Quoted {
        let why = if at_end {
            "a quoted field is never closed: the quote opened here runs to the end of the file"
        } else {
            "a quoted field is never closed"
        };
        return Some((why, true));
    }
    text_after_quote.then_some((
        "text after the closing quote of a field; quote the whole field",
        false,
    ))
}

fn shown(value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if text.chars().count() > 40 {
        format!("`{}…`", text.chars().take(40).collect::<String>())
    } else {
        format!("`{text}`")
    }
}

/// The 1 to 8 bytes of `data[start..start + len]` as a little-endian word, zero above them, when
/// eight bytes can be read at `start` (one load instead of a loop over the bytes).
#[inline]
fn short_word(data: &[u8], start: usize, len: usize) -> Option<u64> {
    if !(1..=8).contains(&len) {
        return None;
    }
    let word = u64::from_le_bytes(data.get(start..start + 8)?.try_into().expect("eight bytes"));
    Some(word & (u64::MAX >> (8 * (8 - len))))
}

/// Whether the low `bytes` bytes of `word` (1 to 8) are ASCII without NUL.
#[inline]
fn is_ascii_without_nul(word: u64, bytes: usize) -> bool {
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    const LOWS: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    // High bit of each byte: set for bytes of 0x80 and above, or (second term) for non-zero ones.
    let mask = HIGHS >> (8 * (8 - bytes)); // the low `bytes` bytes
    word & mask == 0 && (((word & LOWS) + LOWS) | word) & mask == mask
}

/// The value of the 1 to 8 ASCII digits in the low `len` bytes of `word` (first digit lowest),
/// without a branch per digit; `None` when any of them is not a digit.
#[inline]
fn digits_value(word: u64, len: usize) -> Option<i32> {
    const ZEROS: u64 = 0x3030_3030_3030_3030;
    // Move the digits to the top bytes and fill the bytes below them with '0's: the same number
    // written with eight digits.
    let padded = (word << (8 * (8 - len))) | ZEROS.checked_shr(8 * len as u32).unwrap_or(0);
    let all_digits = padded & 0xf0f0_f0f0_f0f0_f0f0 == ZEROS
        && (padded + 0x0606_0606_0606_0606) & 0xf0f0_f0f0_f0f0_f0f0 == ZEROS;
    if !all_digits {
        return None;
    }
    // Combine neighbouring digits, then pairs, then quads (the first digit is the lowest byte).
    let v = padded & 0x0f0f_0f0f_0f0f_0f0f;
    let v = (v * 10 + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    let v = (v * 100 + (v >> 16)) & 0x0000_ffff_0000_ffff;
    let v = (v * 10_000 + (v >> 32)) & 0xffff_ffff;
    Some(v as i32)
}

/// `unitsSold` of one to nine digits without a sign — the common case, which always fits an
/// `i32`; `None` for anything else (then [`check_units`] decides).
#[inline]
fn small_units(value: &[u8]) -> Option<i32> {
    if !(1..=9).contains(&value.len()) {
        return None;
    }
    let mut n = 0u32;
    let mut bad = 0u32;
    for &b in value {
        let digit = u32::from(b.wrapping_sub(b'0'));
        bad |= u32::from(digit > 9);
        n = n.wrapping_mul(10).wrapping_add(digit);
    }
    (bad == 0).then_some(n as i32)
}

/// Whether `value` is 1 to 255 bytes of ASCII without NUL: the common case of a good text field,
/// checked eight bytes at a time.
#[inline]
fn is_plain_text(value: &[u8]) -> bool {
    if !(1..=MAX_TEXT_BYTES).contains(&value.len()) {
        return false;
    }
    let mut words = value.chunks_exact(8);
    let whole = words
        .by_ref()
        .all(|w| is_ascii_without_nul(u64::from_le_bytes(w.try_into().expect("eight bytes")), 8));
    let rest = words.remainder();
    whole
        && (rest.is_empty() || {
            let word = rest
                .iter()
                .rev()
                .fold(0u64, |word, &b| (word << 8) | u64::from(b));
            is_ascii_without_nul(word, rest.len())
        })
}

fn check_text(value: &[u8]) -> Result<&[u8], String> {
    if is_plain_text(value) {
        return Ok(value);
    }
    if value.is_empty() {
        return Err("is empty".into());
    }
    if value.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "is {} bytes long; at most {MAX_TEXT_BYTES} are allowed",
            value.len()
        ));
    }
    if let Some(i) = memchr::memchr(0, value) {
        return Err(format!(
            "holds a NUL byte (at byte {}), which PostgreSQL text cannot store",
            i + 1
        ));
    }
    if let Err(e) = std::str::from_utf8(value) {
        return Err(format!(
            "is not valid UTF-8 (bad byte 0x{:02x} at byte {})",
            value[e.valid_up_to()],
            e.valid_up_to() + 1
        ));
    }
    Ok(value)
}

fn check_date(value: &[u8]) -> Result<i32, String> {
    parse_date(value).map_err(|e| match e {
        DateError::Shape => format!("{} is not a date of the form YYYY-MM-DD", shown(value)),
        DateError::NoSuchDay => format!("{} is not a day of the calendar", shown(value)),
    })
}

/// Parses a base-10 integer with an optional sign that fits `i32`.
pub fn check_units(value: &[u8]) -> Result<i32, String> {
    if value.is_empty() {
        return Err("is empty".into());
    }
    let (negative, digits) = match value {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, value),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(format!("{} is not a whole number", shown(value)));
    }
    let mut magnitude: i64 = 0;
    for &d in digits {
        magnitude = magnitude * 10 + i64::from(d - b'0');
        if magnitude > 1 << 31 {
            break;
        }
    }
    let n = if negative { -magnitude } else { magnitude };
    i32::try_from(n).map_err(|_| {
        format!(
            "{} does not fit a 32-bit integer ({} to {})",
            shown(value),
            i32::MIN,
            i32::MAX
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::draws;
    use std::borrow::Cow;

    const HEADER: &[u8] = b"transactionId|custId|transactionDate|productSold|unitsSold\n";

    #[derive(Default)]
    struct Collect {
        good: Vec<(String, String, i32, i32)>,
        bad: Vec<BadRow>,
    }

    impl RowSink for Collect {
        fn record(&mut self, r: Record<'_>) {
            let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
            self.good
                .push((s(r.customer), s(r.product), r.day, r.units));
        }
        fn bad_row(&mut self, row: BadRow) {
            self.bad.push(row);
        }
    }

    fn parse_all(text: &[u8]) -> Collect {
        let path = Path::new("t.csv");
        let header = read_header(path, text, Delimiter::default()).unwrap();
        let chunk = Chunk {
            data: Cow::Borrowed(&text[header.data_start..]),
            offset: header.data_start as u64,
            first_line: header.data_line,
            is_last: true,
        };
        let mut sink = Collect::default();
        let rows = ChunkParser::new(path, &header.layout).parse(&chunk, &mut sink);
        assert_eq!(rows as usize, sink.good.len() + sink.bad.len());
        sink
    }

    fn with_header(rows: &str) -> Vec<u8> {
        let mut v = HEADER.to_vec();
        v.extend_from_slice(rows.as_bytes());
        v
    }

    #[test]
    fn samples_take_the_customer_of_the_first_whole_good_line() {
        let text = b"custId|productSold|transactionDate|unitsSold\n";
        let layout = read_header(Path::new("t"), text, Delimiter::default())
            .unwrap()
            .layout;
        let sample = |bytes: &str, at_start| {
            sample_customer(bytes.as_bytes(), at_start, &layout).map(|c| c.to_vec())
        };
        assert_eq!(sample("c1|p|2011-01-01|1\n", true).unwrap(), b"c1");
        assert_eq!(
            sample("1|c1|p|2011-01-01|1\r\nc2|p|x|1\n", false).unwrap(),
            b"c2"
        );
        assert_eq!(
            sample("x\n\"c|3\"|p|2011-01-01|1\n", false).unwrap(),
            b"c|3"
        );
        assert_eq!(
            sample("c1|p|2011-01-01|1", true),
            None,
            "no line end within the bytes"
        );
        assert_eq!(sample("c1|p|2011-01-01\n", true), None, "three fields");
        assert_eq!(
            sample("\"c1|p|2011-01-01|1\n", true),
            None,
            "a quote left open"
        );
        assert_eq!(sample("|p|2011-01-01|1\n", true), None, "no customer");
        assert_eq!(sample("\"c\0\"|p|d|1\n", true), None, "a NUL byte");
    }

    #[test]
    fn digits_of_a_word_are_read_like_the_full_check() {
        let cases: Vec<Vec<u8>> = (0..=99_999_999u64)
            .step_by(9_973)
            .chain([0, 7, 10, 99, 100, 12_345_678, 99_999_999])
            .map(|n| n.to_string().into_bytes())
            .chain(
                [
                    "007", "00000000", "1a", "a1", "12:4", "9/", "-1", "+1", " 1", "1 ", "\u{ff}",
                ]
                .map(|s| s.as_bytes().to_vec()),
            )
            .collect();
        for text in cases {
            let mut bytes = [0u8; 8];
            bytes[..text.len()].copy_from_slice(&text);
            let word = u64::from_le_bytes(bytes);
            let expected = text
                .iter()
                .all(u8::is_ascii_digit)
                .then(|| check_units(&text).unwrap());
            assert_eq!(
                digits_value(word, text.len()),
                expected,
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }

    #[test]
    fn class_masks_agree_with_a_plain_loop() {
        let mut next = draws(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let mut window = [0u8; 64];
            for b in &mut window {
                *b = *[b'|', b'\n', b'"', b'\r', b'a', 0xff, b',']
                    .get(next(10) as usize)
                    .unwrap_or(&b'x');
            }
            let mut expected = [0u64; 4];
            for (i, &b) in window.iter().enumerate() {
                for (mask, class) in expected.iter_mut().zip([b'|', b'\n', b'"', b'\r']) {
                    *mask |= u64::from(b == class) << i;
                }
            }
            assert_eq!(class_masks64(&window, b'|'), expected);
            #[cfg(target_arch = "x86_64")]
            {
                // SAFETY: SSE2 is part of the x86_64 baseline.
                assert_eq!(unsafe { class_masks64_sse2(&window, b'|') }, expected);
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: the CPU has AVX2.
                    assert_eq!(unsafe { class_masks64_avx2(&window, b'|') }, expected);
                }
            }
        }
    }

    #[test]
    fn window_splits_plain_records_like_split_plain() {
        // Records of `count` fields of 0 to 40 bytes (so from a few bytes to 300, crossing the
        // window's 64- and 128-byte borders at every offset), with now and then a quote, a CR, a
        // CRLF line end or one delimiter too many or too few.
        let mut next = draws(0x2545_f491_4f6c_dd1d);
        let mut fast = 0;
        for count in 1..=8 {
            let mut data = Vec::new();
            while data.len() < 100_000 {
                for field in 0..count {
                    if field > 0 {
                        data.push(b'|');
                    }
                    for _ in 0..next(41) {
                        data.push(match next(2000) {
                            0 => b'"',
                            1 => b'\r',
                            2 => b'|',
                            _ => b'a' + next(26) as u8,
                        });
                    }
                }
                data.extend_from_slice(if next(4) == 0 { b"\r\n" } else { b"\n" });
            }
            let mut window = Window::new(&data, b'|');
            let mut specials = Specials::new(&data, b'|');
            let mut spans = vec![(0, 0); count];
            let mut expected = vec![(0, 0); count];
            walk_records(&data, |pos| {
                let plain = split_plain(&mut specials, pos, &mut expected);
                if let Some(split) = window.split(pos, &mut spans) {
                    if plain.is_none() {
                        // Quotes that happened to enclose whole fields: as csv-core reads them.
                        assert_csv_core_agrees(&data, pos, split, &spans);
                    } else {
                        assert_eq!(Some(split), plain, "{count} fields, record at {pos}");
                        assert_eq!(spans, expected, "{count} fields, record at {pos}");
                    }
                    fast += 1;
                }
                match plain {
                    Some((next, _)) => next,
                    None => memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i + 1),
                }
            });
        }
        assert!(fast > 5_000, "the window took only {fast} records");
    }

    /// Calls `visit` with the start of each record of `data` (blank lines skipped, as `parse`
    /// does); it returns where the next one may start.
    fn walk_records(data: &[u8], mut visit: impl FnMut(usize) -> usize) {
        let mut pos = 0;
        loop {
            while pos < data.len() && matches!(data[pos], b'\n' | b'\r') {
                pos += 1;
            }
            if pos == data.len() {
                return;
            }
            pos = visit(pos);
        }
    }

    /// Asserts that the record at `data[pos..]`, split by the window into `spans` with `split`
    /// (next position, field count), is what csv-core reads there, with well-formed quotes.
    fn assert_csv_core_agrees(
        data: &[u8],
        pos: usize,
        split: (usize, usize),
        spans: &[(usize, usize)],
    ) {
        let mut reader = csv_reader(b'|');
        reader.read_record(b"\n", &mut [], &mut []); // past the BOM check, as `parse` does
        let mut fields = Fields::new();
        let consumed = fields.read(&mut reader, &data[pos..]).unwrap();
        let raw = trim_line_end(&data[pos..pos + consumed]);
        assert_eq!(check_quoting(raw, b'|', false), None, "{raw:?}");
        // csv-core stops after the CR of a CRLF; the LF is a blank line to it.
        let end = pos + consumed;
        let end = end + usize::from(data[end - 1] == b'\r' && data.get(end) == Some(&b'\n'));
        assert_eq!(split, (end, fields.count), "{raw:?}");
        let ours: Vec<&[u8]> = spans.iter().map(|&(a, b)| &data[a..b]).collect();
        let theirs: Vec<&[u8]> = (0..fields.count).map(|i| fields.get(i)).collect();
        assert_eq!(ours, theirs, "{raw:?}");
    }

    #[test]
    fn window_reads_fields_quoted_whole_like_csv_core() {
        // Records of 1 to 8 fields, each plain, quoted whole, or quoted around a delimiter, a
        // doubled quote, a line break or a CR, or quoted badly; LF or CRLF line ends. Every
        // record the window takes must be read as csv-core reads it, with well-formed quotes.
        let mut next = draws(0x9e37_79b9_7f4a_7c15);
        let (mut fast, mut quoted_fast) = (0, 0);
        for count in 1..=8 {
            let mut data = Vec::new();
            while data.len() < 100_000 {
                for field in 0..count {
                    if field > 0 {
                        data.push(b'|');
                    }
                    let text: Vec<u8> = (0..next(12)).map(|_| b'a' + next(26) as u8).collect();
                    let (head, tail) = text.split_at(text.len() / 2);
                    let field: Vec<u8> = match next(12) {
                        0..=4 => text.clone(),
                        5..=8 => [&b"\""[..], &text, b"\""].concat(),
                        9 => [
                            &b"\""[..],
                            head,
                            [&b"|"[..], b"\"\"", b"\n", b"\r"][next(4) as usize],
                            tail,
                            b"\"",
                        ]
                        .concat(),
                        10 => [&b"\""[..], &text].concat(),
                        _ => [&b"\""[..], head, b"\"", tail].concat(),
                    };
                    data.extend_from_slice(&field);
                }
                data.extend_from_slice(if next(4) == 0 { b"\r\n" } else { b"\n" });
            }
            let mut window = Window::new(&data, b'|');
            let mut spans = vec![(0, 0); count];
            walk_records(&data, |pos| match window.split(pos, &mut spans) {
                Some(split) => {
                    assert_csv_core_agrees(&data, pos, split, &spans);
                    fast += 1;
                    quoted_fast += usize::from(data[pos..split.0].contains(&b'"'));
                    split.0
                }
                None => {
                    // Past this record as csv-core reads it (a bad one to its line end).
                    let mut reader = csv_reader(b'|');
                    reader.read_record(b"\n", &mut [], &mut []);
                    let consumed = Fields::new().read(&mut reader, &data[pos..]);
                    let line =
                        memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i + 1);
                    consumed.map_or(line, |c| pos + c)
                }
            });
        }
        assert!(
            fast > 5_000 && quoted_fast > 2_000,
            "the window took {fast} records, {quoted_fast} quoted"
        );
    }

    #[test]
    fn header_by_name_any_order_any_case_extra_columns() {
        let text = b"\xef\xbb\xbf\r\nUNITSSOLD|extra|productsold|CustId|TransactionDate\r\n5|x|P1|c1|2011-01-02\r\n";
        let c = parse_all(text);
        assert_eq!(c.good, vec![("c1".into(), "P1".into(), 14_976, 5)]);
    }

    #[test]
    fn missing_and_duplicate_columns() {
        let e = read_header(
            Path::new("f"),
            b"custId|productSold|unitsSold\n",
            Delimiter::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("no column `transactionDate`"), "{e}");
        let e = read_header(
            Path::new("f"),
            b"custId|CUSTID|transactionDate|productSold|unitsSold\n",
            Delimiter::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
    }

    #[test]
    fn wrong_delimiter_is_named() {
        let e = read_header(
            Path::new("f"),
            b"transactionId,custId,transactionDate,productSold,unitsSold\n1,2,3,4,5\n",
            Delimiter::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("try --delimiter ','"), "{e}");
        assert_eq!(e.exit_code(), 3);
    }

    #[test]
    fn empty_file_and_blank_lines_only() {
        for text in [&b""[..], b"\n\n\r\n", b"\xef\xbb\xbf"] {
            let e = read_header(Path::new("f"), text, Delimiter::default()).unwrap_err();
            assert!(e.to_string().contains("empty"), "{e}");
        }
    }

    #[test]
    fn crlf_blank_lines_and_no_final_newline() {
        let c = parse_all(&with_header(
            "1|a|2011-01-01|P|1\r\n\r\n\n2|b|2011-01-02|Q|-3",
        ));
        assert_eq!(c.good.len(), 2);
        assert_eq!(c.good[1], ("b".into(), "Q".into(), 14_976, -3));
        assert!(c.bad.is_empty());
    }

    #[test]
    fn quoted_fields_with_delimiter_quote_and_line_breaks() {
        let c = parse_all(&with_header(
            "1|\"a|b\"|2011-01-01|\"P\"\"1\"|1\n2|\"multi\r\nline\"|2011-01-01|P|\"7\"\n",
        ));
        assert!(c.bad.is_empty(), "{:?}", c.bad);
        assert_eq!(c.good[0].0, "a|b");
        assert_eq!(c.good[0].1, "P\"1");
        assert_eq!(c.good[1].0, "multi\r\nline");
        assert_eq!(c.good[1].3, 7);
    }

    #[test]
    fn bad_rows_have_physical_line_column_and_reason() {
        let c = parse_all(&with_header(
            "1|\"x\ny\"|2011-01-01|P|1\n\n2|c|2011-02-30|P|1\n3|c|2011-01-01|P|1.5\n4|c|2011-01-01|P\n",
        ));
        let got: Vec<(u64, &str)> = c.bad.iter().map(|b| (b.line, b.column.as_str())).collect();
        assert_eq!(
            got,
            vec![(5, "transactionDate"), (6, "unitsSold"), (7, "record")]
        );
        assert!(c.bad[0].reason.contains("`2011-02-30` is not a day"));
        assert_eq!(c.bad[1].raw, b"3|c|2011-01-01|P|1.5");
        assert_eq!(c.good.len(), 1);
    }

    #[test]
    fn text_fields_rules() {
        let long = "x".repeat(256);
        let ok255 = "y".repeat(255);
        let c = parse_all(&with_header(&format!(
            "1||2011-01-01|P|1\n2|{long}|2011-01-01|P|1\n3|{ok255}|2011-01-01|P|1\n4|a\0b|2011-01-01|P|1\n5|c|2011-01-01||1\n"
        )));
        assert_eq!(c.good.len(), 1);
        let reasons: Vec<&str> = c.bad.iter().map(|b| b.reason.as_str()).collect();
        assert!(reasons[0].contains("empty"));
        assert!(reasons[1].contains("256 bytes"));
        assert!(reasons[2].contains("NUL"));
        assert_eq!(c.bad[3].column, "productSold");
        let mut invalid = with_header("1|a");
        invalid.extend_from_slice(b"\xff|2011-01-01|P|1\n");
        assert!(parse_all(&invalid).bad[0].reason.contains("UTF-8"));
    }

    #[test]
    fn units_rules() {
        assert_eq!(check_units(b"0"), Ok(0));
        assert_eq!(check_units(b"-17"), Ok(-17));
        assert_eq!(check_units(b"+17"), Ok(17));
        assert_eq!(check_units(b"2147483647"), Ok(i32::MAX));
        assert_eq!(check_units(b"-2147483648"), Ok(i32::MIN));
        for bad in [
            &b"2147483648"[..],
            b"-2147483649",
            b"99999999999999999999999",
        ] {
            assert!(check_units(bad).unwrap_err().contains("32-bit"));
        }
        for bad in [
            &b"1.5"[..],
            b"abc",
            b"-",
            b"+",
            b" 1",
            b"1 ",
            b"1e3",
            b"--1",
        ] {
            assert!(
                check_units(bad).unwrap_err().contains("whole number"),
                "{bad:?}"
            );
        }
        assert_eq!(check_units(b"").unwrap_err(), "is empty");
    }

    #[test]
    fn quoting_problems() {
        let c = parse_all(&with_header("1|a\"b|2011-01-01|P|1\n"));
        assert!(c.bad[0].fatal && c.bad[0].reason.contains("unquoted field"));
        let c = parse_all(&with_header("1|\"ab\"c|2011-01-01|P|1\n"));
        assert!(!c.bad[0].fatal && c.bad[0].reason.contains("after the closing quote"));
        let c = parse_all(&with_header(
            "1|a|2011-01-01|P|1\n2|\"never closed|2011-01-01|P|1\n3|b|x|y|z\n",
        ));
        assert_eq!(c.good.len(), 1);
        assert_eq!(c.bad.len(), 1);
        assert!(c.bad[0].fatal && c.bad[0].reason.contains("never closed"));
        assert_eq!(c.bad[0].line, 3);
    }

    #[test]
    fn fuzz_regression_bare_cr_after_a_stray_quote_is_fatal() {
        // Found by `cargo fuzz run record_parser`: the bare CR hid the stray quote, and the rest
        // of the input was read with the wrong quote parity.
        let c = parse_all(&with_header("0\"|1\r2\"\n4"));
        assert!(c.bad[0].fatal, "{:?}", c.bad);
        let c = parse_all(&with_header("1|a\rb|2011-01-01|P|1\n2|c|2011-01-01|P|1\n"));
        assert_eq!(c.bad.len(), 1);
        assert!(!c.bad[0].fatal && c.bad[0].reason.contains("carriage return"));
        assert_eq!(c.good.len(), 1);
    }

    #[test]
    fn a_bom_after_the_start_of_the_file_is_data() {
        let c = parse_all(&with_header("1|\u{feff}a|2011-01-01|P|1\n"));
        assert_eq!(c.good[0].0, "\u{feff}a");
        // A record whose first bytes look like a BOM keeps them: only the file's start is stripped.
        let text =
            "\u{feff}custId|transactionDate|productSold|unitsSold\n\u{feff}b|2011-01-01|P|1\n";
        let c = parse_all(text.as_bytes());
        assert_eq!(c.good[0].0, "\u{feff}b");
    }

    #[test]
    fn overlong_record_is_a_bad_row_and_parsing_goes_on() {
        let huge = "z".repeat(MAX_RECORD_BYTES + 10);
        // Quoted, it goes through csv-core, which stops keeping fields past the limit.
        let c = parse_all(&with_header(&format!(
            "1|\"{huge}\"|2011-01-01|P|1\n2|a|2011-01-01|P|1\n"
        )));
        assert_eq!(c.bad.len(), 1);
        assert!(
            c.bad[0].reason.contains("longer than"),
            "{}",
            c.bad[0].reason
        );
        assert_eq!(c.good.len(), 1);
        // Plain, the field itself is named.
        let c = parse_all(&with_header(&format!(
            "1|{huge}|2011-01-01|P|1\n2|a|2011-01-01|P|1\n"
        )));
        assert_eq!(c.bad.len(), 1);
        assert_eq!(c.bad[0].column, "custId");
        assert!(
            c.bad[0].reason.contains("1048586 bytes long"),
            "{}",
            c.bad[0].reason
        );
        assert_eq!(c.good.len(), 1);
    }

    #[test]
    fn plain_and_csv_paths_agree() {
        for line in [
            &b"1|a|2011-01-01|P|1"[..],
            b"1|a|2011-01-01|P|1\r",
            b"1|a|2011-01-01|P",
            b"1|a|2011-01-01|P|1|",
            b"|||",
            b"1|a|2011-01-01|P|1\rx",
            b"1|\"a\"|2011-01-01|P|1",
        ] {
            let mut spans = vec![(0, 0); 5];
            let plain =
                split_plain(&mut Specials::new(line, b'|'), 0, &mut spans).map(|(next, count)| {
                    let fields: Vec<&[u8]> = spans[..count.min(5)]
                        .iter()
                        .map(|&(a, b)| &line[a..b])
                        .collect();
                    (next, count, fields)
                });
            let mut fields = Fields::new();
            let mut reader = csv_reader(b'|');
            let consumed = fields.read(&mut reader, line).unwrap();
            let csv: Vec<&[u8]> = (0..fields.count.min(5)).map(|i| fields.get(i)).collect();
            match plain {
                Some((next, count, plain_fields)) => {
                    assert_eq!((next, count), (consumed, fields.count), "{line:?}");
                    assert_eq!(plain_fields, csv, "{line:?}");
                }
                None => assert!(line.contains(&b'"') || line.contains(&b'\r'), "{line:?}"),
            }
        }
    }

    #[test]
    fn date_cache_agrees_with_parse_date() {
        use crate::date::format_date;
        let cache = DateCache::default();
        // Every day of 1999-2101 in a scrambled order (to evict slots), then shapes that fail.
        for i in 0..37_600i32 {
            let day = 10_592 + (i * 7_919) % 37_600;
            let text = format_date(day);
            assert_eq!(
                cache.day(&text),
                Ok(day),
                "{}",
                String::from_utf8_lossy(&text)
            );
        }
        for bad in [
            "2011-02-29",
            "2012-02-30",
            "2011-04-31",
            "2011-13-01",
            "2011-00-10",
            "2011-01-00",
            "0000-01-01",
            "2011-01-1",
            "2011-01-001",
            "2011/01/01",
            "2011-01-0a",
            "201a-01-01",
            "",
            "2011-01-01 ",
        ] {
            assert_eq!(
                cache.day(bad.as_bytes()).is_ok(),
                parse_date(bad.as_bytes()).is_ok(),
                "{bad}"
            );
            assert!(cache.day(bad.as_bytes()).is_err(), "{bad}");
        }
        assert_eq!(
            cache.day(b"2012-02-29"),
            parse_date(b"2012-02-29").map_err(|_| String::new())
        );
    }

    #[test]
    fn plain_text_is_ascii_without_nul_of_1_to_255_bytes() {
        for len in 0..300 {
            let text = vec![b'a'; len];
            assert_eq!(is_plain_text(&text), (1..=255).contains(&len), "{len}");
            for at in 0..len.min(20) {
                for bad in [0u8, 0x80, 0xff, 0xc3] {
                    let mut t = text.clone();
                    t[at] = bad;
                    assert!(!is_plain_text(&t), "{len} {at} {bad}");
                }
            }
        }
        assert!(is_plain_text(b"\x01\x7f~ 0023938"));
    }

    #[test]
    fn specials_are_every_delimiter_quote_cr_and_lf_in_order_from_any_start() {
        // Lengths around the 64-byte window, specials at pseudo-random places, bytes above 0x7f.
        let mut next = draws(0x2545_f491_4f6c_dd1d);
        for len in (0..200).chain([255, 256, 257]) {
            let data: Vec<u8> = (0..len)
                .map(|_| match next(16) {
                    0 => b'|',
                    1 => b'"',
                    2 => b'\r',
                    3 => b'\n',
                    4 => 0x80 | b'|',
                    _ => b'a' + next(7) as u8,
                })
                .collect();
            let expected: Vec<usize> = (0..len)
                .filter(|&i| matches!(data[i], b'|' | b'"' | b'\r' | b'\n'))
                .collect();
            for from in [0, 1, 63, 64, 65, 130, len / 2, len] {
                let mut specials = Specials::new(&data, b'|');
                specials.seek(from.min(len));
                let found: Vec<usize> = std::iter::from_fn(|| specials.next()).collect();
                let want: Vec<usize> = expected.iter().copied().filter(|&i| i >= from).collect();
                assert_eq!(found, want, "{len} bytes from {from}");
            }
        }
    }

    #[test]
    fn delimiter_parsing() {
        assert_eq!("|".parse::<Delimiter>().unwrap().as_byte(), b'|');
        assert_eq!("\\t".parse::<Delimiter>().unwrap().as_byte(), b'\t');
        assert!("ab".parse::<Delimiter>().is_err());
        assert!("\"".parse::<Delimiter>().is_err());
        assert!("é".parse::<Delimiter>().is_err());
    }
}
