//! `custagg generate`: deterministic synthetic transactions in the sample's format, for tests,
//! benchmarks and the quick start.
//!
//! The file looks like `../shared/data/transaction.csv`: `|`-delimited, header
//! `transactionId|custId|transactionDate|productSold|unitsSold`, 7-digit customer ids with leading
//! zeros. Customer activity is skewed (a few customers visit often), each visit is a run of
//! consecutive days buying one to three products, units are mostly 1–300 with some zero and some
//! negative (returns), and about one row in a hundred is written twice. [`Shape`] changes that:
//! how skewed customers are, how clustered each one's days are, how product popularity falls,
//! how many rows repeat and how long the ids are. The same arguments give the same bytes on every
//! machine: the generator is PCG-64 with integer-only draws. With `--format parquet` the same
//! rows are written as a Parquet file instead (see [`parquet`]).

mod parquet;

use std::io::{BufWriter, Write};
use std::path::PathBuf;

use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::Rng;

use crate::atomic::AtomicFile;
use crate::date::{days_from_civil, format_date};
use crate::error::{Error, Result};

/// What to generate.
#[derive(Clone, Debug)]
pub struct GenerateConfig {
    /// Data rows to write (the header not counted).
    pub rows: u64,
    /// Distinct customers (all appear when there are enough rows).
    pub customers: u64,
    /// Distinct product codes (the sample's 48 when there are that many or fewer).
    pub products: u64,
    /// Seed of the random generator.
    pub seed: u64,
    /// The file to write (replaced atomically).
    pub out: PathBuf,
    /// What kind of file.
    pub format: OutputFormat,
    /// How the rows are distributed.
    pub shape: Shape,
}

/// How the generated rows are distributed. The default is the generator's own shape, which the
/// same seed reproduces byte for byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Customer skew: after every customer's first visit, visits go to customer index
    /// `u^skew × customers` for `u` uniform in [0, 1): 1 is uniform, 2 (the default) gives the
    /// top 1 % of customers a tenth of the visits, 8 gives a few customers thousands of rows and
    /// most a handful.
    pub skew: u32,
    /// Each customer's visits start within this many days of a date of its own; `None` (the
    /// default) spreads them over the whole two-year span.
    pub day_spread: Option<u64>,
    /// How product popularity falls along the catalogue.
    pub popularity: Popularity,
    /// Rows written twice, in hundredths of a per cent (100, 1 %, by default).
    pub duplicates_bp: u64,
    /// Customer ids zero-padded to at least this many digits (by default 7, or what the
    /// customer count needs).
    pub id_length: Option<usize>,
}

impl Default for Shape {
    fn default() -> Self {
        Shape {
            skew: 2,
            day_spread: None,
            popularity: Popularity::Skewed,
            duplicates_bp: 100,
            id_length: None,
        }
    }
}

/// How product popularity falls along the catalogue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Popularity {
    /// Code `u²/n` for `u` uniform below `n`: low codes sell more; each visit's first product is
    /// the customer's favourite, uniform over the catalogue (the default).
    Skewed,
    /// Every code alike.
    Uniform,
    /// Each code `percent` % as likely as the one before (favourites too): a few best sellers.
    Geometric(u64),
}

impl std::str::FromStr for Popularity {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skewed" => Ok(Popularity::Skewed),
            "uniform" => Ok(Popularity::Uniform),
            "geometric" => Ok(Popularity::Geometric(80)),
            _ => match s.strip_prefix("geometric:").map(str::parse::<u64>) {
                Some(Ok(p)) if (1..=99).contains(&p) => Ok(Popularity::Geometric(p)),
                _ => Err(format!(
                    "`{s}` is not a popularity: skewed, uniform, geometric or geometric:P (P a \
                     per cent, 1 to 99)"
                )),
            },
        }
    }
}

