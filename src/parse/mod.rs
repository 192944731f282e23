//! Records: the header found by column name, and every data row of a chunk split, checked
//! against the input rules of contract §2, and handed on as a borrowed [`Record`] (no allocation
//! per row) or a [`BadRow`](crate::error::BadRow).
//!
//! In the order a row meets them: [`header`] finds the columns; [`chunk`] drives a chunk record
//! by record; [`scan`] splits plain records from bit masks; [`quoted`] hands any other quoting
//! to csv-core and checks it; [`check`] and [`dates`] check the four fields that count.
//! [`batch`] checks the same four columns of a decoded Parquet batch.

mod batch;
mod check;
mod chunk;
mod dates;
mod delimiter;
mod header;
mod quoted;
mod scan;
#[cfg(test)]
mod tests;

pub use batch::parse_batch;
pub use check::check_units;
pub use chunk::{ChunkParser, RowSink};
pub use delimiter::Delimiter;
pub use header::{read_header, sample_customer};

use crate::key::prefix_key;

/// The columns a source must have, as contract §2 spells them (matched case-insensitively).
pub const REQUIRED_COLUMNS: [&str; 4] = ["custId", "transactionDate", "productSold", "unitsSold"];

/// Longest `custId` or `productSold`, in bytes.
pub const MAX_TEXT_BYTES: usize = 255;

/// Longest record the parser holds, in bytes of field data; a longer one is a bad row.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// Most fields a record may have before it is a bad row (the header decides the real count).
const MAX_FIELDS: usize = 4096;

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
