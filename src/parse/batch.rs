//! The rows of a decoded Parquet batch, checked against the input rules of contract §2 like the
//! fields of a CSV record and handed on as [`Record`]s or bad rows: strings, large strings,
//! string views or dictionaries of them for the ids and codes; `date32`, `date64` or
//! `YYYY-MM-DD` strings for the day; any integer type (or strings) for the units.

use std::path::Path;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_buffer::NullBuffer;
use arrow_schema::DataType;

use super::check::{check_date, check_text, check_units};
use super::{Record, RowSink};
use crate::date::{days_from_civil, format_date};
use crate::error::{BadRow, Error, Result};
use crate::source::parquet::Columns;

/// A text column, whatever its encoding.
enum Texts<'a> {
    Small(&'a arrow_array::StringArray),
    Large(&'a arrow_array::LargeStringArray),
    View(&'a arrow_array::StringViewArray),
    /// A dictionary: the value index of every row, and the values.
    Dictionary(Vec<usize>, Box<Texts<'a>>),
}

impl<'a> Texts<'a> {
    fn of(array: &'a ArrayRef) -> Option<Texts<'a>> {
        Texts::of_dyn(array.as_ref())
    }

    fn of_dyn(array: &'a dyn Array) -> Option<Texts<'a>> {
        Some(match array.data_type() {
            DataType::Utf8 => Texts::Small(array.as_string::<i32>()),
            DataType::LargeUtf8 => Texts::Large(array.as_string::<i64>()),
            DataType::Utf8View => Texts::View(array.as_string_view()),
            DataType::Dictionary(..) => {
                let dictionary = array.as_any_dictionary_opt()?;
                let values = Texts::of_dyn(dictionary.values().as_ref())?;
                Texts::Dictionary(dictionary.normalized_keys(), Box::new(values))
            }
            _ => return None,
        })
    }

    /// The text of row `i`, which is not null.
    fn get(&self, i: usize) -> &'a [u8] {
        match self {
            Texts::Small(a) => a.value(i).as_bytes(),
            Texts::Large(a) => a.value(i).as_bytes(),
            Texts::View(a) => a.value(i).as_bytes(),
            Texts::Dictionary(keys, values) => values.get(keys[i]),
        }
    }
}

/// The day column.
enum Days<'a> {
    Date32(&'a arrow_array::Date32Array),
    Date64(&'a arrow_array::Date64Array),
    Text(Texts<'a>),
}

/// The units column, widened so that any integer type's values are exact.
enum Units<'a> {
    Integers(Vec<i128>),
    Text(Texts<'a>),
}

/// One column's values and its nulls (a dictionary's null keys and null values alike).
struct Column<T> {
    nulls: Option<NullBuffer>,
    values: T,
}

impl<T> Column<T> {
    fn new(array: &ArrayRef, values: T) -> Self {
        Column {
            nulls: array.logical_nulls(),
            values,
        }
    }

    fn is_null(&self, i: usize) -> bool {
        self.nulls.as_ref().is_some_and(|n| n.is_null(i))
    }
}

/// Parses the rows of `batch` (decoded with [`Columns`]' projection), whose first row is row
/// `first_row` (0-based) of the file `path`, input number `input`; returns how many rows were
/// read. Types were checked when the file was opened.
pub fn parse_batch(
    batch: &RecordBatch,
    columns: &Columns,
    first_row: u64,
    (path, input): (&Path, u32),
    sink: &mut impl RowSink,
) -> Result<u64> {
    let array = |k: usize| batch.column(columns.positions[k]);
    let unreadable = |k: usize| Error::Input {
        path: path.into(),
        message: format!(
            "column `{}` has type {}, which cannot be read",
            columns.names[k],
            array(k).data_type()
        ),
    };
    let text = |k: usize| -> Result<Column<Texts<'_>>> {
        let values = Texts::of(array(k)).ok_or_else(|| unreadable(k))?;
        Ok(Column::new(array(k), values))
    };
    let customers = text(0)?;
    let products = text(2)?;
    let days = Column::new(
        array(1),
        match array(1).data_type() {
            DataType::Date32 => Days::Date32(array(1).as_primitive()),
            DataType::Date64 => Days::Date64(array(1).as_primitive()),
            _ => Days::Text(Texts::of(array(1)).ok_or_else(|| unreadable(1))?),
        },
    );
    let units = Column::new(
        array(3),
        match integers(array(3)) {
            Some(values) => Units::Integers(values),
            None => Units::Text(Texts::of(array(3)).ok_or_else(|| unreadable(3))?),
        },
    );
    let rows = Rows {
        customers,
        days,
        products,
        units,
    };
    let mut read = 0;
    for i in 0..batch.num_rows() {
        let index = first_row + i as u64;
        if index > sink.stop_after() {
            break;
        }
        read += 1;
        match rows.record(i) {
            Ok(record) => sink.record(&record),
            Err((k, reason)) => sink.bad_row(BadRow {
                path: path.into(),
                input,
                offset: index,
                line: index + 1,
                is_row_number: true,
                column: columns.names[k].clone(),
                reason,
                raw: rows.shown(i),
                fatal: false,
            }),
        }
    }
    Ok(read)
}

/// The four columns of a batch.
struct Rows<'a> {
    customers: Column<Texts<'a>>,
    days: Column<Days<'a>>,
    products: Column<Texts<'a>>,
    units: Column<Units<'a>>,
}

impl<'a> Rows<'a> {
    /// Row `i` checked; else the required column at fault (0 to 3) and why.
    fn record(&self, i: usize) -> Result<Record<'a>, (usize, String)> {
        let null = |k: usize| Err((k, "is null".to_string()));
        if self.customers.is_null(i) {
            return null(0);
        }
        let customer = check_text(self.customers.values.get(i)).map_err(|e| (0, e))?;
        if self.days.is_null(i) {
            return null(1);
        }
        let day = match &self.days.values {
            Days::Date32(a) => checked_day(i64::from(a.value(i))),
            Days::Date64(a) => {
                let ms = a.value(i);
                if ms % 86_400_000 == 0 {
                    checked_day(ms / 86_400_000)
                } else {
                    Err(format!("{ms} ms is not midnight of a day (date64)"))
                }
            }
            Days::Text(t) => check_date(t.get(i)),
        }
        .map_err(|e| (1, e))?;
        if self.products.is_null(i) {
            return null(2);
        }
        let product = check_text(self.products.values.get(i)).map_err(|e| (2, e))?;
        if self.units.is_null(i) {
            return null(3);
        }
        let units = match &self.units.values {
            Units::Integers(v) => i32::try_from(v[i]).map_err(|_| {
                format!(
                    "{} does not fit a 32-bit integer ({} to {})",
                    v[i],
                    i32::MIN,
                    i32::MAX
                )
            }),
            Units::Text(t) => check_units(t.get(i)),
        }
        .map_err(|e| (3, e))?;
        Ok(Record::new(customer, product, day, units))
    }

    /// Row `i` as text, `|`-separated in the order of the required columns, for the rejects
    /// file (a null is empty).
    fn shown(&self, i: usize) -> Vec<u8> {
        let text = |c: &Column<Texts<'_>>| {
            if c.is_null(i) {
                Vec::new()
            } else {
                c.values.get(i).to_vec()
            }
        };
        let day = if self.days.is_null(i) {
            Vec::new()
        } else {
            match &self.days.values {
                Days::Date32(a) => match checked_day(i64::from(a.value(i))) {
                    Ok(d) => format_date(d).to_vec(),
                    Err(_) => a.value(i).to_string().into_bytes(),
                },
                Days::Date64(a) => a.value(i).to_string().into_bytes(),
                Days::Text(t) => t.get(i).to_vec(),
            }
        };
        let units = if self.units.is_null(i) {
            Vec::new()
        } else {
            match &self.units.values {
                Units::Integers(v) => v[i].to_string().into_bytes(),
                Units::Text(t) => t.get(i).to_vec(),
            }
        };
        [text(&self.customers), day, text(&self.products), units].join(&b'|')
    }
}

/// A day number, if it is a day of the years 0001 to 9999 (those a `YYYY-MM-DD` date can name).
fn checked_day(days: i64) -> Result<i32, String> {
    let (first, last) = (days_from_civil(1, 1, 1), days_from_civil(9999, 12, 31));
    match i32::try_from(days) {
        Ok(d) if (first..=last).contains(&d) => Ok(d),
        _ => Err(format!(
            "day {days} after 1970-01-01 is outside the years 0001 to 9999"
        )),
    }
}

/// The values of an integer column, widened; `None` for other types.
fn integers(array: &ArrayRef) -> Option<Vec<i128>> {
    macro_rules! widen {
        ($t:ty) => {
            array
                .as_primitive::<$t>()
                .values()
                .iter()
                .map(|&v| v as i128)
                .collect()
        };
    }
    Some(match array.data_type() {
        DataType::Int8 => widen!(Int8Type),
        DataType::Int16 => widen!(Int16Type),
        DataType::Int32 => widen!(Int32Type),
        DataType::Int64 => widen!(Int64Type),
        DataType::UInt8 => widen!(UInt8Type),
        DataType::UInt16 => widen!(UInt16Type),
        DataType::UInt32 => widen!(UInt32Type),
        DataType::UInt64 => widen!(UInt64Type),
        _ => return None,
    })
}