/// A share of rows as a per cent with up to two decimals (`0.3`, `1`, `2.5%`), in hundredths of
/// a per cent.
pub fn parse_duplicates(s: &str) -> Result<u64, String> {
    let text = s.trim_end_matches('%');
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (!fraction.is_empty() && !digits(fraction)) || fraction.len() > 2 {
        return Err(format!("`{s}` is not a per cent with at most two decimals"));
    }
    let whole: u64 = whole.parse().map_err(|_| format!("`{s}` is too large"))?;
    let fraction: u64 = format!("{fraction:0<2}").parse().expect("two digits");
    let bp = whole * 100 + fraction;
    if bp > 5_000 {
        return Err(format!("`{s}`: at most 50 % of rows can be repeated"));
    }
    Ok(bp)
}

/// The kind of file the generator writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OutputFormat {
    /// `|`-delimited text, like the sample.
    #[default]
    Text,
    /// Parquet, the same rows and columns (see [`parquet`]).
    Parquet,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" | "csv" => Ok(OutputFormat::Text),
            "parquet" => Ok(OutputFormat::Parquet),
            other => Err(format!("`{other}` is not a kind of file: text or parquet")),
        }
    }
}

/// The header of generated files, the same as the sample's.
pub const HEADER: &str = "transactionId|custId|transactionDate|productSold|unitsSold";

const FAMILIES: [&str; 8] = [
    "PURA", "SUPA", "DETA", "CAFE", "TEAX", "MILK", "BREA", "FRUT",
];
const SIZES: [&str; 6] = ["100", "250", "500", "800", "101", "102"];
/// Purchase days are spread over two years from 2010-01-01 (leap day 2012-02-29 not included).
const SPAN_DAYS: u64 = 730;

/// Writes the file; returns its size in bytes.
pub fn generate(config: &GenerateConfig) -> Result<u64> {
    if config.customers == 0 {
        return Err(Error::Usage("--customers must be at least 1".into()));
    }
    let mut file = AtomicFile::create(&config.out, "cannot write the generated file")?;
    let bytes = file.write_with(|f| match config.format {
        OutputFormat::Text => write_text(config, f),
        OutputFormat::Parquet => parquet::write_parquet(config, f),
    })?;
    file.commit()?;
    Ok(bytes)
}

struct Draw(Pcg64Mcg);

impl Draw {
    /// The draws of `seed`.
    fn new(seed: u64) -> Self {
        Draw(Pcg64Mcg::new(
            (u128::from(seed) << 64) | 0x5851_f42d_4c95_7f2d,
        ))
    }

