//! Reduce: one partition's records into its final customer rows, sorted by customer.
//!
//! All records of a customer are in one partition, so a partition is reduced alone: a hash map
//! from customer to its product totals and purchase days, keyed by slices of the partition's own
//! buffers (no copy of any text). The finished rows go out as a *run*: the rows sorted by
//! `customer_id` in byte order, in a compact encoding that sinks merge or stream.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::partition::EncodedRecords;

/// One output row.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CustomerRow<'a> {
    /// `custId` as written.
    pub customer_id: &'a [u8],
    /// The product with the greatest total units; ties go to the smallest code in byte order.
    pub favourite_product: &'a [u8],
    /// The longest run of consecutive days among the distinct purchase days.
    pub longest_streak: i32,
}

/// What is known of one customer while its partition is reduced.
#[derive(Default)]
struct Customer<'a> {
    /// Total units per product; customers buy few products, so a vector beats a map.
    products: Vec<(&'a [u8], i64)>,
    /// Purchase days, with repeats.
    days: Vec<i32>,
}

/// A reduced partition.
pub struct Run {
    /// Rows in the run encoding, sorted by customer.
    pub bytes: Vec<u8>,
    /// Number of rows.
    pub rows: u64,
}

/// Reduces the records in `blocks` (whole records of one partition) into a sorted run.
pub fn reduce_partition(blocks: &[Vec<u8>]) -> Result<Run> {
    let records: usize = blocks.iter().map(|b| b.len() / 24).sum();
    let mut customers: HashMap<&[u8], Customer<'_>, ahash::RandomState> =
        HashMap::with_capacity_and_hasher(records / 8, ahash::RandomState::new());
    for block in blocks {
        for record in EncodedRecords::new(block) {
            let customer = customers.entry(record.customer).or_default();
            match customer
                .products
                .iter_mut()
                .find(|(p, _)| *p == record.product)
            {
                Some((_, total)) => {
                    *total = total.checked_add(i64::from(record.units)).ok_or_else(|| {
                        Error::Overflow {
                            customer: String::from_utf8_lossy(record.customer).into_owned(),
                            what: "the total units of a product",
                        }
                    })?;
                }
                None => customer
                    .products
                    .push((record.product, i64::from(record.units))),
            }
            customer.days.push(record.day);
        }
    }

    let mut rows: Vec<CustomerRow<'_>> = customers
        .into_iter()
        .map(|(customer_id, mut c)| CustomerRow {
            customer_id,
            favourite_product: favourite_product(&c.products),
            longest_streak: longest_streak(&mut c.days),
        })
        .collect();
    rows.sort_unstable_by(|a, b| a.customer_id.cmp(b.customer_id));

    let mut bytes = Vec::with_capacity(rows.len() * 20);
    for row in &rows {
        encode_row(&mut bytes, row);
    }
    Ok(Run {
        bytes,
        rows: rows.len() as u64,
    })
}

/// The product with the greatest total; ties go to the smallest product code in byte order.
pub fn favourite_product<'a>(totals: &[(&'a [u8], i64)]) -> &'a [u8] {
    totals
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|&(product, _)| product)
        .expect("a customer has at least one record")
}

/// The longest run of consecutive days among the distinct days (sorts `days` in place).
pub fn longest_streak(days: &mut [i32]) -> i32 {
    days.sort_unstable();
    let (mut best, mut current) = (1, 1);
    for pair in days.windows(2) {
        match pair[1] - pair[0] {
            0 => {}
            1 => {
                current += 1;
                best = best.max(current);
            }
            _ => current = 1,
        }
    }
    best
}

/// Appends `row` in the run encoding:
/// `len(customer) u8, customer, len(product) u8, product, streak i32 LE`.
pub fn encode_row(buf: &mut Vec<u8>, row: &CustomerRow<'_>) {
    buf.push(row.customer_id.len() as u8);
    buf.extend_from_slice(row.customer_id);
    buf.push(row.favourite_product.len() as u8);
    buf.extend_from_slice(row.favourite_product);
    buf.extend_from_slice(&row.longest_streak.to_le_bytes());
}

