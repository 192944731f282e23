//! The engine against the reference on random inputs: random text with delimiters, quotes, line
//! breaks and BOMs inside fields; ties, duplicates, zero, negative and extreme units; dates across
//! month, year and leap-day borders; random column order, quoting, line ends, blank lines and
//! chunk sizes (so quoted line breaks straddle chunk borders); one and several threads, in memory
//! and with every partition forced to spill.

use std::path::Path;

use proptest::prelude::*;
use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::Rng;

use custagg::Config;
use custagg::parse::Delimiter;
use custagg::source::inputs::SourceSpec;

use crate::reference::{Date, Tx, days_from, expected_csv};
use crate::util::Dir;

fn dates() -> Vec<Date> {
    let mut all = days_from((2011, 12, 20), 20); // a year border
    all.extend(days_from((2012, 2, 22), 12)); // a leap day
    all.extend(days_from((2011, 2, 24), 8)); // no leap day
    all.extend(days_from((2011, 8, 10), 7));
    all
}

/// Text of one to five characters, any of which may need quoting; a quarter of them behind a
/// common 7-byte prefix, so that texts of 8 bytes and longer ones share their first 8 bytes.
fn text() -> impl Strategy<Value = String> {
    let short = "[ab0-9|,;\t\"\r\n é\u{feff}]{1,5}";
    prop_oneof![
        3 => short.prop_map(|s| s),
        1 => short.prop_map(|s| format!("ABCDEFG{s}")),
    ]
}

fn units() -> impl Strategy<Value = i32> {
    prop_oneof![
        8 => -3..=3i32,
        1 => Just(i32::MAX),
        1 => Just(i32::MIN),
        1 => any::<i32>(),
    ]
}

/// How a test file is written.
#[derive(Clone, Debug)]
pub struct Shape {
    /// Positions of transactionId, custId, transactionDate, productSold, unitsSold, extra.
    pub order: Vec<usize>,
    pub delimiter: u8,
    pub quote_all: bool,
    pub crlf: bool,
    pub bom: bool,
    pub blank_lines: bool,
    pub final_newline: bool,
    pub upper_case_header: bool,
}

pub fn shape() -> impl Strategy<Value = Shape> {
    (
        Just((0..6).collect::<Vec<usize>>()).prop_shuffle(),
        prop_oneof![Just(b'|'), Just(b','), Just(b'\t')],
        any::<[bool; 6]>(),
    )
        .prop_map(|(order, delimiter, flags)| Shape {
            order,
            delimiter,
            quote_all: flags[0],
            crlf: flags[1],
            bom: flags[2],
            blank_lines: flags[3],
            final_newline: flags[4],
            upper_case_header: flags[5],
        })
}

