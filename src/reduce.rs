//! Reduce: one partition's records into its final customer rows, sorted by customer.
//!
//! All records of a customer are in one partition, so a partition is reduced alone: its groups
//! are sorted by customer and each customer's adjacent groups are summed, reading the text in the
//! partition's own buffers (no copy). The finished rows go out as a *run*: the rows sorted by
//! `customer_id` in byte order, in a compact encoding that sinks merge or stream.

use crate::error::{Error, Result};
use crate::key::{prefetch_read, prefix_key, sort_by_text};
use crate::partition::{EncodedGroups, Product};
use crate::products::Catalogue;

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
#[derive(Default)]
pub struct Run {
    /// Rows in the run encoding, sorted by customer.
    pub bytes: Vec<u8>,
    /// Number of rows.
    pub rows: u64,
    /// The customer and offset of every [`RUN_INDEX_EVERY`]th row, from the first: where a
    /// merge can cut the run by customer without decoding all of it.
    pub index: Vec<(Box<[u8]>, usize)>,
    /// Offset of the last row.
    last: usize,
}

/// Rows between two entries of a run's index.
pub const RUN_INDEX_EVERY: u64 = 64;

impl Run {
    /// Appends `row`, which sorts after every row already in the run.
    pub fn push(&mut self, row: &CustomerRow<'_>) {
        if self.rows.is_multiple_of(RUN_INDEX_EVERY) {
            self.index.push((row.customer_id.into(), self.bytes.len()));
        }
        self.last = self.bytes.len();
        encode_row(&mut self.bytes, row);
        self.rows += 1;
    }

    /// The customers of the first and the last row, unless the run is empty.
    pub fn bounds(&self) -> Option<(&[u8], &[u8])> {
        let first = RunRows::new(&self.bytes).next()?;
        let last = RunRows::new(&self.bytes[self.last..]).next()?;
        Some((first.customer_id, last.customer_id))
    }
}

/// Reduces the groups in `blocks` (whole groups of one partition) into a sorted run; `products`
/// is the run's catalogue of product codes.
///
/// No hashing: every group is indexed by its customer's 8-byte [`prefix_key`] and its place in
/// the blocks, the index is radix-sorted (integer keys; customers longer than eight bytes that
/// share a prefix are put in byte order after), and then each customer's groups are adjacent: their
/// product totals and days are gathered in small reused buffers and the row is encoded at once,
/// already in output order. Partitions are sized to stay in cache, so the random reads of the
/// gathering pass do not go to main memory.
pub fn reduce_partition(blocks: &[Vec<u8>], products: &Catalogue) -> Result<Run> {
    reduce_partition_with(blocks, products, &mut Scratch::default())
}

/// Arrays a thread reuses from one partition to the next: product totals by id, as large as the
/// catalogue (allocating and zeroing them for every partition would cost more than the reduce
/// when there are thousands of partitions and codes).
#[derive(Default)]
pub struct Scratch {
    /// By id: the sum, valid when the id's stamp is `stamp`.
    sums: Vec<i64>,
    stamps: Vec<u32>,
    /// The present customer's stamp.
    stamp: u32,
    /// The present customer's ids, in the order they came (one slot more than ids).
    met: Vec<u32>,
}