    /// A number in `[0, n)`, by multiply-shift (no bias worth naming for n far below 2^64).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent / 100`.
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Numbers below `n`, drawn from `seed`: the tests' random inputs.
#[cfg(test)]
pub(crate) fn draws(seed: u64) -> impl FnMut(u64) -> u64 {
    let mut draw = Draw::new(seed);
    move |n| draw.below(n)
}

/// The text file: the header, then a line per row.
fn write_text(config: &GenerateConfig, file: &std::fs::File) -> std::io::Result<u64> {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(HEADER.as_bytes())?;
    out.write_all(b"\n")?;
    let mut written_bytes = HEADER.len() as u64 + 1;
    let mut line = Vec::with_capacity(128);
    each_row(config, |row| {
        line.clear();
        row.write_to(&mut line);
        written_bytes += line.len() as u64;
        out.write_all(&line)
    })?;
    out.flush()?;
    Ok(written_bytes)
}

/// Hands the `config.rows` rows to `emit`, in file order.
fn each_row<E>(
    config: &GenerateConfig,
    mut emit: impl FnMut(&Row<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut draw = Draw::new(config.seed);
    let shape = &config.shape;
    let customers = config.customers;
    let id_width = (customers + 10_000)
        .to_string()
        .len()
        .max(shape.id_length.unwrap_or(7));
    let stride = coprime_stride(customers);
    let products = catalogue(config.products);
    let dates = date_spellings();

    let mut rows = 0u64;
    let mut visit = 0u64;
    while rows < config.rows {
        // Every customer once, in scattered order; then a skewed pick: u^2 for u uniform in
        // [0, 1) favours low indices (the top 1% of customers get a tenth of the visits).
        let index = if visit < customers {
            visit
        } else {
            skewed_index(draw.below(1 << 20), shape.skew, customers)
        };
        let customer = (u128::from(index.min(customers - 1)) * u128::from(stride)
            % u128::from(customers)) as u64
            + 10_000;
        let id = format!("{customer:0id_width$}");
        let start = match shape.day_spread {
            None => draw.below(SPAN_DAYS) as usize,
            Some(spread) => {
                let spread = spread.clamp(1, SPAN_DAYS);
                // A date of the customer's own, the same at every visit.
                let own = customer.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40;
                (own % (SPAN_DAYS - spread + 1) + draw.below(spread)) as usize
            }
        };
        let mut run = 1;
        while run < 10 && draw.chance(50) {
            run += 1;
        }
        let favourite = match shape.popularity {
            Popularity::Skewed | Popularity::Uniform => draw.below(products.len() as u64) as usize,
            popularity => pick_product(&mut draw, popularity, products.len()),
        };
        for (iso, compact, day) in &dates[start..start + run] {
            let kinds = 1 + draw.below(3);
            for k in 0..kinds {
                let product = if k == 0 && draw.chance(70) {
                    favourite
                } else {
                    pick_product(&mut draw, shape.popularity, products.len())
                };
                let units = draw_units(&mut draw);
                let row = Row {
                    id: id.as_bytes(),
                    iso,
                    compact,
                    day: *day,
                    product: products[product].as_bytes(),
                    units,
                };
                // below(10_000) < 100 is the same draw and test as chance(1).
                let copies = if draw.below(10_000) < shape.duplicates_bp {
                    2
                } else {
                    1
                };
                for _ in 0..copies {
                    if rows == config.rows {
                        break;
                    }
                    emit(&row)?;
                    rows += 1;
                }
            }
        }
        visit += 1;
    }
    Ok(())
}

/// The customer index `u^skew × customers` for `u = draw / 2^20`, in fixed point (40 bits of
/// fraction; `skew` 2 is exactly the generator's original `u² × customers`).
fn skewed_index(draw: u64, skew: u32, customers: u64) -> u64 {
    let u = u128::from(draw);
    let mut power = match skew {
        0 | 1 => u << 20,
        _ => u * u,
    };
    for _ in 2..skew {
        power = (power * u) >> 20;
    }
    ((power * u128::from(customers)) >> 40) as u64
}

/// A catalogue index by `popularity`.
fn pick_product(draw: &mut Draw, popularity: Popularity, len: usize) -> usize {
    let n = len as u64;
    match popularity {
        // Low catalogue indices sell more.
        Popularity::Skewed => {
            let u = draw.below(n);
            (u * u / n) as usize
        }
        Popularity::Uniform => draw.below(n) as usize,
        Popularity::Geometric(percent) => {
            let mut i = 0;
            while i + 1 < len && draw.chance(percent) {
                i += 1;
            }
            i
        }
    }
}

/// Both spellings of every day of the span (and a little beyond, for runs of days that start
/// near its end), `YYYY-MM-DD` and `YYYYMMDD`, and its day number (days since 1970-01-01),
/// made once.
fn date_spellings() -> Vec<([u8; 10], [u8; 8], i32)> {
    let first_day = days_from_civil(2010, 1, 1);
    (0..SPAN_DAYS as i32 + 16)
        .map(|i| {
            let iso = format_date(first_day + i);
            let mut compact = [0u8; 8];
            compact[..4].copy_from_slice(&iso[..4]);
            compact[4..6].copy_from_slice(&iso[5..7]);
            compact[6..].copy_from_slice(&iso[8..]);
            (iso, compact, first_day + i)
        })
        .collect()
}

/// Units of one row: 2 % zero, 3 % of the rest returns of 1 to 20, else 1 to 300.
fn draw_units(draw: &mut Draw) -> i64 {
    if draw.chance(2) {
        0
    } else if draw.chance(3) {
        -(1 + draw.below(20) as i64)
    } else {
        1 + draw.below(300) as i64
    }
}

/// One line of the file, in the sample's columns.
struct Row<'a> {
    id: &'a [u8],
    iso: &'a [u8; 10],
    compact: &'a [u8; 8],
    /// The day, as a number (for Parquet's date32).
    day: i32,
    product: &'a [u8],
    units: i64,
}

impl Row<'_> {
    /// Appends the line: `transactionId|custId|transactionDate|productSold|unitsSold`, the id
    /// being the compact date and the customer.
    fn write_to(&self, line: &mut Vec<u8>) {
        line.extend_from_slice(self.compact);
        line.push(b'-');
        line.extend_from_slice(self.id);
        line.push(b'|');
        line.extend_from_slice(self.id);
        line.push(b'|');
        line.extend_from_slice(self.iso);
        line.push(b'|');
        line.extend_from_slice(self.product);
        line.push(b'|');
        line.extend_from_slice(itoa::Buffer::new().format(self.units).as_bytes());
        line.push(b'\n');
    }
}

