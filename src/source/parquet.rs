//! A Parquet file: its footer read once, the four required columns found by name as in a CSV
//! header (case-insensitively), their types checked before any row is read, and its row groups
//! read one at a time — by any worker, so that they are decoded in parallel.

use std::fs::File;
use std::path::Path;

use arrow_array::RecordBatch;
use arrow_schema::DataType;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};

use crate::error::{Error, Result};

/// Rows of a record batch decoded at once.
const BATCH_ROWS: usize = 64 << 10;

/// An open Parquet file.
pub struct ParquetFile {
    meta: ArrowReaderMetadata,
    /// Root columns read, in file order.
    projection: Vec<usize>,
    /// The required columns, in the order of `parse::REQUIRED_COLUMNS`.
    pub columns: Columns,
    /// First row (0-based) of every row group, and one past the last.
    group_starts: Vec<u64>,
}

/// Where the required columns stand in a decoded batch, and how the file names them.
#[derive(Clone, Debug)]
pub struct Columns {
    /// Position in the batch of custId, transactionDate, productSold, unitsSold.
    pub positions: [usize; 4],
    /// The file's spelling of each.
    pub names: [String; 4],
}

impl ParquetFile {
    /// Reads the footer of `file` (opened from `path`) and finds the `required` columns.
    pub fn open(path: &Path, file: &File, required: [&str; 4]) -> Result<ParquetFile> {
        let input_error = |message: String| Error::Input {
            path: path.into(),
            message,
        };
        let meta = ArrowReaderMetadata::load(file, ArrowReaderOptions::new())
            .map_err(|e| input_error(format!("is not a readable Parquet file: {e}")))?;
        let schema = meta.schema().clone();
        let mut found = [0; 4];
        for (slot, want) in found.iter_mut().zip(required) {
            let mut matches = schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| f.name().eq_ignore_ascii_case(want));
            let Some((index, field)) = matches.next() else {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(input_error(format!(
                    "no column `{want}` (the file's columns: {})",
                    names.join(", ")
                )));
            };
            if let Some((other, _)) = matches.next() {
                return Err(input_error(format!(
                    "column `{want}` appears twice (columns {} and {})",
                    index + 1,
                    other + 1
                )));
            }
            check_type(want, field.data_type()).map_err(input_error)?;
            *slot = index;
        }
        let mut projection = found.to_vec();
        projection.sort_unstable();
        let positions = found.map(|index| projection.iter().position(|&p| p == index).unwrap());
        let names = found.map(|index| schema.field(index).name().clone());
        let mut group_starts = vec![0];
        for group in meta.metadata().row_groups() {
            let last = *group_starts.last().expect("one at least");
            group_starts.push(last + group.num_rows().max(0) as u64);
        }
        Ok(ParquetFile {
            meta,
            projection,
            columns: Columns { positions, names },
            group_starts,
        })
    }

    /// Row groups in the file.
    pub fn row_groups(&self) -> usize {
        self.group_starts.len() - 1
    }

    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        *self.group_starts.last().expect("one at least")
    }

    /// The first row (0-based) of row group `group`.
    pub fn first_row(&self, group: usize) -> u64 {
        self.group_starts[group]
    }

    /// Bytes the row group's columns take uncompressed, for the progress bar.
    pub fn group_bytes(&self, group: usize) -> u64 {
        let group = self.meta.metadata().row_group(group);
        self.projection
            .iter()
            .map(|&c| group.column(c).uncompressed_size().max(0) as u64)
            .sum()
    }

    /// Decodes row group `group` of the file at `path` into batches, handing each to `each`
    /// with the 0-based number of its first row in the file. The file is opened anew, so that
    /// each reader has its own offset.
    pub fn read_group(
        &self,
        path: &Path,
        group: usize,
        mut each: impl FnMut(&RecordBatch, u64) -> Result<()>,
    ) -> Result<()> {
        let file =
            File::open(path).map_err(|e| Error::io(path, "cannot open the source file", e))?;
        let mask = ProjectionMask::roots(self.meta.parquet_schema(), self.projection.clone());
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.meta.clone())
            .with_row_groups(vec![group])
            .with_projection(mask)
            .with_batch_size(BATCH_ROWS)
            .build()
            .map_err(|e| corrupt(path, group, &e))?;
        let mut row = self.first_row(group);
        for batch in reader {
            let batch = batch.map_err(|e| corrupt(path, group, &e))?;
            each(&batch, row)?;
            row += batch.num_rows() as u64;
        }
        Ok(())
    }
}

fn corrupt(path: &Path, group: usize, e: &dyn std::fmt::Display) -> Error {
    Error::Input {
        path: path.into(),
        message: format!("row group {group} cannot be read: {e}"),
    }
}

/// Whether a column of type `data_type` can hold the required column `name`.
fn check_type(name: &str, data_type: &DataType) -> Result<(), String> {
    let text =
        |t: &DataType| matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View);
    let is_text = match data_type {
        DataType::Dictionary(_, values) => text(values),
        other => text(other),
    };
    let ok = match name {
        "transactionDate" => is_text || matches!(data_type, DataType::Date32 | DataType::Date64),
        "unitsSold" => is_text || data_type.is_integer(),
        _ => is_text,
    };
    if ok {
        return Ok(());
    }
    let wanted = match name {
        "transactionDate" => "a date (date32, date64) or YYYY-MM-DD strings",
        "unitsSold" => "an integer type or strings",
        _ => "strings (string, large string, or a dictionary of strings)",
    };
    Err(format!(
        "column `{name}` is of type {data_type}; it must be {wanted}"
    ))
}