/// [`reduce_partition`] with a thread's reused [`Scratch`].
pub fn reduce_partition_with(
    blocks: &[Vec<u8>],
    products: &Catalogue,
    scratch: &mut Scratch,
) -> Result<Run> {
    // Entry: prefix key (64 bits), whether the customer is longer than 8 bytes (1 bit), block
    // (23 bits), offset in the block (40 bits). Equal keys sort short before long, as bytes do.
    let mut index: Vec<u128> = Vec::with_capacity(blocks.iter().map(|b| b.len() / 16).sum());
    for (b, block) in blocks.iter().enumerate() {
        assert!(b as u64 <= LOC_BLOCK_MASK && (block.len() as u64) < 1 << LOC_OFFSET_BITS);
        let mut groups = EncodedGroups::new(block);
        let mut offset = 0;
        while let Some(group) = groups.next() {
            let long = u64::from(group.customer.len() > 8) << 63;
            let loc = long | ((b as u64) << LOC_OFFSET_BITS) | offset as u64;
            index.push((u128::from(prefix_key(group.customer)) << 64) | u128::from(loc));
            offset = block.len() - groups.remaining();
        }
    }
    // The blocks' bytes from an entry's group on.
    let bytes_at = |entry: u128| {
        let loc = entry as u64;
        let block = &blocks[((loc >> LOC_OFFSET_BITS) & LOC_BLOCK_MASK) as usize];
        &block[(loc & ((1 << LOC_OFFSET_BITS) - 1)) as usize..]
    };
    let group_at = |entry: u128| {
        EncodedGroups::new(bytes_at(entry))
            .next()
            .expect("the index points at groups")
    };
    let is_long = |entry: u128| (entry as u64) >> 63 == 1;
    // Equal keys stand for one customer unless some are longer than eight bytes (they sort last).
    sort_by_text(
        &mut index,
        |equal| is_long(equal[equal.len() - 1]),
        |entry| group_at(entry).customer,
    );

    let mut run = Run {
        bytes: Vec::with_capacity(index.len() * 8),
        ..Run::default()
    };
    let mut totals = Totals::new(scratch, products.len());
    let mut days: Vec<i32> = Vec::new();
    // The gather reads groups in key order, all over the blocks: ask for each group's first bytes
    // a few entries ahead, so that the reads overlap instead of waiting one after another.
    let prefetch = |i: usize| {
        if let Some(&entry) = index.get(i + PREFETCH_AHEAD) {
            prefetch_read(bytes_at(entry));
        }
    };
    let mut i = 0;
    while i < index.len() {
        prefetch(i);
        let first = group_at(index[i]);
        let customer_id = first.customer;
        totals.clear();
        days.clear();
        let mut group = first;
        loop {
            group.visit(
                |product, total| totals.add(product, total),
                |day| days.push(day),
            );
            if totals.overflow {
                return Err(Error::product_total_overflow(customer_id));
            }
            i += 1;
            prefetch(i);
            if i == index.len() || index[i] >> 64 != index[i - 1] >> 64 {
                break;
            }
            group = group_at(index[i]);
            if (is_long(index[i]) || is_long(index[i - 1])) && group.customer != customer_id {
                break;
            }
        }
        run.push(&CustomerRow {
            customer_id,
            favourite_product: totals.favourite(products),
            longest_streak: longest_streak(&mut days),
        });
    }
    Ok(run)
}

/// One customer's product totals, apart for codes with a dictionary id and codes kept as text
/// (rare: the dictionary was full).
///
/// Codes with an id are summed in arrays indexed by the id, without a search or a branch: a
/// slot belongs to the present customer when its stamp is the customer's, and the ids met are
/// listed once each, in the order they came.
struct Totals<'a, 's> {
    /// Sums and stamps by id, and the ids met (`met[..count]`).
    scratch: &'s mut Scratch,
    count: usize,
    /// Codes without an id, each with its [`prefix_key`] (compared first: most codes differ in
    /// their first eight bytes), and their sums.
    by_text: Vec<(u64, &'a [u8], i64)>,
    /// A sum went beyond `i64`.
    overflow: bool,
}

impl<'a, 's> Totals<'a, 's> {
    /// Totals of codes with ids below `ids`, in `scratch`.
    fn new(scratch: &'s mut Scratch, ids: usize) -> Self {
        if scratch.sums.len() < ids {
            scratch.sums.resize(ids, 0);
            scratch.stamps.resize(ids, 0);
            scratch.met.resize(ids + 1, 0);
        }
        Totals {
            scratch,
            count: 0,
            by_text: Vec::new(),
            overflow: false,
        }
    }

    /// Starts the next customer.
    fn clear(&mut self) {
        let scratch = &mut *self.scratch;
        scratch.stamp = scratch.stamp.wrapping_add(1);
        if scratch.stamp == 0 {
            scratch.stamps.fill(0);
            scratch.stamp = 1;
        }
        self.count = 0;
        self.by_text.clear();
    }

    #[inline]
    fn add(&mut self, product: Product<'a>, total: i64) {
        let sum = match product {
            Product::Id(id) => {
                let (i, scratch) = (id as usize, &mut *self.scratch);
                let new = scratch.stamps[i] != scratch.stamp;
                let (sum, overflow) =
                    (if new { 0 } else { scratch.sums[i] }).overflowing_add(total);
                self.overflow |= overflow;
                scratch.sums[i] = sum;
                scratch.stamps[i] = scratch.stamp;
                scratch.met[self.count] = id;
                self.count += usize::from(new);
                return;
            }
            Product::Text(text) => {
                let key = prefix_key(text);
                match self
                    .by_text
                    .iter_mut()
                    .find(|(k, t, _)| *k == key && *t == text)
                {
                    Some((_, _, sum)) => sum,
                    None => return self.by_text.push((key, text, total)),
                }
            }
        };
        match sum.checked_add(total) {
            Some(new) => *sum = new,
            None => self.overflow = true,
        }
    }

