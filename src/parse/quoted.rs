//! The general path: csv-core reads any record that the splitter does not take (quoted fields
//! with delimiters, doubled quotes or line breaks inside, stray carriage returns), and the
//! quoting of such a record is checked against RFC 4180.

use super::{MAX_FIELDS, MAX_RECORD_BYTES};

pub(super) fn csv_reader(delimiter: u8) -> csv_core::Reader {
    csv_core::ReaderBuilder::new()
        .delimiter(delimiter)
        .terminator(csv_core::Terminator::CRLF)
        .build()
}

pub(super) fn trim_line_end(mut raw: &[u8]) -> &[u8] {
    while let [rest @ .., b'\n' | b'\r'] = raw {
        raw = rest;
    }
    raw
}

/// The field buffer of one record.
pub(super) struct Fields {
    out: Vec<u8>,
    ends: Vec<usize>,
    pub count: usize,
    /// The record did not fit `MAX_RECORD_BYTES` / `MAX_FIELDS`; its fields are lost.
    pub overflow: bool,
}

impl Fields {
    pub(super) fn new() -> Self {
        Fields {
            out: vec![0; 4096],
            ends: vec![0; 16],
            count: 0,
            overflow: false,
        }
    }

    pub(super) fn get(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        &self.out[start..self.ends[i]]
    }

    /// Reads one record from the start of `input`, which ends at a record boundary or at the end
    /// of the file. Returns the bytes consumed, or `None` when `input` holds no record.
    pub(super) fn read(&mut self, reader: &mut csv_core::Reader, input: &[u8]) -> Option<usize> {
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
/// Quoting that RFC 4180 does not allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct QuotingError {
    /// What is wrong, for the bad row's reason.
    pub reason: &'static str,
    /// The record boundaries after this record are ambiguous: the row cannot be skipped.
    pub fatal: bool,
}

pub(super) fn check_quoting(raw: &[u8], delimiter: u8, at_end: bool) -> Option<QuotingError> {
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
                return Some(QuotingError {
                    reason: "a quote inside an unquoted field; RFC 4180 wants the whole field quoted and \
                     inner quotes doubled. This row cannot be skipped: the record boundaries \
                     after it are ambiguous",
                    fatal: true,
                });
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
        return Some(QuotingError {
            reason: why,
            fatal: true,
        });
    }
    text_after_quote.then_some(QuotingError {
        reason: "text after the closing quote of a field; quote the whole field",
        fatal: false,
    })
}
