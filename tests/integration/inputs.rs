//! Inputs as data engineers have them, against the reference: random transactions split over
//! several files — plain, gzip (one member or several), zstd, Parquet (written by the `parquet`
//! crate, a dictionary column among its types), a FIFO read as a stream — each with its own
//! header order, must give what the reference gives for all the rows at once.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::builder::StringDictionaryBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, Date32Array, Int32Array, Int64Array, LargeStringArray, RecordBatch, StringArray,
    StringViewArray,
};
use arrow_schema::{Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use proptest::prelude::*;

use custagg::Config;
use custagg::parse::Delimiter;
use custagg::source::inputs::SourceSpec;

use crate::engine::{Shape, shape, transactions, write_file};
use crate::reference::{Date, Tx, days_in_month, expected_csv, is_leap};
use crate::util::Dir;

/// How one part of the input is stored.
#[derive(Clone, Copy, Debug)]
pub enum Encoding {
    Plain,
    Gzip,
    /// Each half its own gzip member, concatenated (as `cat a.gz b.gz` makes).
    GzipMembers,
    Zstd,
    /// Parquet, with the column types chosen by the bits of the number (see [`parquet_file`]).
    Parquet(u8),
    /// Plain text through a FIFO: read as a stream.
    Fifo,
}

fn encoding() -> impl Strategy<Value = Encoding> {
    prop_oneof![
        Just(Encoding::Plain),
        Just(Encoding::Gzip),
        Just(Encoding::GzipMembers),
        Just(Encoding::Zstd),
        any::<u8>().prop_map(Encoding::Parquet),
        Just(Encoding::Fifo),
    ]
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

pub fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::encode_all(bytes, 3).unwrap()
}

/// Days from 1970-01-01 to `date`, by the reference's own calendar.
fn epoch_days((y, m, d): Date) -> i32 {
    let years: u32 = (1970..y).map(|y| if is_leap(y) { 366 } else { 365 }).sum();
    let months: u32 = (1..m).map(|m| days_in_month(y, m)).sum();
    (years + months + d - 1) as i32
}

/// `rows` as a Parquet file with the columns in `shape`'s order, in row groups of 7 rows.
/// `types` picks: custId as string, large string or dictionary (bits 0–1); transactionDate as
/// date32 or `YYYY-MM-DD` strings (bit 2); productSold as a dictionary or string view (bit 3);
/// unitsSold as int32 or int64 (bit 4).
pub fn parquet_file(rows: &[Tx], extras: &[String], shape: &Shape, types: u8) -> Vec<u8> {
    let names = [
        "transactionId",
        "custId",
        "transactionDate",
        "productSold",
        "unitsSold",
        "note",
    ];
    let dictionary = |values: Vec<&str>| -> ArrayRef {
        let mut builder = StringDictionaryBuilder::<Int32Type>::new();
        for v in values {
            builder.append_value(v);
        }
        Arc::new(builder.finish())
    };
    let column = |i: usize| -> ArrayRef {
        match i {
            0 => Arc::new(StringArray::from_iter_values(
                (0..rows.len()).map(|k| format!("t{k}")),
            )),
            1 => {
                let values: Vec<&str> = rows.iter().map(|tx| tx.customer.as_str()).collect();
                match types % 3 {
                    0 => Arc::new(StringArray::from(values)),
                    1 => Arc::new(LargeStringArray::from(values)),
                    _ => dictionary(values),
                }
            }
            2 if types & 4 != 0 => Arc::new(Date32Array::from_iter_values(
                rows.iter().map(|tx| epoch_days(tx.date)),
            )),
            2 => Arc::new(StringArray::from_iter_values(rows.iter().map(|tx| {
                let (y, m, d) = tx.date;
                format!("{y:04}-{m:02}-{d:02}")
            }))),
            3 => {
                let values: Vec<&str> = rows.iter().map(|tx| tx.product.as_str()).collect();
                if types & 8 != 0 {
                    Arc::new(StringViewArray::from(values))
                } else {
                    dictionary(values)
                }
            }
            4 if types & 16 != 0 => Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|tx| i64::from(tx.units)),
            )),
            4 => Arc::new(Int32Array::from_iter_values(rows.iter().map(|tx| tx.units))),
            _ => Arc::new(StringArray::from_iter_values(
                (0..rows.len()).map(|k| extras[k % extras.len()].clone()),
            )),
        }
    };
    let columns: Vec<ArrayRef> = shape.order.iter().map(|&i| column(i)).collect();
    let fields: Vec<Field> = shape
        .order
        .iter()
        .zip(&columns)
        .map(|(&i, array)| {
            let name = if shape.upper_case_header {
                names[i].to_uppercase()
            } else {
                names[i].to_string()
            };
            Field::new(name, array.data_type().clone(), false)
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let properties = WriterProperties::builder()
        .set_max_row_group_row_count(Some(7))
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema.clone(), Some(properties)).unwrap();
    writer
        .write(&RecordBatch::try_new(schema, columns).unwrap())
        .unwrap();
    writer.into_inner().unwrap()
}

