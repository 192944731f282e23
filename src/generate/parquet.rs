//! `custagg generate --format parquet`: the rows of the text file as a Parquet file, as a data
//! engineer's export would have them — `custId` and `transactionId` as strings, `productSold`
//! dictionary-encoded (a catalogue repeats), `transactionDate` as date32, `unitsSold` as int32 —
//! in row groups of about a million rows, Snappy-compressed.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::sync::Arc;

use arrow_array::builder::{Date32Builder, Int32Builder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::{GenerateConfig, Row, each_row};

/// Rows of a row group (and of each batch handed to the writer).
const GROUP_ROWS: usize = 1 << 20;

/// The columns being filled, a batch at a time.
struct Columns {
    ids: StringBuilder,
    customers: StringBuilder,
    days: Date32Builder,
    products: StringDictionaryBuilder<Int32Type>,
    units: Int32Builder,
    len: usize,
}

impl Columns {
    fn new() -> Self {
        Columns {
            ids: StringBuilder::new(),
            customers: StringBuilder::new(),
            days: Date32Builder::new(),
            products: StringDictionaryBuilder::new(),
            units: Int32Builder::new(),
            len: 0,
        }
    }

    fn push(&mut self, row: &Row<'_>) {
        fn text(bytes: &[u8]) -> &str {
            std::str::from_utf8(bytes).expect("generated text is ASCII")
        }
        let mut id = Vec::with_capacity(24);
        id.extend_from_slice(row.compact);
        id.push(b'-');
        id.extend_from_slice(row.id);
        self.ids.append_value(text(&id));
        self.customers.append_value(text(row.id));
        self.days.append_value(row.day);
        self.products.append_value(text(row.product));
        self.units
            .append_value(i32::try_from(row.units).expect("units are small"));
        self.len += 1;
    }

    /// The batch of the rows pushed since the last one.
    fn batch(&mut self, schema: &Arc<Schema>) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.ids.finish()),
            Arc::new(self.customers.finish()),
            Arc::new(self.days.finish()),
            Arc::new(self.products.finish()),
            Arc::new(self.units.finish()),
        ];
        self.len = 0;
        RecordBatch::try_new(schema.clone(), columns).expect("columns match the schema")
    }
}

/// The schema: the sample's columns, in its order.
fn schema() -> Arc<Schema> {
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        Field::new("transactionId", DataType::Utf8, false),
        Field::new("custId", DataType::Utf8, false),
        Field::new("transactionDate", DataType::Date32, false),
        Field::new("productSold", dictionary, false),
        Field::new("unitsSold", DataType::Int32, false),
    ]))
}

/// Writes the rows of `config` to `file` as Parquet; returns the file's size in bytes.
pub(super) fn write_parquet(config: &GenerateConfig, file: &File) -> io::Result<u64> {
    let schema = schema();
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(GROUP_ROWS))
        .build();
    let out = BufWriter::with_capacity(1 << 20, file);
    let mut writer = ArrowWriter::try_new(out, schema.clone(), Some(properties))?;
    let mut columns = Columns::new();
    each_row(config, |row| {
        columns.push(row);
        if columns.len == GROUP_ROWS {
            writer.write(&columns.batch(&schema))?;
        }
        Ok::<(), parquet::errors::ParquetError>(())
    })?;
    if columns.len > 0 {
        writer.write(&columns.batch(&schema))?;
    }
    writer.finish()?;
    let bytes = writer.bytes_written() as u64;
    writer.inner_mut().flush()?;
    Ok(bytes)
}