    /// The product with the greatest total; ties go to the smallest code in byte order.
    fn favourite(&self, products: &'a Catalogue) -> &'a [u8] {
        // One integer compare a code: the total above, the complement of the code's rank below
        // (a smaller code wins a tie), kept by a select, as which code wins is not predictable.
        let (mut best_key, mut best_id) = (i128::MIN, 0);
        let scratch = &*self.scratch;
        for &id in &scratch.met[..self.count] {
            let key =
                (i128::from(scratch.sums[id as usize]) << 32) | i128::from(!products.rank(id));
            let better = key > best_key;
            best_key = std::hint::select_unpredictable(better, key, best_key);
            best_id = std::hint::select_unpredictable(better, id, best_id);
        }
        let by_id = (self.count > 0).then(|| (products.text(best_id), (best_key >> 32) as i64));
        let by_text = self.by_text.iter().map(|&(_, text, sum)| (text, sum));
        favourite_product(by_id.into_iter().chain(by_text))
    }
}

/// How many index entries ahead the gather asks for a group's bytes.
const PREFETCH_AHEAD: usize = 8;

/// Bits of an index entry's place that hold the offset in its block; the block is in the bits
/// above them (masked by `LOC_BLOCK_MASK`), and the top bit tells a customer longer than 8 bytes.
const LOC_OFFSET_BITS: u32 = 40;
const LOC_BLOCK_MASK: u64 = (1 << 23) - 1;

/// The product with the greatest total; ties go to the smallest product code in byte order.
pub fn favourite_product<'a>(totals: impl IntoIterator<Item = (&'a [u8], i64)>) -> &'a [u8] {
    totals
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then_with(|| b.0.cmp(a.0)))
        .map(|(product, _)| product)
        .expect("a customer has at least one record")
}

