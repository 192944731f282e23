//! Reduce: one partition's records into its final customer rows, sorted by customer.
//!
//! All records of a customer are in one partition, so a partition is reduced alone: a hash map
//! from customer to its product totals and purchase days, keyed by slices of the partition's own
//! buffers (no copy of any text). The finished rows go out as a *run*: the rows sorted by
//! `customer_id` in byte order, in a compact encoding that sinks merge or stream.

use std::collections::HashMap;

use crate::error::{Error, Result};
use crate::partition::EncodedGroups;

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

/// A reduced partition.
pub struct Run {
    /// Rows in the run encoding, sorted by customer.
    pub bytes: Vec<u8>,
    /// Number of rows.
    pub rows: u64,
}

/// Reduces the groups in `blocks` (whole groups of one partition) into a sorted run.
///
/// Customers and products are interned to dense ids (the only hashing); product totals and days
/// are gathered by customer with counting sorts (two linear passes each), and each customer's few
/// products and days are then summed and scanned in small reused buffers. Partitions are sized to
/// stay in cache, so none of this goes to main memory more than once.
pub fn reduce_partition(blocks: &[Vec<u8>]) -> Result<Run> {
    let estimate: usize = blocks.iter().map(|b| b.len() / 24).sum();
    let mut customers = Interner::with_capacity(estimate / 4 + 16);
    let mut products = Interner::with_capacity(64);
    let mut totals_by: ByCustomer<(u32, i64)> = ByCustomer::with_capacity(estimate);
    let mut days_by: ByCustomer<i32> = ByCustomer::with_capacity(estimate);
    for block in blocks {
        for group in EncodedGroups::new(block) {
            let customer = customers.id(group.customer);
            for (product, total) in group.products() {
                totals_by.push(customer, (products.id(product), total));
            }
            for day in group.days() {
                days_by.push(customer, day);
            }
        }
    }
    let (customers, products) = (customers.keys, products.keys);
    let (totals_by, days_by) = (
        totals_by.grouped(customers.len()),
        days_by.grouped(customers.len()),
    );

    let mut totals: Vec<(u32, i64)> = Vec::new();
    let mut days: Vec<i32> = Vec::new();
    let mut named: Vec<(&[u8], i64)> = Vec::new();
    let mut rows: Vec<CustomerRow<'_>> = Vec::with_capacity(customers.len());
    for (id, &customer_id) in customers.iter().enumerate() {
        totals.clear();
        for &(product, total) in totals_by.of(id) {
            match totals.iter_mut().find(|(p, _)| *p == product) {
                Some((_, sum)) => {
                    *sum = sum.checked_add(total).ok_or_else(|| Error::Overflow {
                        customer: String::from_utf8_lossy(customer_id).into_owned(),
                        what: "the total units of a product",
                    })?;
                }
                None => totals.push((product, total)),
            }
        }
        days.clear();
        days.extend_from_slice(days_by.of(id));
        named.clear();
        named.extend(
            totals
                .iter()
                .map(|&(p, total)| (products[p as usize], total)),
        );
        rows.push(CustomerRow {
            customer_id,
            favourite_product: favourite_product(&named),
            longest_streak: longest_streak(&mut days),
        });
    }
    sort_by_customer(&mut rows);

    let mut bytes = Vec::with_capacity(rows.len() * 20);
    for row in &rows {
        encode_row(&mut bytes, row);
    }
    Ok(Run {
        bytes,
        rows: rows.len() as u64,
    })
}

/// Values tagged with a customer id, then gathered by customer with a counting sort.
struct ByCustomer<T> {
    tagged: Vec<(u32, T)>,
    counts: Vec<u32>,
}

impl<T: Copy + Default> ByCustomer<T> {
    fn with_capacity(capacity: usize) -> Self {
        ByCustomer {
            tagged: Vec::with_capacity(capacity),
            counts: Vec::with_capacity(capacity / 4),
        }
    }

    #[inline]
    fn push(&mut self, customer: u32, value: T) {
        let c = customer as usize;
        if c >= self.counts.len() {
            self.counts.resize(c + 1, 0);
        }
        self.counts[c] += 1;
        self.tagged.push((customer, value));
    }

    /// The values of every customer in `0..customers`, contiguous per customer.
    fn grouped(self, customers: usize) -> Grouped<T> {
        let mut starts = Vec::with_capacity(customers + 1);
        let mut total = 0u32;
        for c in 0..customers {
            starts.push(total);
            total += self.counts.get(c).copied().unwrap_or(0);
        }
        starts.push(total);
        let mut values = vec![T::default(); self.tagged.len()];
        let mut next = starts.clone();
        for (customer, value) in self.tagged {
            let slot = &mut next[customer as usize];
            values[*slot as usize] = value;
            *slot += 1;
        }
        Grouped { starts, values }
    }
}

/// Values gathered by customer.
struct Grouped<T> {
    starts: Vec<u32>,
    values: Vec<T>,
}

impl<T> Grouped<T> {
    fn of(&self, customer: usize) -> &[T] {
        &self.values[self.starts[customer] as usize..self.starts[customer + 1] as usize]
    }
}

/// Sorts rows by customer in byte order, comparing an 8-byte big-endian prefix first (one integer
/// comparison settles most pairs) and the whole bytes only on equal prefixes.
fn sort_by_customer(rows: &mut [CustomerRow<'_>]) {
    let mut keyed: Vec<(u64, CustomerRow<'_>)> = rows
        .iter()
        .map(|r| (prefix_key(r.customer_id), *r))
        .collect();
    keyed.sort_unstable_by(|a, b| {
        a.0.cmp(&b.0)
            .then_with(|| a.1.customer_id.cmp(b.1.customer_id))
    });
    for (row, (_, sorted)) in rows.iter_mut().zip(keyed) {
        *row = sorted;
    }
}

/// The first eight bytes, zero-padded, as a big-endian integer: integer order is byte order for
/// them, and for text of at most eight bytes without NUL (which the parser guarantees) the key is
/// unique.
#[inline]
pub fn prefix_key(bytes: &[u8]) -> u64 {
    let mut key = [0u8; 8];
    let n = bytes.len().min(8);
    key[..n].copy_from_slice(&bytes[..n]);
    u64::from_be_bytes(key)
}

/// Dense ids for the distinct strings of a partition. Strings of up to eight bytes (most ids and
/// product codes) are looked up by their integer [`prefix_key`], which hashes and compares
/// without touching the bytes again; longer ones by their bytes.
struct Interner<'a> {
    short: HashMap<u64, u32, ahash::RandomState>,
    long: HashMap<&'a [u8], u32, ahash::RandomState>,
    keys: Vec<&'a [u8]>,
    last: (&'a [u8], u32),
}

impl<'a> Interner<'a> {
    fn with_capacity(capacity: usize) -> Self {
        let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
        Interner {
            short: HashMap::with_capacity_and_hasher(capacity, hasher.clone()),
            long: HashMap::with_hasher(hasher),
            keys: Vec::with_capacity(capacity),
            last: (&[], u32::MAX),
        }
    }

    #[inline]
    fn id(&mut self, bytes: &'a [u8]) -> u32 {
        // Consecutive records often repeat a string.
        if bytes == self.last.0 {
            return self.last.1;
        }
        let next = self.keys.len() as u32;
        let id = if bytes.len() <= 8 {
            *self.short.entry(prefix_key(bytes)).or_insert(next)
        } else {
            *self.long.entry(bytes).or_insert(next)
        };
        if id == next {
            self.keys.push(bytes);
        }
        self.last = (bytes, id);
        id
    }
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