/// Iterates the rows of a run encoded by [`encode_row`].
pub struct RunRows<'a> {
    bytes: &'a [u8],
}

impl<'a> RunRows<'a> {
    /// The rows of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        RunRows { bytes }
    }
}

impl<'a> Iterator for RunRows<'a> {
    type Item = CustomerRow<'a>;

    fn next(&mut self) -> Option<CustomerRow<'a>> {
        let (&clen, rest) = self.bytes.split_first()?;
        let (customer_id, rest) = rest.split_at(clen as usize);
        let (&plen, rest) = rest.split_first().expect("whole rows");
        let (favourite_product, rest) = rest.split_at(plen as usize);
        let (streak, rest) = rest.split_first_chunk::<4>().expect("whole rows");
        self.bytes = rest;
        Some(CustomerRow {
            customer_id,
            favourite_product,
            longest_streak: i32::from_le_bytes(*streak),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::date::parse_date;
    use crate::parse::Record;
    use crate::partition::encode_record;

    fn day(s: &str) -> i32 {
        parse_date(s.as_bytes()).unwrap()
    }

    #[test]
    fn streak_of_the_spec_example() {
        let mut days = [
            day("2011-08-10"),
            day("2011-08-11"),
            day("2011-08-14"),
            day("2011-08-15"),
            day("2011-08-16"),
        ];
        assert_eq!(longest_streak(&mut days), 3);
    }

    #[test]
    fn streak_ignores_repeats_and_order_and_crosses_borders() {
        let mut days = [
            day("2012-03-01"),
            day("2012-02-28"),
            day("2012-02-29"),
            day("2012-02-29"),
            day("2012-02-28"),
        ];
        assert_eq!(longest_streak(&mut days), 3);
        let mut days = [day("2011-12-31"), day("2012-01-01"), day("2011-12-30")];
        assert_eq!(longest_streak(&mut days), 3);
        let mut days = [day("2011-02-28"), day("2011-03-01")];
        assert_eq!(longest_streak(&mut days), 2);
        let mut days = [day("2011-02-28"), day("2011-03-02")];
        assert_eq!(longest_streak(&mut days), 1);
        let mut days = [5, 5, 5];
        assert_eq!(longest_streak(&mut days), 1);
    }

    #[test]
    fn favourite_ties_go_to_the_smallest_code() {
        assert_eq!(favourite_product(&[(b"B", 5), (b"A", 5), (b"C", 4)]), b"A");
        assert_eq!(favourite_product(&[(b"B", 6), (b"A", 5)]), b"B");
        assert_eq!(favourite_product(&[(b"b", -1), (b"a", -2)]), b"b");
        assert_eq!(
            favourite_product(&[(b"a", 0), (b"B", 0)]),
            b"B",
            "byte order: 'B' < 'a'"
        );
    }

    #[test]
    fn sums_go_beyond_i32() {
        let mut block = Vec::new();
        for d in 0..3 {
            let r = Record {
                customer: b"c",
                product: b"big",
                day: d,
                units: i32::MAX,
            };
            encode_record(&mut block, &r);
        }
        let r = Record {
            customer: b"c",
            product: b"small",
            day: 0,
            units: i32::MAX,
        };
        encode_record(&mut block, &r);
        let run = reduce_partition(&[block]).unwrap();
        let rows: Vec<_> = RunRows::new(&run.bytes).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].favourite_product, b"big");
        assert_eq!(rows[0].longest_streak, 3);
    }

    #[test]
    fn rows_come_out_sorted_by_customer_bytes() {
        let mut block = Vec::new();
        for c in ["b", "a", "B", "0023938", "a"] {
            let r = Record {
                customer: c.as_bytes(),
                product: b"p",
                day: 1,
                units: 1,
            };
            encode_record(&mut block, &r);
        }
        let run = reduce_partition(&[block]).unwrap();
        let ids: Vec<&[u8]> = RunRows::new(&run.bytes).map(|r| r.customer_id).collect();
        assert_eq!(ids, vec![&b"0023938"[..], b"B", b"a", b"b"]);
        assert_eq!(run.rows, 4);
    }
}