/// The longest run of consecutive days among the distinct days (sorts `days` in place).
pub fn longest_streak(days: &mut [i32]) -> i32 {
    days.sort_unstable();
    let (mut best, mut current) = (1, 1);
    for pair in days.windows(2) {
        // The same day again keeps the streak, the next day lengthens it, any other starts a
        // new one: a select rather than branches, as which comes next is not predictable.
        let step = pair[1].wrapping_sub(pair[0]);
        current = std::hint::select_unpredictable((step as u32) < 2, current + step, 1);
        best = best.max(current);
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

    /// Bytes not yet iterated.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
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
        let favourite = |totals: &[(&'static [u8], i64)]| favourite_product(totals.iter().copied());
        assert_eq!(favourite(&[(b"B", 5), (b"A", 5), (b"C", 4)]), b"A");
        assert_eq!(favourite(&[(b"B", 6), (b"A", 5)]), b"B");
        assert_eq!(favourite(&[(b"b", -1), (b"a", -2)]), b"b");
        assert_eq!(
            favourite(&[(b"a", 0), (b"B", 0)]),
            b"B",
            "byte order: 'B' < 'a'"
        );
    }

    #[test]
    fn sums_go_beyond_i32() {
        let mut block = Vec::new();
        for d in 0..3 {
            let r = Record::new(b"c", b"big", d, i32::MAX);
            encode_record(&mut block, &r);
        }
        let r = Record::new(b"c", b"small", 0, i32::MAX);
        encode_record(&mut block, &r);
        let run = reduce_partition(&[block], &Catalogue::default()).unwrap();
        let rows: Vec<_> = RunRows::new(&run.bytes).collect();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].favourite_product, b"big");
        assert_eq!(rows[0].longest_streak, 3);
    }

    #[test]
    fn a_total_beyond_i64_is_an_error_not_a_wrapped_sum() {
        use crate::partition::{Product, encode_group};
        let texts: Vec<Box<[u8]>> = vec![Box::from(&b"big"[..])];
        let catalogue = Catalogue::new(texts);
        for product in [Product::Id(0), Product::Text(b"small")] {
            let mut block = Vec::new();
            for total in [i64::MAX - 1, 1] {
                encode_group(&mut block, b"c", [(product, total)].into_iter(), &[1]);
            }
            let run = reduce_partition(std::slice::from_ref(&block), &catalogue).unwrap();
            assert_eq!(RunRows::new(&run.bytes).count(), 1, "i64::MAX itself fits");
            encode_group(&mut block, b"c", [(product, 1)].into_iter(), &[2]);
            let error = reduce_partition(&[block], &catalogue).err();
            assert!(
                matches!(error, Some(Error::Overflow { ref customer, .. }) if customer == "c"),
                "{product:?}: {error:?}"
            );
        }
    }

    #[test]
    fn products_by_id_and_by_text_are_summed_apart() {
        use crate::partition::{Product, encode_group};
        // "big" has dictionary id 0; "small" came when the dictionary was full.
        let texts: Vec<Box<[u8]>> = vec![Box::from(&b"big"[..])];
        let mut block = Vec::new();
        let group = |block: &mut Vec<u8>, big, small, day| {
            let products = [(Product::Id(0), big), (Product::Text(b"small"), small)];
            encode_group(block, b"c", products.into_iter(), &[day]);
        };
        group(&mut block, 5, 3, 10);
        group(&mut block, 1, 4, 11);
        let run = reduce_partition(&[block], &Catalogue::new(texts)).unwrap();
        let rows: Vec<_> = RunRows::new(&run.bytes).collect();
        assert_eq!(rows[0].favourite_product, b"small", "7 units against 6");
        assert_eq!(rows[0].longest_streak, 2);
    }

    #[test]
    fn a_reused_scratch_carries_nothing_from_one_partition_to_the_next() {
        use crate::partition::{Product, encode_group};
        let texts: Vec<Box<[u8]>> = (0..300)
            .map(|i| format!("P{i:03}").into_bytes().into())
            .collect();
        let catalogue = Catalogue::new(texts);
        // Partitions whose customers buy the same ids with different totals.
        let partitions: Vec<Vec<u8>> = (0..40)
            .map(|p: u32| {
                let mut block = Vec::new();
                for c in 0..50 {
                    let products = (0..4).map(|k| {
                        let id = (c * 3 + k * 11) % 300;
                        (Product::Id(id), i64::from((p + c * k) % 5))
                    });
                    let customer = format!("c{c:02}");
                    encode_group(&mut block, customer.as_bytes(), products, &[c as i32]);
                }
                block
            })
            .collect();
        let mut scratch = Scratch::default();
        for block in &partitions {
            let blocks = std::slice::from_ref(block);
            let reused = reduce_partition_with(blocks, &catalogue, &mut scratch).unwrap();
            let fresh = reduce_partition(blocks, &catalogue).unwrap();
            assert_eq!(reused.bytes, fresh.bytes);
        }
        // Stamps that wrap around start over cleanly.
        scratch.stamp = u32::MAX - 3;
        let blocks = std::slice::from_ref(&partitions[0]);
        let wrapped = reduce_partition_with(blocks, &catalogue, &mut scratch).unwrap();
        assert_eq!(
            wrapped.bytes,
            reduce_partition(blocks, &catalogue).unwrap().bytes
        );
    }

    #[test]
    fn ties_go_to_the_smallest_code_whatever_its_id() {
        use crate::partition::{Product, encode_group};
        // Ids in the opposite of byte order, and codes kept as text between and around them.
        let texts: Vec<Box<[u8]>> = vec![Box::from(&b"d"[..]), Box::from(&b"b"[..])];
        let catalogue = Catalogue::new(texts);
        let favourite = |products: &[(Product<'_>, i64)]| {
            let mut block = Vec::new();
            encode_group(&mut block, b"c", products.iter().copied(), &[1]);
            let run = reduce_partition(&[block], &catalogue).unwrap();
            let row = RunRows::new(&run.bytes).next().unwrap();
            String::from_utf8(row.favourite_product.to_vec()).unwrap()
        };
        use Product::{Id, Text};
        assert_eq!(favourite(&[(Id(0), 5), (Id(1), 5)]), "b");
        assert_eq!(favourite(&[(Id(1), 5), (Id(0), 5)]), "b");
        assert_eq!(favourite(&[(Id(0), 5), (Text(b"c"), 5)]), "c");
        assert_eq!(favourite(&[(Text(b"e"), 5), (Id(0), 5)]), "d");
        assert_eq!(
            favourite(&[(Text(b"e"), 5), (Text(b"a"), 5), (Id(1), 5)]),
            "a"
        );
        assert_eq!(favourite(&[(Id(0), 6), (Text(b"a"), 5), (Id(1), 5)]), "d");
    }

    #[test]
    fn rows_come_out_sorted_by_customer_bytes() {
        let mut block = Vec::new();
        let ids = [
            "b",
            "a",
            "B",
            "0023938",
            "a",
            "ABCDEFGHb",
            "ABCDEFGH",
            "ABCDEFGHa",
            "ABCDEFGHb",
            "ABCDEFGH",
            "ABCDEFGHa",
        ];
        for c in ids {
            let r = Record::new(c.as_bytes(), b"p", 1, 1);
            encode_record(&mut block, &r);
        }
        let run = reduce_partition(&[block], &Catalogue::default()).unwrap();
        let ids: Vec<&[u8]> = RunRows::new(&run.bytes).map(|r| r.customer_id).collect();
        let expected: [&[u8]; 7] = [
            b"0023938",
            b"ABCDEFGH",
            b"ABCDEFGHa",
            b"ABCDEFGHb",
            b"B",
            b"a",
            b"b",
        ];
        assert_eq!(ids, expected);
        assert_eq!(run.rows, 7);
    }
}
