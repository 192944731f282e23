//! The header line: the required columns found by name, case-insensitively, in any order
//! (contract §2), and the customer id of a sampled line for the partitioner.
//!
//! A missing column is reported with the header as it was split, and a guess at the delimiter
//! when the header did not split at all: the usual cause is a file delimited by something else.

use std::path::Path;

use super::check::check_text;
use super::quoted::{Fields, csv_reader, trim_line_end};
use super::{Delimiter, Header, Layout, REQUIRED_COLUMNS};
use crate::error::{Error, Result};
use crate::source::count_newlines;

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