/// `count` product codes: the sample's kind first (`PURA100`…, 48 of them), then, alternately,
/// 7-character codes (`P000048`…) and 13-digit EAN-style numbers — short and long codes both.
fn catalogue(count: u64) -> Vec<String> {
    let sample = FAMILIES
        .iter()
        .flat_map(|f| SIZES.iter().map(move |s| format!("{f}{s}")));
    let more = (FAMILIES.len() * SIZES.len()) as u64..;
    let more = more.map(|i| match i % 2 {
        0 => format!("P{i:06}"),
        _ => format!("{:013}", 4_000_000_000_000 + i * 7_919),
    });
    sample.chain(more).take(count as usize).collect()
}

/// A multiplier coprime with `n`, so `i * stride % n` visits every customer once.
fn coprime_stride(n: u64) -> u64 {
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let mut stride = 2_654_435_761 % n.max(1);
    while n > 1 && gcd(stride, n) != 1 {
        stride += 1;
    }
    stride.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalogues_are_distinct_codes_of_the_sample_kind_first() {
        let codes = catalogue(200_000);
        assert_eq!(codes.len(), 200_000);
        assert_eq!(catalogue(48), codes[..48]);
        assert_eq!((&codes[0][..], &codes[48][..]), ("PURA100", "P000048"));
        assert_eq!(codes[49].len(), 13);
        let distinct: std::collections::HashSet<&String> = codes.iter().collect();
        assert_eq!(distinct.len(), codes.len());
        assert_eq!(catalogue(5).len(), 5);
    }

    #[test]
    fn shapes_parse_and_the_default_skew_is_the_original_formula() {
        for u in [0u64, 1, 12_345, (1 << 20) - 1] {
            for customers in [1u64, 885, 2_000_000] {
                let v = u128::from(u);
                let original = ((v * v * u128::from(customers)) >> 40) as u64;
                assert_eq!(skewed_index(u, 2, customers), original);
                assert!(skewed_index(u, 8, customers) <= original);
                assert!(skewed_index(u, 1, customers) < customers);
            }
        }
        assert_eq!(parse_duplicates("0.3"), Ok(30));
        assert_eq!(parse_duplicates("1%"), Ok(100));
        assert_eq!(parse_duplicates("2.25"), Ok(225));
        assert!(parse_duplicates("0.333").is_err() && parse_duplicates("51").is_err());
        assert_eq!("geometric:70".parse(), Ok(Popularity::Geometric(70)));
        assert!("geometric:0".parse::<Popularity>().is_err());
    }

    #[test]
    fn stride_is_a_permutation() {
        for n in [1u64, 2, 7, 10, 885, 1000] {
            let s = coprime_stride(n);
            let mut seen: Vec<u64> = (0..n).map(|i| i * s % n).collect();
            seen.sort();
            assert_eq!(seen, (0..n).collect::<Vec<_>>(), "n = {n}");
        }
    }
}