fn field(value: &str, shape: &Shape) -> String {
    let needs = value
        .bytes()
        .any(|b| b == shape.delimiter || matches!(b, b'"' | b'\r' | b'\n'));
    if needs || shape.quote_all {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

pub fn write_file(rows: &[Tx], extras: &[String], shape: &Shape) -> Vec<u8> {
    let names = [
        "transactionId",
        "custId",
        "transactionDate",
        "productSold",
        "unitsSold",
        "note",
    ];
    let line_end = if shape.crlf { "\r\n" } else { "\n" };
    let delimiter = (shape.delimiter as char).to_string();
    let record = |values: [String; 6]| {
        shape
            .order
            .iter()
            .map(|&i| field(&values[i], shape))
            .collect::<Vec<_>>()
            .join(&delimiter)
    };
    let mut lines = vec![record(names.map(|n| {
        if shape.upper_case_header {
            n.to_uppercase()
        } else {
            n.to_string()
        }
    }))];
    for (i, tx) in rows.iter().enumerate() {
        let (y, m, d) = tx.date;
        lines.push(record([
            format!("t{i}"),
            tx.customer.clone(),
            format!("{y:04}-{m:02}-{d:02}"),
            tx.product.clone(),
            tx.units.to_string(),
            extras[i % extras.len()].clone(),
        ]));
        if shape.blank_lines && i % 3 == 0 {
            lines.push(String::new());
        }
    }
    let mut text = if shape.bom {
        "\u{feff}".to_string()
    } else {
        String::new()
    };
    text += &lines.join(line_end);
    if shape.final_newline {
        text += line_end;
    }
    text.into_bytes()
}

pub fn transactions() -> impl Strategy<Value = Vec<Tx>> {
    let all_dates = dates();
    (
        prop::collection::vec(text(), 1..6),
        prop::collection::vec(text(), 1..4),
        // Now and then every customer behind the same long head (zero-padded ids), so that all
        // of them share their first eight bytes and more.
        prop::sample::select(vec!["", "", "", "0000000000000"]),
    )
        .prop_flat_map(move |(customers, products, head)| {
            let customers: Vec<String> = customers.iter().map(|c| format!("{head}{c}")).collect();
            let row = (
                prop::sample::select(customers.clone()),
                prop::sample::select(products.clone()),
                prop::sample::select(all_dates.clone()),
                units(),
            )
                .prop_map(|(customer, product, date, units)| Tx {
                    customer,
                    product,
                    date,
                    units,
                });
            (
                prop::collection::vec(row, 0..40),
                any::<prop::sample::Index>(),
            )
        })
        .prop_map(|(mut rows, dup)| {
            // Repeat a few rows: a repeated row is a repeated purchase.
            if !rows.is_empty() {
                let i = dup.index(rows.len());
                let again = rows[i].clone();
                rows.push(again.clone());
                rows.insert(0, again);
            }
            rows
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn engine_matches_reference(
        rows in transactions(),
        extras in prop::collection::vec("[x|\"\n,]{0,3}", 1..3),
        shape in shape(),
        chunk_size in 1usize..80,
    ) {
        let dir = Dir::new();
        let bytes = write_file(&rows, &extras, &shape);
        let file = dir.write("in.csv", &bytes);
        let expected = expected_csv(&rows);
        // A file is mapped and partitioned by ranges of customers from a sample; a FIFO is read
        // as a stream, partitioned by a hash, and its runs merged.
        for (threads, force_spill, fifo) in [(1, false, false), (3, true, false), (2, false, false), (2, true, true)] {
            let source = if fifo { dir.fifo("in.fifo", bytes.clone()) } else { file.clone() };
            let (summary, got) = aggregate(&dir, &source, |config| {
                config.delimiter = (shape.delimiter as char).to_string().parse::<Delimiter>().unwrap();
                config.threads = threads;
                config.force_spill = force_spill;
                config.chunk_size = chunk_size;
            });
            prop_assert_eq!(summary.rows_read, rows.len() as u64);
            prop_assert_eq!(&got, &expected, "threads {} force_spill {} fifo {}", threads, force_spill, fifo);
        }
    }
}

/// A catalogue of thousands of product codes — short (up to eight bytes), medium (up to 24)
/// and long — over few customers, with ties: more codes than each worker's caches hold, and,
/// under a small memory limit, more than the run's dictionary takes (the rest travel as text).
#[test]
fn a_large_catalogue_matches_reference() {
    let mut next = draws(0x2545_f491_4f6c_dd1d);
    let codes: Vec<String> = (0..3_000)
        .map(|i| match i % 3 {
            0 => format!("S{i}"),
            1 => format!("MEDIUM-CODE-{i:08}"),
            _ => format!("A-LONG-PRODUCT-CODE-OF-THE-CATALOGUE-{i:06}"),
        })
        .collect();
    let days = days_from((2011, 12, 20), 30);
    let rows: Vec<Tx> = (0..30_000)
        .map(|_| Tx {
            customer: format!("{:07}", next(400)),
            // Low codes sell more, so customers share favourites and totals tie.
            product: codes[(next(3_000) * next(3_000) / 3_000) as usize].clone(),
            date: days[next(30) as usize],
            units: next(4) as i32 - 1,
        })
        .collect();
    let dir = Dir::new();
    let file = dir.write("in.csv", plain_file(&rows));
    let expected = expected_csv(&rows);
    // 1 MiB: a dictionary of 1,024 codes; the default: all 3,000 get ids.
    for (threads, memory_limit) in [(1, 1 << 20), (2, 1 << 20), (3, 1 << 30), (2, 1 << 30)] {
        let (_, got) = aggregate(&dir, &file, |config| {
            config.threads = threads;
            config.memory_limit = memory_limit;
        });
        assert!(
            got == expected,
            "threads {threads}, memory limit {memory_limit}"
        );
    }
}

/// Runs the engine on `source` into a CSV file of `dir`, spilling into `dir`, with the settings
/// `configure` makes; returns its summary and the file's text.
fn aggregate(
    dir: &Dir,
    source: &Path,
    configure: impl FnOnce(&mut Config),
) -> (custagg::pipeline::Summary, String) {
    let source = SourceSpec::Path(source.to_path_buf());
    crate::inputs::aggregate_sources(dir, vec![source], configure)
}

/// Numbers below `n`, drawn from `seed`.
pub fn draws(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut random = Pcg64Mcg::new(u128::from(seed));
    move |n| random.next_u64() % n
}

/// `rows` as a `|`-delimited file with a header, nothing quoted.
pub fn plain_file(rows: &[Tx]) -> String {
    let mut text = String::from("custId|transactionDate|productSold|unitsSold\n");
    for tx in rows {
        let (y, m, d) = tx.date;
        text += &format!(
            "{}|{y}-{m:02}-{d:02}|{}|{}\n",
            tx.customer, tx.product, tx.units
        );
    }
    text
}

/// Customers who are a third and a tenth of the rows each (a walk-in "guest" id, and long ones
/// that share their first eight bytes with each other and with a light one), among a thousand
/// others: summed as they come rather than kept as groups, in memory and spilled, by one thread
/// or several, from a file and from a stream — also when they only appear in the second half,
/// which a stream's first chunk does not show (the workers find them as the rows come).
#[test]
fn heavy_customers_match_reference() {
    let mut next = draws(0x9e37_79b9_7f4a_7c15);
    let days = days_from((2012, 2, 20), 400);
    let rows: Vec<Tx> = (0..60_000)
        .map(|_| Tx {
            customer: match next(30) {
                0..=9 => "0000000".to_string(),
                // Two heavy ones and a light one that share their first eight bytes.
                10..=12 => "WALK-IN-CUSTOMER-OF-STORE-7".to_string(),
                13..=15 => "WALK-IN-CUSTOMER-OF-STORE-8".to_string(),
                16 if next(100) == 0 => "WALK-IN-CUSTOMER-OF-STORE-9".to_string(),
                _ => format!("{:07}", 10_000 + next(1_000)),
            },
            product: format!("P{}", next(40)),
            date: days[next(400) as usize],
            units: next(7) as i32 - 2,
        })
        .collect();
    let mut late = rows.clone();
    for tx in &mut late[..30_000] {
        if tx.customer == "0000000" || tx.customer.starts_with("WALK-IN") {
            tx.customer = format!("{:07}", 10_000 + next(1_000));
        }
    }
    check_heavy_customers(&rows);
    check_heavy_customers(&late);
}

fn check_heavy_customers(rows: &[Tx]) {
    let dir = Dir::new();
    let text = plain_file(rows);
    let file = dir.write("in.csv", &text);
    let expected = expected_csv(rows);
    // A file is sampled all over; a FIFO, read as a stream, in its first chunk.
    for (threads, force_spill, fifo) in [
        (1, false, false),
        (2, true, false),
        (3, false, false),
        (2, true, true),
    ] {
        let source = if fifo {
            dir.fifo("in.fifo", text.clone().into_bytes())
        } else {
            file.clone()
        };
        let (_, got) = aggregate(&dir, &source, |config| {
            config.threads = threads;
            config.force_spill = force_spill;
            config.chunk_size = 64 << 10;
        });
        assert!(
            got == expected,
            "threads {threads}, force_spill {force_spill}, fifo {fifo}"
        );
    }
}