/// Writes `rows` to `dir` as `name`, stored as `encoding`; returns its path.
pub fn write_part(
    dir: &Dir,
    name: &str,
    (rows, extras): (&[Tx], &[String]),
    shape: &Shape,
    encoding: Encoding,
) -> PathBuf {
    let text = || write_file(rows, extras, shape);
    match encoding {
        Encoding::Plain => dir.write(name, text()),
        Encoding::Gzip => dir.write(name, gzip(&text())),
        Encoding::GzipMembers => {
            let text = text();
            let (a, b) = text.split_at(text.len() / 2);
            dir.write(name, [gzip(a), gzip(b)].concat())
        }
        Encoding::Zstd => dir.write(name, zstd(&text())),
        Encoding::Parquet(types) => dir.write(name, parquet_file(rows, extras, shape, types)),
        Encoding::Fifo => dir.fifo(name, text()),
    }
}

/// Runs the engine on `sources` into a CSV file of `dir`; returns its summary and the text.
pub fn aggregate_sources(
    dir: &Dir,
    sources: Vec<SourceSpec>,
    configure: impl FnOnce(&mut Config),
) -> (custagg::pipeline::Summary, String) {
    let mut config = Config::of(sources);
    config.spill_dir = dir.root().to_path_buf();
    configure(&mut config);
    let output = dir.path("out.csv");
    let summary = custagg::run_to_csv(&config, &output, &custagg::progress::NoProgress).unwrap();
    (summary, std::fs::read_to_string(&output).unwrap())
}

/// `rows` cut at the (sorted) `cuts` into as many pieces plus one.
fn split<'a>(rows: &'a [Tx], cuts: &[prop::sample::Index]) -> Vec<&'a [Tx]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(rows.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::new();
    let mut start = 0;
    for end in at.into_iter().chain([rows.len()]) {
        pieces.push(&rows[start..end]);
        start = end;
    }
    pieces
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn many_inputs_of_every_kind_match_reference(
        rows in transactions(),
        extras in prop::collection::vec("[x|\"\n,]{0,3}", 1..3),
        parts in prop::collection::vec((shape(), encoding()), 1..5),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 4),
        chunk_size in 1usize..80,
    ) {
        let pieces = split(&rows, &cuts[..parts.len() - 1]);
        // One delimiter for the run's text; each file has its own header order and line ends.
        let delimiter = parts[0].0.delimiter;
        let expected = expected_csv(&rows);
        for (threads, force_spill) in [(1, false), (2, true), (3, false)] {
            let dir = Dir::new();
            let sources = pieces
                .iter()
                .zip(&parts)
                .enumerate()
                .map(|(k, (piece, (shape, encoding)))| {
                    let shape = Shape { delimiter, ..shape.clone() };
                    let path = write_part(&dir, &format!("part{k}"), (piece, &extras), &shape, *encoding);
                    SourceSpec::Path(path)
                })
                .collect();
            let (summary, got) = aggregate_sources(&dir, sources, |config| {
                config.delimiter = (delimiter as char).to_string().parse::<Delimiter>().unwrap();
                config.threads = threads;
                config.force_spill = force_spill;
                config.chunk_size = chunk_size;
            });
            prop_assert_eq!(summary.rows_read, rows.len() as u64);
            prop_assert_eq!(&got, &expected, "threads {} force_spill {} parts {:?}", threads, force_spill, parts);
        }
    }
}
