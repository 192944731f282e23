//! Partitioning by customer: every record of one customer lands in the same partition, so
//! partitions can be reduced independently and in parallel. Partitions are ranges of customers
//! cut at quantiles of a sample of the input when there is one (the reduced partitions are then
//! in output order), else hash buckets.
//!
//! Each worker folds consecutive records of one customer into a *group* — units summed per
//! product, distinct days — and encodes groups into its own per-partition buffers (no locks, no
//! per-row allocation), handing a buffer to the shared [`PartitionStore`] when it reaches the block
//! size. Transaction files list a basket's rows together, so a group usually stands for several
//! rows: less to place, to store, to spill and to reduce. The store keeps blocks in memory while
//! the total fits its budget; beyond it, the partition that receives a block is moved to its
//! spill file. The hash is ahash with fixed seeds and the sample is drawn at fixed places, so a
//! given input always partitions the same way.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::Rng;

use crate::error::{Error, Result};
use crate::key::prefix_key;
use crate::parse::Record;
use crate::products::{ProductDict, ProductIds};
use crate::spill::{Spill, SpillDir};

/// Maps a customer to a partition: by ranges of customers in byte order when a sample of them
/// is known (partition `i` then holds only customers below those of partition `i + 1`, so the
/// reduced partitions come out already in output order), else by a hash.
#[derive(Clone)]
pub struct Partitioner {
    count: usize,
    kind: Kind,
    /// Customers so frequent in the sample that each alone would fill a partition or more (a
    /// walk-in "guest" id, say): workers sum their records as they come instead of keeping a
    /// group for every visit (see [`PartitionWriter`]).
    heavy: Arc<[Box<[u8]>]>,
}

#[derive(Clone)]
enum Kind {
    Hash(ahash::RandomState),
    Ranges {
        /// The splitting customers, ascending and distinct: partition `i` holds the customers
        /// with exactly `i` splitters at or below them.
        splitters: Arc<[Box<[u8]>]>,
        /// For each splitter, the smallest [`prefix_key`] of a customer of at most 8 bytes that
        /// is at or above it (its key, plus one when it is longer than 8 bytes); then `u64::MAX`
        /// up to a power of two (at least two of them), for a branch-free search.
        bounds: Arc<[u64]>,
        /// Where to look in `bounds` for a key, when the bounds are spread thinly enough.
        lookup: Option<Arc<Lookup>>,
    },
}

/// A table that narrows the search of the bounds down to at most two of them: a key's bucket
/// is read from a few of its bytes, each mapped to its rank among the values the bounds have in
/// that place (ids written in decimal fill buckets as evenly as random bytes would). A bound
/// in an earlier bucket than a key's is below the key, one in a later bucket above it; a
/// bucket lists the bounds in it.
struct Lookup {
    /// The bytes above the chosen places, the same in all bounds: `prefix` is a bound shifted
    /// right by `prefix_shift` (64 when there are none: every key's prefix is then 0).
    prefix: u64,
    prefix_shift: u32,
    /// For each chosen place: the shift that brings its byte down, the rank of each byte value
    /// (odd for the values the bounds have there, even for those between them) and the place's
    /// weight in the bucket number.
    places: Vec<(u32, [u16; 256], usize)>,
    /// For each bucket, how many bounds fall into buckets before it; then the number of bounds.
    first: Box<[u16]>,
}

/// Most buckets a [`Lookup`] has.
const LOOKUP_BUCKETS: usize = 1 << 17;

impl Lookup {
    /// A table for `bounds` (ascending), if no bucket would hold more than two of them.
    fn new(bounds: &[u64]) -> Option<Lookup> {
        if bounds.len() >= usize::from(u16::MAX) {
            return None; // buckets count their bounds in a u16
        }
        let (&low, &high) = (bounds.first()?, bounds.last()?);
        let common = (low ^ high).leading_zeros() / 8; // bytes shared by all bounds
        let mut places = Vec::new();
        let mut buckets = 1;
        for byte in common..8 {
            let shift = 56 - 8 * byte;
            let mut seen = [false; 256];
            for &b in bounds {
                seen[(b >> shift) as usize & 0xff] = true;
            }
            // A value the bounds have ranks 2i + 1, where i of their values are below it; any
            // other value 2i, between them: a bound and a key that first differ in this place
            // then get different ranks, in their order.
            let mut ranks = [0u16; 256];
            let mut below = 0;
            for (value, &seen) in seen.iter().enumerate() {
                ranks[value] = 2 * below + u16::from(seen);
                below += u16::from(seen);
            }
            let radix = 2 * usize::from(below) + 1;
            if buckets * radix > LOOKUP_BUCKETS {
                break;
            }
            buckets *= radix;
            places.push((shift, ranks, radix));
        }
        // Weights: the first place is the most significant.
        let mut weight = buckets;
        let places = places
            .into_iter()
            .map(|(shift, ranks, radix)| {
                weight /= radix;
                (shift, ranks, weight)
            })
            .collect();
        let mut lookup = Lookup {
            prefix: low.checked_shr(64 - 8 * common).unwrap_or(0),
            prefix_shift: 64 - 8 * common,
            places,
            first: Box::default(),
        };
        // Bounds per bucket (shifted by one), then how many come before each bucket.
        let mut first = vec![0u16; buckets + 1];
        for &b in bounds {
            first[lookup.bucket(b) + 1] += 1;
        }
        if first.iter().any(|&n| n > 2) {
            return None;
        }
        for i in 1..first.len() {
            first[i] += first[i - 1];
        }
        lookup.first = first.into();
        Some(lookup)
    }

    /// The bucket of `key`, which shares the bounds' common bytes.
    #[inline]
    fn bucket(&self, key: u64) -> usize {
        self.places
            .iter()
            .map(|(shift, ranks, weight)| {
                usize::from(ranks[(key >> shift) as usize & 0xff]) * weight
            })
            .sum()
    }
}

impl Partitioner {
    /// A hash partitioner into `count` partitions.
    pub fn new(count: usize) -> Self {
        Partitioner {
            count: count.max(1),
            heavy: Arc::new([]),
            kind: Kind::Hash(ahash::RandomState::with_seeds(
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0,
                0x082e_fa98_ec4e_6c89,
            )),
        }
    }

    /// A range partitioner into at most `count` partitions cut at quantiles of `sample`: valid
    /// customer ids (non-empty, without NUL, UTF-8) drawn evenly from the input, in any order.
    /// Fewer partitions when the sample has fewer distinct customers; a hash partitioner when it
    /// is empty.
    pub fn ranges(count: usize, mut sample: Vec<Box<[u8]>>) -> Self {
        if sample.is_empty() {
            return Partitioner::new(count);
        }
        debug_assert!(sample.iter().all(|s| !s.is_empty() && !s.contains(&0)));
        sample.sort_unstable();
        let count = count.max(1);
        let heavy = heavy_of(&sample, count);
        // Heavy customers hold next to nothing in their partitions (their rows are summed as
        // they come): the ranges are cut among the others.
        sample.retain(|s| heavy.binary_search(s).is_err());
        if sample.is_empty() {
            return Partitioner {
                heavy,
                ..Partitioner::new(count)
            };
        }
        let mut splitters: Vec<Box<[u8]>> = (1..count)
            .map(|i| sample[i * sample.len() / count].clone())
            .collect();
        splitters.dedup();
        let slots = (splitters.len() + 2).next_power_of_two();
        let bounds: Vec<u64> = splitters
            .iter()
            .map(|s| prefix_key(s).saturating_add(u64::from(s.len() > 8)))
            .chain(std::iter::repeat(u64::MAX))
            .take(slots)
            .collect();
        Partitioner {
            count: splitters.len() + 1,
            heavy,
            kind: Kind::Ranges {
                lookup: Lookup::new(&bounds[..splitters.len()]).map(Arc::new),
                splitters: splitters.into(),
                bounds: bounds.into(),
            },
        }
    }

    /// The customers found heavy in the sample, in byte order (none for a hash partitioner
    /// unless it was given a sample too).
    pub fn heavy(&self) -> &[Box<[u8]>] {
        &self.heavy
    }

    /// This partitioner, with the customers of `sample` (valid customer ids, drawn evenly from
    /// some of the input, in any order) that are heavy in it.
    pub fn with_heavy_from(mut self, mut sample: Vec<Box<[u8]>>) -> Self {
        sample.sort_unstable();
        self.heavy = heavy_of(&sample, self.count);
        self
    }

    /// Number of partitions.
    pub fn count(&self) -> usize {
        self.count
    }

    /// Whether partitions hold ranges of customers in byte order, partition by partition.
    pub fn is_ordered(&self) -> bool {
        matches!(self.kind, Kind::Ranges { .. })
    }

    /// The partition of `customer`.
    #[inline]
    pub fn partition_of(&self, customer: &[u8]) -> usize {
        if customer.len() <= 8 {
            return self.partition_of_short(prefix_key(customer));
        }
        match &self.kind {
            Kind::Hash(hasher) => self.partition_of_hash(hasher.hash_one(customer)),
            Kind::Ranges { splitters, .. } => {
                // The splitters whose bounds are at or below the key are below the customer:
                // those with a smaller key, and one that is the customer's first eight bytes.
                // Only longer ones that share its key, which come next, need their bytes
                // compared.
                let key = prefix_key(customer);
                let below = self.partition_of_short(key);
                below
                    + splitters[below..]
                        .iter()
                        .take_while(|s| prefix_key(s) == key && ***s <= *customer)
                        .count()
            }
        }
    }

    /// The partition of the customer of up to eight bytes whose [`prefix_key`] is `key`: the key
    /// is the whole text; one folded multiply mixes it, or the bucket table (else a branch-free
    /// binary search) finds its range.
    #[inline]
    pub fn partition_of_short(&self, key: u64) -> usize {
        match &self.kind {
            Kind::Hash(_) => {
                let product =
                    u128::from(key ^ 0x243f_6a88_85a3_08d3) * u128::from(0x9e37_79b9_7f4a_7c15_u64);
                self.partition_of_hash((product as u64) ^ ((product >> 64) as u64))
            }
            Kind::Ranges { bounds, lookup, .. } => {
                // A splitter is at or below the customer exactly when its bound is at or below
                // the key (a longer splitter sharing the key sorts after the customer). The last
                // bounds are `u64::MAX`, above every key of a text without NUL or 0xFF bytes, so
                // the count stays below `bounds.len()`.
                if let Some(lookup) = lookup {
                    let prefix = key.checked_shr(lookup.prefix_shift).unwrap_or(0);
                    if prefix == lookup.prefix {
                        // The bounds before the key's bucket are below it, those after it
                        // above it: of the next two (the at most two in the bucket, or bounds
                        // of later buckets, or the padding), count those at or below it.
                        let first = usize::from(lookup.first[lookup.bucket(key)]);
                        let below = first
                            + usize::from(bounds[first] <= key)
                            + usize::from(bounds[first + 1] <= key);
                        return below.min(self.count - 1);
                    }
                    // Outside the bounds' common bytes: below them all, or above them all.
                    return if prefix < lookup.prefix {
                        0
                    } else {
                        self.count - 1
                    };
                }
                let mut below = 0;
                let mut step = bounds.len() / 2;
                while step > 0 {
                    // Which way a customer goes is not predictable: no branch.
                    below +=
                        std::hint::select_unpredictable(bounds[below + step - 1] <= key, step, 0);
                    step /= 2;
                }
                below.min(self.count - 1)
            }
        }
    }

    #[inline]
    fn partition_of_hash(&self, hash: u64) -> usize {
        // Multiply-shift maps the hash onto [0, count) without a division.
        ((u128::from(hash) * self.count as u128) >> 64) as usize
    }
}

/// The customers of `sorted` (a sample, sorted) drawn at least a partition's share of times,
/// and at least 16 times (so that chance alone does not make one), when there are `count`
/// partitions; none when there is one.
fn heavy_of(sorted: &[Box<[u8]>], count: usize) -> Arc<[Box<[u8]>]> {
    if count <= 1 {
        return Arc::new([]);
    }
    let draws = heavy_draws(sorted.len() as u64, count as u64) as usize;
    sorted
        .chunk_by(|a, b| a == b)
        .filter(|run| run.len() >= draws)
        .map(|run| run[0].clone())
        .collect()
}

/// How many of `drawn` draws make a customer heavy among `partitions` (more than one): a
/// partition's share, and at least 16, so that chance alone does not make one.
fn heavy_draws(drawn: u64, partitions: u64) -> u64 {
    (drawn / partitions).max(16)
}

/// Most products or days one group holds before a new group is started.
const GROUP_LIMIT: usize = 255;

/// Most bytes of a group's body (products and days), so that its length fits a `u16`.
const GROUP_BODY_LIMIT: usize = 16 << 10;

/// Appends a group in the partition encoding:
/// `len u8, customer, body_len u16 LE, body` where the body is
/// `n u8, m u8, n × (product, total), m × day`: the first day as a zigzag LEB128 varint
/// and each further one as the zigzag varint of its difference from the one before (a byte each
/// when days come sorted); a product as the varint `id + 1` of its [`ProductDict`] id, or 0 and
/// `len u8, text` when it has none; totals as zigzag varints. Text fields are at most 255 bytes
/// (checked by the parser), so one length byte suffices; the body's length lets a reader step
/// over a group without decoding it.
///
/// [`ProductDict`]: crate::products::ProductDict
pub fn encode_group<'p>(
    buf: &mut Vec<u8>,
    customer: &[u8],
    products: impl ExactSizeIterator<Item = (Product<'p>, i64)>,
    days: &[i32],
) {
    buf.push(customer.len() as u8);
    buf.extend_from_slice(customer);
    let body_at = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.push(products.len() as u8);
    buf.push(days.len() as u8);
    for (product, total) in products {
        match product {
            Product::Id(id) => put_varint(buf, u64::from(id) + 1),
            Product::Text(text) => {
                buf.push(0);
                buf.push(text.len() as u8);
                buf.extend_from_slice(text);
            }
        }
        put_varint(buf, zigzag(total));
    }
    let mut previous = 0i64;
    for &day in days {
        put_varint(buf, zigzag(i64::from(day) - previous));
        previous = i64::from(day);
    }
    let body = u16::try_from(buf.len() - body_at - 2).expect("group bodies are limited");
    buf[body_at..body_at + 2].copy_from_slice(&body.to_le_bytes());
}

/// A product code as a group holds it.
#[derive(Clone, Copy, Debug)]
pub enum Product<'p> {
    /// An id of the run's product dictionary.
    Id(u32),
    /// The code itself.
    Text(&'p [u8]),
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Appends `v` as LEB128: seven bits a byte, low first, high bit set on all but the last.
fn put_varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// Reads a LEB128 varint from the front of `bytes`; returns it and the rest.
#[inline]
fn get_varint(bytes: &[u8]) -> (u64, &[u8]) {
    if let Some((&b, rest)) = bytes.split_first()
        && b < 0x80
    {
        return (u64::from(b), rest); // most values here take one byte
    }
    let (mut v, mut shift) = (0u64, 0);
    for (i, &b) in bytes.iter().enumerate() {
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return (v, &bytes[i + 1..]);
        }
        shift += 7;
    }
    panic!("whole groups end their varints")
}

/// Appends one record as a group of its own.
pub fn encode_record(buf: &mut Vec<u8>, record: &Record<'_>) {
    encode_group(
        buf,
        record.customer,
        std::iter::once((Product::Text(record.product), i64::from(record.units))),
        &[record.day],
    );
}

/// One decoded group: a customer, product totals and days, borrowed from a block.
#[derive(Clone, Copy, Debug)]
pub struct Group<'a> {
    /// The customer.
    pub customer: &'a [u8],
    product_count: u8,
    day_count: u8,
    /// The body after its two counts: products, then days.
    rest: &'a [u8],
}

impl<'a> Group<'a> {
    /// Hands each product as the group holds it, with its summed units, to `product`, and then
    /// each distinct day to `day`: one pass over the bytes.
    #[inline]
    pub fn visit(&self, mut product: impl FnMut(Product<'a>, i64), mut day: impl FnMut(i32)) {
        let mut bytes = self.rest;
        for _ in 0..self.product_count {
            let (tag, rest) = get_varint(bytes);
            let (code, rest) = match tag {
                0 => {
                    let (&len, rest) = rest.split_first().expect("whole groups");
                    let (text, rest) = rest.split_at(usize::from(len));
                    (Product::Text(text), rest)
                }
                id => (Product::Id(id as u32 - 1), rest),
            };
            let (total, rest) = get_varint(rest);
            bytes = rest;
            product(code, unzigzag(total));
        }
        let mut previous = 0i64;
        for _ in 0..self.day_count {
            let (delta, rest) = get_varint(bytes);
            bytes = rest;
            previous += unzigzag(delta);
            day(previous as i32);
        }
    }

    /// The distinct days (for tests; the reduce uses [`Group::visit`]).
    #[cfg(test)]
    pub fn days(&self) -> Vec<i32> {
        let mut days = Vec::new();
        self.visit(|_, _| {}, |d| days.push(d));
        days
    }

    /// The products with their summed units; `texts` are the run's product codes by id (for
    /// tests; the reduce uses [`Group::visit`]).
    #[cfg(test)]
    pub fn products(&self, texts: &'a [Box<[u8]>]) -> Vec<(&'a [u8], i64)> {
        let mut products = Vec::new();
        self.visit(
            |product, total| {
                products.push(match product {
                    Product::Id(id) => (&*texts[id as usize], total),
                    Product::Text(text) => (text, total),
                })
            },
            |_| {},
        );
        products
    }
}

/// Iterates the groups of a block written by [`encode_group`].
pub struct EncodedGroups<'a> {
    bytes: &'a [u8],
}

impl<'a> EncodedGroups<'a> {
    /// Groups of `bytes`, which holds whole groups.
    pub fn new(bytes: &'a [u8]) -> Self {
        EncodedGroups { bytes }
    }

    /// Bytes not yet iterated.
    pub fn remaining(&self) -> usize {
        self.bytes.len()
    }
}

impl<'a> Iterator for EncodedGroups<'a> {
    type Item = Group<'a>;

    #[inline]
    fn next(&mut self) -> Option<Group<'a>> {
        let (&clen, rest) = self.bytes.split_first()?;
        let (customer, rest) = rest.split_at(usize::from(clen));
        let (body_len, rest) = rest.split_first_chunk::<2>().expect("whole groups");
        let (body, rest) = rest.split_at(usize::from(u16::from_le_bytes(*body_len)));
        self.bytes = rest;
        let (&[product_count, day_count], rest) =
            body.split_first_chunk::<2>().expect("whole groups");
        Some(Group {
            customer,
            product_count,
            day_count,
            rest,
        })
    }
}

/// The records of one customer seen in a row, being folded into a group.
///
/// Texts of up to eight bytes are held by their [`prefix_key`] and length alone (the key's
/// big-endian bytes are the text); only longer ones are copied.
#[derive(Default)]
struct PendingGroup {
    /// The customer's prefix key and length (length 0: no group is pending).
    customer_key: u64,
    customer_len: usize,
    /// The customer's text, when it is longer than eight bytes.
    long_customer: Vec<u8>,
    products: Vec<PendingProduct>,
    /// Texts of the products that are longer than eight bytes or have no id, back to back.
    product_bytes: Vec<u8>,
    days: Vec<i32>,
}

/// A product of a pending group: its prefix key and length, its text in `product_bytes` when it
/// is longer than eight bytes or has no id, its dictionary id if it has one, its total.
struct PendingProduct {
    key: u64,
    len: u32,
    start: u32,
    id: Option<u32>,
    total: i64,
}

/// Whether a text held by its prefix key `key` and length `len` (and, when longer than eight
/// bytes, its bytes from `long`) is `text` with key `text_key`: texts of up to eight bytes are
/// equal exactly when their keys and lengths are.
#[inline]
fn is_held_text<'a>(
    key: u64,
    len: usize,
    long: impl FnOnce() -> &'a [u8],
    text_key: u64,
    text: &[u8],
) -> bool {
    key == text_key && len == text.len() && (len <= 8 || long() == text)
}

/// A text as a pending group holds it: up to eight bytes in its key, longer ones in `long`.
#[inline]
fn held_text<'a>(key: u64, len: usize, long: &'a [u8], short: &'a mut [u8; 8]) -> &'a [u8] {
    if len > 8 {
        long
    } else {
        *short = key.to_be_bytes();
        &short[..len]
    }
}

impl PendingGroup {
    /// Whether `customer` (with prefix key `key`) is this group's customer.
    #[inline]
    fn is_of(&self, key: u64, customer: &[u8]) -> bool {
        let (held, len) = (self.customer_key, self.customer_len);
        is_held_text(held, len, || &self.long_customer, key, customer)
    }

    /// Starts the group of `customer`.
    #[inline]
    fn start(&mut self, key: u64, customer: &[u8]) {
        self.customer_key = key;
        self.customer_len = customer.len();
        if customer.len() > 8 {
            self.long_customer.extend_from_slice(customer);
        }
    }

    /// Folds a record of this group's customer in (`key` is the product's prefix key); false
    /// when the group is full or a total would overflow (the caller then starts a new group).
    #[inline]
    fn add(
        &mut self,
        key: u64,
        product: &[u8],
        units: i32,
        day: i32,
        ids: &mut ProductIds<'_>,
    ) -> bool {
        if self.products.len() == GROUP_LIMIT || self.days.len() == GROUP_LIMIT {
            return false;
        }
        let len = product.len();
        let bytes = &self.product_bytes;
        match self.products.iter_mut().find(|p| {
            let long = || &bytes[p.start as usize..(p.start + p.len) as usize];
            is_held_text(p.key, p.len as usize, long, key, product)
        }) {
            Some(p) => match p.total.checked_add(i64::from(units)) {
                Some(sum) => p.total = sum,
                None => return false,
            },
            None => {
                // An upper bound of the body with this product and one more day: a product is
                // at most a 5-byte id (or a tag, a length and its text) and a 10-byte total, a
                // day at most 5 bytes.
                let body = 2
                    + self.product_bytes.len()
                    + len
                    + 17 * (self.products.len() + 1)
                    + 5 * (self.days.len() + 1);
                if body > GROUP_BODY_LIMIT {
                    return false;
                }
                let id = ids.id_keyed(key, product);
                self.products.push(PendingProduct {
                    key,
                    len: len as u32,
                    start: self.product_bytes.len() as u32,
                    id,
                    total: i64::from(units),
                });
                if len > 8 || id.is_none() {
                    self.product_bytes.extend_from_slice(product);
                }
            }
        }
        if !self.days.contains(&day) {
            self.days.push(day);
        }
        true
    }

    fn encode(&self, buf: &mut Vec<u8>) {
        let mut short = [0; 8];
        let customer = held_text(
            self.customer_key,
            self.customer_len,
            &self.long_customer,
            &mut short,
        );
        encode_group(buf, customer, self.products(), &self.days);
    }

    /// The group's products, each by its id or else its text, with its total.
    fn products(&self) -> impl ExactSizeIterator<Item = (Product<'_>, i64)> {
        self.products.iter().map(|p| {
            let product = match p.id {
                Some(id) => Product::Id(id),
                None => {
                    Product::Text(&self.product_bytes[p.start as usize..(p.start + p.len) as usize])
                }
            };
            (product, p.total)
        })
    }

    fn clear(&mut self) {
        self.customer_key = 0;
        self.customer_len = 0;
        self.long_customer.clear();
        self.product_bytes.clear();
        self.products.clear();
        self.days.clear();
    }
}

/// The partitions of a run: blocks in memory within the budget, the rest in the spill files.
pub struct PartitionStore<'d> {
    parts: Vec<Mutex<Spill>>,
    in_memory: AtomicUsize,
    budget: usize,
    dir: &'d SpillDir,
}

impl<'d> PartitionStore<'d> {
    /// A store of `count` partitions that keeps at most `budget` bytes in memory.
    pub fn new(count: usize, budget: usize, dir: &'d SpillDir) -> Self {
        PartitionStore {
            parts: (0..count).map(|_| Mutex::default()).collect(),
            in_memory: AtomicUsize::new(0),
            budget,
            dir,
        }
    }

    /// Adds a block of whole records to partition `index`.
    pub fn accept(&self, index: usize, block: Vec<u8>) -> Result<()> {
        let mut part = self.parts[index].lock().expect("no panics while locked");
        let held = self.in_memory.load(Ordering::Relaxed);
        if held + block.len() <= self.budget {
            self.in_memory.fetch_add(block.len(), Ordering::Relaxed);
            part.keep(block);
            return Ok(());
        }
        crate::faults::point("spilling");
        let freed = part.spill(self.dir, &block)?;
        self.in_memory.fetch_sub(freed, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes written to the spill files so far.
    pub fn spilled_bytes(&self) -> u64 {
        self.parts
            .iter()
            .map(|p| p.lock().expect("no panics while locked").file_bytes())
            .sum()
    }

    /// The partitions, in index order.
    pub fn into_partitions(self) -> Vec<Spill> {
        self.parts
            .into_iter()
            .map(|p| p.into_inner().expect("no panics while locked"))
            .collect()
    }
}

/// One worker's buffers, one per partition.
///
/// The records of a heavy customer (see [`Partitioner::heavy`], and those a [`HeavyWatch`] finds
/// as the rows come) are not kept as groups — a customer who is a tenth of the file would make
/// one partition a tenth of it, more than the memory budget lets a reducer hold — but summed into
/// one running total per product and a set of days, written out as a few groups at the end.
pub struct PartitionWriter<'s, 'd> {
    store: &'s PartitionStore<'d>,
    partitioner: Partitioner,
    buffers: Vec<Vec<u8>>,
    block_size: usize,
    pending: PendingGroup,
    ids: ProductIds<'s>,
    /// Heavy customers, sorted by prefix key.
    heavy: Vec<Heavy>,
    watch: HeavyWatch,
}

/// A heavy customer's records so far, summed.
struct Heavy {
    customer: Box<[u8]>,
    key: u64,
    totals: HashMap<HeavyProduct, i64, ahash::RandomState>,
    days: HashSet<i32, ahash::RandomState>,
}

impl Heavy {
    fn new(customer: Box<[u8]>) -> Self {
        Heavy {
            key: prefix_key(&customer),
            customer,
            totals: HashMap::default(),
            days: HashSet::default(),
        }
    }
}

/// A [`Product`] that owns its text, to be kept across groups.
#[derive(PartialEq, Eq, Hash)]
enum HeavyProduct {
    Id(u32),
    Text(Box<[u8]>),
}

impl HeavyProduct {
    fn of(product: Product<'_>) -> Self {
        match product {
            Product::Id(id) => HeavyProduct::Id(id),
            Product::Text(text) => HeavyProduct::Text(text.into()),
        }
    }

    fn as_product(&self) -> Product<'_> {
        match self {
            HeavyProduct::Id(id) => Product::Id(*id),
            HeavyProduct::Text(text) => Product::Text(text),
        }
    }
}

/// Finds the customers who turn out heavy as a worker's rows come, which neither a stream's
/// first chunk nor a sample need show (a walk-in id that only appears later in a stream): every
/// 32nd to 95th group — a stride drawn at random, so that no period of the data aliases with it —
/// has its customer counted in a Misra–Gries summary of [`WATCH_SLOTS`] counters. Every customer
/// of more than a 1/(`WATCH_SLOTS` + 1) share of the counted groups holds a counter, which
/// undercounts it by at most that share. A customer counted at least a partition's share of the
/// counted groups, and at least 16 times (the sample's rule, [`heavy_draws`]), is heavy from
/// then on. The output does not depend on it: a heavy customer's sums are groups like any other's.
struct HeavyWatch {
    /// Groups until the next one counted.
    countdown: u32,
    random: Pcg64Mcg,
    counted: u64,
    partitions: u64,
    slots: Vec<WatchSlot>,
}

struct WatchSlot {
    key: u64,
    customer: Vec<u8>,
    count: u64,
}

/// Counters of a [`HeavyWatch`].
const WATCH_SLOTS: usize = 16;

/// Most heavy customers a worker sums (the sample's included); beyond them it stops watching.
const MOST_HEAVY: usize = 64;

impl HeavyWatch {
    fn new(partitions: usize) -> Self {
        let mut watch = HeavyWatch {
            countdown: 0,
            random: Pcg64Mcg::new(0x2545_f491_4f6c_dd1d),
            counted: 0,
            partitions: partitions as u64,
            slots: Vec::with_capacity(WATCH_SLOTS),
        };
        watch.rewind();
        watch
    }

    /// Whether this group is one to count (one partition holds every customer anyway).
    #[inline]
    fn is_due(&mut self) -> bool {
        self.countdown -= 1;
        if self.countdown > 0 {
            return false;
        }
        self.rewind();
        self.partitions > 1
    }

    fn rewind(&mut self) {
        self.countdown = 32 + (self.random.next_u64() % 64) as u32;
    }

    /// Counts a group of `customer` (prefix key `key`); true when that makes it heavy.
    fn count(&mut self, key: u64, customer: &[u8]) -> bool {
        self.counted += 1;
        let at = match self
            .slots
            .iter()
            .position(|s| s.key == key && s.customer == customer)
        {
            Some(at) => at,
            None if self.slots.len() < WATCH_SLOTS => {
                self.slots.push(WatchSlot {
                    key,
                    customer: customer.to_vec(),
                    count: 0,
                });
                self.slots.len() - 1
            }
            None => {
                // Full: this group and one of every counter's go uncounted.
                for slot in &mut self.slots {
                    slot.count -= 1;
                }
                self.slots.retain(|s| s.count > 0);
                return false;
            }
        };
        self.slots[at].count += 1;
        if self.slots[at].count < heavy_draws(self.counted, self.partitions) {
            return false;
        }
        self.slots.swap_remove(at);
        true
    }
}

impl<'s, 'd> PartitionWriter<'s, 'd> {
    /// A writer into `store` that hands over blocks of about `block_size` bytes, with product
    /// ids from `products`.
    pub fn new(
        store: &'s PartitionStore<'d>,
        partitioner: Partitioner,
        block_size: usize,
        products: &'s ProductDict,
    ) -> Self {
        // In the sample's byte order, which sorts their keys too.
        let heavy = partitioner
            .heavy()
            .iter()
            .map(|customer| Heavy::new(customer.clone()))
            .collect();
        PartitionWriter {
            heavy,
            watch: HeavyWatch::new(partitioner.count()),
            ids: ProductIds::new(products),
            buffers: (0..partitioner.count())
                .map(|_| Vec::with_capacity(block_size + 1024))
                .collect(),
            store,
            partitioner,
            block_size,
            pending: PendingGroup::default(),
        }
    }

    /// Adds one record: to the pending group when it is the same customer's, else to a new one.
    #[inline]
    pub fn push(&mut self, record: &Record<'_>) -> Result<()> {
        let key = record.customer_key;
        if !self.pending.is_of(key, record.customer) {
            self.flush_group()?;
            self.pending.start(key, record.customer);
        }
        let (product, units, day) = (record.product, record.units, record.day);
        let product_key = record.product_key;
        if !self
            .pending
            .add(product_key, product, units, day, &mut self.ids)
        {
            self.flush_group()?;
            self.pending.start(key, record.customer);
            let added = self
                .pending
                .add(product_key, product, units, day, &mut self.ids);
            debug_assert!(added, "an empty group takes any record");
        }
        Ok(())
    }

    /// Encodes the pending group into its partition's buffer.
    fn flush_group(&mut self) -> Result<()> {
        if self.pending.customer_len == 0 {
            return Ok(()); // customers are never empty: nothing is pending
        }
        if !self.heavy.is_empty() && self.absorb_heavy()? {
            return Ok(());
        }
        if self.watch.is_due() && self.heavy.len() < MOST_HEAVY && self.watch_pending() {
            let absorbed = self.absorb_heavy()?;
            debug_assert!(absorbed, "the pending group's customer was just made heavy");
            return Ok(());
        }
        let pending = &mut self.pending;
        let index = if pending.customer_len <= 8 {
            self.partitioner.partition_of_short(pending.customer_key)
        } else {
            self.partitioner.partition_of(&pending.long_customer)
        };
        pending.days.sort_unstable(); // small differences: a byte a day
        pending.encode(&mut self.buffers[index]);
        self.pending.clear();
        self.hand_over_if_full(index)
    }

    /// Hands partition `index`'s buffer to the store once it holds a block.
    #[inline]
    fn hand_over_if_full(&mut self, index: usize) -> Result<()> {
        let buffer = &mut self.buffers[index];
        if buffer.len() >= self.block_size {
            let block = std::mem::replace(buffer, Vec::with_capacity(self.block_size + 1024));
            self.store.accept(index, block)?;
        }
        Ok(())
    }

    /// Counts the pending group's customer in the watch; true when that made it heavy (it is
    /// then one of `self.heavy`).
    #[cold]
    fn watch_pending(&mut self) -> bool {
        let pending = &self.pending;
        let mut short = [0; 8];
        let key = pending.customer_key;
        let customer = held_text(
            key,
            pending.customer_len,
            &pending.long_customer,
            &mut short,
        );
        if !self.watch.count(key, customer) {
            return false;
        }
        let at = self.heavy.partition_point(|h| h.key < key);
        self.heavy.insert(at, Heavy::new(customer.into()));
        true
    }

    /// Adds the pending group to its customer's sums when the customer is heavy; false when it
    /// is not.
    fn absorb_heavy(&mut self) -> Result<bool> {
        let pending = &mut self.pending;
        let key = pending.customer_key;
        // Sorted by key (the sample's order): the ones with this key, if any, start here.
        let first = self.heavy.partition_point(|h| h.key < key);
        let Some(heavy) = self.heavy[first..]
            .iter_mut()
            .take_while(|h| h.key == key)
            .find(|h| pending.is_of(h.key, &h.customer))
        else {
            return Ok(false);
        };
        for (product, sum) in pending.products() {
            let total = heavy.totals.entry(HeavyProduct::of(product)).or_insert(0);
            *total = total
                .checked_add(sum)
                .ok_or_else(|| Error::product_total_overflow(&heavy.customer))?;
        }
        heavy.days.extend(&pending.days);
        pending.clear();
        Ok(true)
    }

    /// Writes a heavy customer's sums as groups (each within the limits of a group).
    fn write_heavy(&mut self, heavy: Heavy) -> Result<()> {
        let index = self.partitioner.partition_of(&heavy.customer);
        let totals: Vec<(HeavyProduct, i64)> = heavy.totals.into_iter().collect();
        let mut days: Vec<i32> = heavy.days.into_iter().collect();
        days.sort_unstable();
        let (mut totals, mut days) = (&totals[..], &days[..]);
        while !totals.is_empty() || !days.is_empty() {
            // At most half a body of products (a text one costs up to 267 bytes), and days of
            // at most 5 bytes each.
            let mut size = 0;
            let taken = totals
                .iter()
                .take(GROUP_LIMIT)
                .take_while(|(product, _)| {
                    size += match product {
                        HeavyProduct::Id(_) => 15,
                        HeavyProduct::Text(text) => 12 + text.len(),
                    };
                    size <= GROUP_BODY_LIMIT / 2
                })
                .count();
            let (group, rest) = totals.split_at(taken);
            let (group_days, rest_days) = days.split_at(days.len().min(GROUP_LIMIT));
            let products = group
                .iter()
                .map(|(product, total)| (product.as_product(), *total));
            encode_group(
                &mut self.buffers[index],
                &heavy.customer,
                products,
                group_days,
            );
            (totals, days) = (rest, rest_days);
            self.hand_over_if_full(index)?;
        }
        Ok(())
    }

    /// Hands the pending group and every non-empty buffer to the store.
    pub fn finish(mut self) -> Result<()> {
        self.flush_group()?;
        for heavy in std::mem::take(&mut self.heavy) {
            self.write_heavy(heavy)?;
        }
        for (index, buffer) in self.buffers.into_iter().enumerate() {
            if !buffer.is_empty() {
                self.store.accept(index, buffer)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip() {
        let mut buf = Vec::new();
        let long = [b'x'; 255];
        let texts: Vec<Box<[u8]>> = vec![Box::from(&b"ID0"[..]), Box::from(&b"PURA250"[..])];
        let products: [(&[u8], i64); 4] = [
            (b"PURA250", -5),
            (&long, i64::MAX),
            (b"p", i64::MIN),
            (b"ID0", 7),
        ];
        let coded = [
            (Product::Id(1), -5),
            (Product::Text(&long), i64::MAX),
            (Product::Text(b"p"), i64::MIN),
            (Product::Id(0), 7),
        ];
        encode_group(
            &mut buf,
            b"0023938",
            coded.iter().copied(),
            &[15_000, i32::MIN],
        );
        encode_record(&mut buf, &Record::new(&long, b"q", 1, 300));
        let groups: Vec<Group> = EncodedGroups::new(&buf).collect();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].customer, b"0023938");
        assert_eq!(groups[0].products(&texts), products);
        assert_eq!(groups[0].days(), [15_000, i32::MIN]);
        assert_eq!(groups[1].customer, &long);
        assert_eq!(groups[1].products(&texts), [(&b"q"[..], 300)]);
    }

    /// The bytes one writer makes of `records` in a single partition, with a dictionary of at
    /// most `cap` product codes; and the codes it holds.
    fn one_partition(records: &[Record<'_>], cap: usize) -> (Vec<u8>, Vec<Box<[u8]>>) {
        let parent = tempfile::tempdir().unwrap();
        let dir = SpillDir::create(parent.path()).unwrap();
        let store = PartitionStore::new(1, usize::MAX, &dir);
        let products = ProductDict::new(cap);
        let mut writer = PartitionWriter::new(&store, Partitioner::new(1), 1 << 20, &products);
        for record in records {
            writer.push(record).unwrap();
        }
        writer.finish().unwrap();
        let mut blocks = store
            .into_partitions()
            .pop()
            .unwrap()
            .into_blocks(&dir)
            .unwrap();
        assert_eq!(blocks.len(), 1);
        (blocks.pop().unwrap(), products.into_texts())
    }

    #[test]
    fn consecutive_records_of_a_customer_fold_into_one_group() {
        let record = |customer: &'static str, product: &'static str, day, units| {
            Record::new(customer.as_bytes(), product.as_bytes(), day, units)
        };
        let mut records = vec![
            record("a", "P", 1, 5),
            record("a", "Q", 1, 1),
            record("a", "P", 2, i32::MAX),
            record("b", "P", 1, 1),
            record("a", "P", 3, 1),
        ];
        // 300 distinct days: the group is split at 255.
        records.extend((0..300).map(|day| record("c", "P", day, 1)));
        let (block, texts) = one_partition(&records, 1);
        // "P" got an id, "Q" found the dictionary full.
        assert_eq!(texts, [Box::from(&b"P"[..])]);
        let groups: Vec<Group> = EncodedGroups::new(&block).collect();
        type Summary<'a> = (&'a [u8], Vec<(&'a [u8], i64)>, usize);
        let summary: Vec<Summary> = groups
            .iter()
            .map(|g| (g.customer, g.products(&texts), g.days().len()))
            .collect();
        assert_eq!(
            summary[0],
            (
                &b"a"[..],
                vec![(&b"P"[..], 5 + i64::from(i32::MAX)), (&b"Q"[..], 1)],
                2
            )
        );
        assert_eq!(summary[1], (&b"b"[..], vec![(&b"P"[..], 1)], 1));
        assert_eq!(summary[2], (&b"a"[..], vec![(&b"P"[..], 1)], 1));
        assert_eq!(summary[3].2, 255);
        assert_eq!(summary[4].2, 45);
        assert_eq!(summary.len(), 5);
    }

    #[test]
    fn groups_of_long_products_split_before_their_body_outgrows_its_length() {
        let codes: Vec<Vec<u8>> = (0..200u8)
            .map(|i| vec![b'a' + i % 26; 200 + usize::from(i % 50)])
            .collect();
        let records: Vec<Record> = (0..200)
            .map(|i| Record::new(b"c", &codes[i], i as i32, -1))
            .collect();
        let (block, _) = one_partition(&records, 0); // every code as text
        let groups: Vec<Group> = EncodedGroups::new(&block).collect();
        assert!(groups.len() > 1);
        let (mut seen, mut days) = (0, 0);
        for g in &groups {
            seen += g.products(&[]).iter().map(|(_, total)| total).sum::<i64>();
            days += g.days().len();
        }
        assert_eq!((seen, days), (-200, 200));
    }

    #[test]
    fn partitions_are_stable_and_spread() {
        let p = Partitioner::new(16);
        let mut seen = [0usize; 16];
        for i in 0..16_000 {
            let c = format!("{i:07}");
            let a = p.partition_of(c.as_bytes());
            assert_eq!(a, p.partition_of(c.as_bytes()));
            seen[a] += 1;
        }
        assert!(seen.iter().all(|&n| (700..1300).contains(&n)), "{seen:?}");
    }

    /// Customer-like texts: short and long, many sharing their first eight bytes or being
    /// prefixes of each other, so that splitters and customers share keys.
    fn customer_text() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        (
            prop::sample::select(vec![&b""[..], b"0", b"00123", b"CUSTOMER", b"CUSTOMER-0"]),
            prop::collection::vec(
                prop::sample::select(vec![b'0', b'1', b'9', b'-', b'z']),
                0..6,
            ),
        )
            .prop_map(|(head, tail)| [head, &tail].concat())
            .prop_filter("non-empty", |t| !t.is_empty())
    }

    /// Whether a range partitioner puts each of `texts` where the reference does: after as
    /// many splitters as are at or below it, by bytes.
    fn agrees_with_the_splitters<'t>(
        p: &Partitioner,
        texts: impl IntoIterator<Item = &'t Vec<u8>>,
    ) -> Result<(), proptest::test_runner::TestCaseError> {
        if let Kind::Ranges { splitters, .. } = &p.kind {
            for t in texts {
                let expected = splitters.iter().filter(|s| ***s <= t[..]).count();
                proptest::prop_assert_eq!(p.partition_of(t), expected, "{:?}", t);
            }
        }
        Ok(())
    }

    proptest::proptest! {
        #[test]
        fn ranges_keep_byte_order_and_agree_with_the_splitters(
            sample in proptest::collection::vec(customer_text(), 0..60),
            probes in proptest::collection::vec(customer_text(), 1..60),
            count in 1usize..20,
        ) {
            let p = Partitioner::ranges(count, sample.iter().map(|s| s.clone().into()).collect());
            proptest::prop_assert!(p.count() <= count);
            agrees_with_the_splitters(&p, &probes)?;
            let mut sorted = probes.clone();
            sorted.sort();
            let parts: Vec<usize> = sorted.iter().map(|t| p.partition_of(t)).collect();
            proptest::prop_assert!(
                !p.is_ordered() || parts.windows(2).all(|w| w[0] <= w[1]),
                "{:?}",
                parts
            );
            proptest::prop_assert_eq!(p.is_ordered(), !sample.is_empty());
            proptest::prop_assert!(parts.iter().all(|&i| i < p.count()));
        }
    }

    /// Ids as files hold them: decimal, mostly of one width with leading zeros, now and then
    /// shorter or longer than eight bytes; and a few of any bytes but NUL and 0xFF.
    fn decimal_id() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        prop_oneof![
            8 => (0u64..10_000_000).prop_map(|n| format!("{n:07}").into_bytes()),
            1 => (0u64..100_000).prop_map(|n| n.to_string().into_bytes()),
            1 => (0u64..1 << 40).prop_map(|n| format!("{n:011}").into_bytes()),
            1 => prop::collection::vec(1u8..=254, 1..10),
        ]
    }

    proptest::proptest! {
        #[test]
        fn ranges_of_many_partitions_agree_with_the_splitters(
            sample in proptest::collection::vec(decimal_id(), 1..3000),
            probes in proptest::collection::vec(decimal_id(), 1..300),
            count in 2usize..300,
        ) {
            let p = Partitioner::ranges(count, sample.iter().map(|s| s.clone().into()).collect());
            proptest::prop_assert!(p.is_ordered());
            agrees_with_the_splitters(&p, probes.iter().chain(&sample))?;
        }
    }

    #[test]
    fn ranges_are_balanced_by_the_sample() {
        let ids: Vec<Box<[u8]>> = (0..64_000)
            .map(|i| format!("{:07}", i * 7919 % 64_000).into_bytes().into())
            .collect();
        let sample = ids.iter().step_by(16).cloned().collect();
        let p = Partitioner::ranges(16, sample);
        assert!(p.is_ordered());
        assert_eq!(p.count(), 16);
        assert!(
            matches!(
                &p.kind,
                Kind::Ranges {
                    lookup: Some(_),
                    ..
                }
            ),
            "decimal ids are looked up by their bucket"
        );
        let mut seen = [0usize; 16];
        for id in &ids {
            seen[p.partition_of(id)] += 1;
        }
        assert!(
            seen.iter().all(|&n| (3_000..5_000).contains(&n)),
            "{seen:?}"
        );
        assert!(!Partitioner::ranges(16, Vec::new()).is_ordered());
        assert!(p.heavy().is_empty(), "no customer is a partition's worth");
    }

    #[test]
    fn customers_of_a_partition_s_worth_of_the_sample_are_heavy() {
        let guest: Box<[u8]> = Box::from(&b"0000000"[..]);
        let long_guest: Box<[u8]> = Box::from(&b"WALK-IN-CUSTOMER"[..]);
        let mut sample: Vec<Box<[u8]>> = (0..3_000)
            .map(|i| format!("{:07}", 10_000 + i).into_bytes().into())
            .collect();
        sample.extend(std::iter::repeat_n(guest.clone(), 1_000));
        sample.extend(std::iter::repeat_n(long_guest.clone(), 300));
        // One of the ordinary customers drawn 15 times: under the floor of 16 draws.
        sample.extend(std::iter::repeat_n(sample[5].clone(), 14));
        assert_eq!(
            Partitioner::ranges(16, sample.clone()).heavy(),
            [guest.clone(), long_guest]
        );
        assert!(
            Partitioner::ranges(1, sample.clone()).heavy().is_empty(),
            "one partition holds all"
        );
        assert!(Partitioner::new(16).heavy().is_empty());
        // The ranges are cut among the others, evenly.
        let p = Partitioner::ranges(16, sample.clone());
        assert_eq!(p.count(), 16);
        let mut seen = [0usize; 16];
        for id in sample
            .iter()
            .filter(|s| s[0].is_ascii_digit() && **s != guest)
        {
            seen[p.partition_of(id)] += 1;
        }
        assert!(seen.iter().all(|&n| (150..250).contains(&n)), "{seen:?}");
        // Only heavy customers: a hash partitioner that still knows them.
        let p = Partitioner::ranges(16, vec![guest.clone(); 100]);
        assert!(!p.is_ordered());
        assert_eq!(p.heavy(), [guest]);
    }

    /// Of the groups in `store` whose customer is `customer`: how many, the totals of the
    /// products of `codes` (id `i` is `codes[i]`; codes without an id must be `codes[2]`), and
    /// the days, sorted.
    fn groups_of(
        customer: &[u8],
        store: PartitionStore<'_>,
        dir: &SpillDir,
        codes: &[&[u8]; 3],
    ) -> (usize, [i64; 3], Vec<i32>) {
        let (mut groups, mut totals, mut days) = (0, [0i64; 3], Vec::new());
        for part in store.into_partitions() {
            for block in part.into_blocks(dir).unwrap() {
                for group in EncodedGroups::new(&block).filter(|g| g.customer == customer) {
                    groups += 1;
                    group.visit(
                        |product, total| {
                            let i = match product {
                                Product::Id(id) => id as usize,
                                Product::Text(text) => {
                                    assert_eq!(text, codes[2]);
                                    2
                                }
                            };
                            totals[i] += total;
                        },
                        |day| days.push(day),
                    );
                }
            }
        }
        days.sort_unstable();
        (groups, totals, days)
    }

    /// `visits` visits of the guest, on 400 days, with 3 products (one of them beyond a
    /// dictionary of two), each followed by a visit of one of 100 other customers.
    fn write_guest_among_others(
        writer: &mut PartitionWriter<'_, '_>,
        codes: &[&[u8]; 3],
        visits: usize,
    ) {
        for i in 0..visits {
            let record = Record::new(b"guest", codes[i % 3], (i % 400) as i32, 2);
            writer.push(&record).unwrap();
            let other = format!("c{:03}", i % 100);
            writer
                .push(&Record::new(other.as_bytes(), b"A", 1, 1))
                .unwrap();
        }
    }

    #[test]
    fn a_heavy_customer_is_summed_into_a_few_groups() {
        let dir = SpillDir::create(&std::env::temp_dir()).unwrap();
        let store = PartitionStore::new(4, usize::MAX, &dir);
        let mut sample: Vec<Box<[u8]>> = (0..100)
            .map(|i| format!("c{i:03}").into_bytes().into())
            .collect();
        sample.extend(std::iter::repeat_n(Box::from(&b"guest"[..]), 100));
        let partitioner = Partitioner::ranges(4, sample);
        let products = ProductDict::new(2);
        let mut writer = PartitionWriter::new(&store, partitioner, 1 << 10, &products);
        let codes = [&b"A"[..], b"B", b"A-LONG-PRODUCT-CODE"];
        write_guest_among_others(&mut writer, &codes, 600);
        writer.finish().unwrap();
        let (groups, totals, days) = groups_of(b"guest", store, &dir, &codes);
        assert_eq!(groups, 2, "400 days: 255 and 145");
        assert_eq!(totals, [400, 400, 400]);
        assert_eq!(days, (0..400).collect::<Vec<i32>>());
    }

    #[test]
    fn a_customer_who_turns_out_heavy_is_summed_from_then_on() {
        let dir = SpillDir::create(&std::env::temp_dir()).unwrap();
        let products = ProductDict::new(2);
        let codes = [&b"A"[..], b"B", b"A-LONG-PRODUCT-CODE"];
        // Nothing known ahead (a stream's hash partitions): half the groups are the guest's.
        let store = PartitionStore::new(4, usize::MAX, &dir);
        let mut writer = PartitionWriter::new(&store, Partitioner::new(4), 1 << 10, &products);
        write_guest_among_others(&mut writer, &codes, 30_000);
        writer.finish().unwrap();
        let (groups, totals, mut days) = groups_of(b"guest", store, &dir, &codes);
        assert!(groups < 3_000, "{groups} of the guest's 30,000 groups kept");
        assert_eq!(totals, [20_000; 3]);
        days.dedup(); // the groups before it turned out heavy, and the sums after
        assert_eq!(days, (0..400).collect::<Vec<i32>>());
        // The others, one group in 100 each, stay groups.
        let store = PartitionStore::new(4, usize::MAX, &dir);
        let mut writer = PartitionWriter::new(&store, Partitioner::new(4), 1 << 10, &products);
        write_guest_among_others(&mut writer, &codes, 30_000);
        writer.finish().unwrap();
        let (groups, _, _) = groups_of(b"c042", store, &dir, &[b"A", b"B", b"C"]);
        assert_eq!(groups, 300);
        // One partition holds every customer anyway.
        let store = PartitionStore::new(1, usize::MAX, &dir);
        let mut writer = PartitionWriter::new(&store, Partitioner::new(1), 1 << 10, &products);
        write_guest_among_others(&mut writer, &codes, 3_000);
        writer.finish().unwrap();
        assert_eq!(groups_of(b"guest", store, &dir, &codes).0, 3_000);
    }

    #[test]
    fn store_spills_beyond_budget() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SpillDir::create(parent.path()).unwrap();
        let store = PartitionStore::new(2, 10, &dir);
        store.accept(0, vec![1; 6]).unwrap();
        store.accept(1, vec![2; 6]).unwrap(); // over budget: partition 1 goes to disk
        store.accept(0, vec![3; 4]).unwrap();
        assert_eq!(store.spilled_bytes(), 6);
        let parts = store.into_partitions();
        assert_eq!(parts[0].memory_bytes(), 10);
        assert_eq!(parts[1].file_bytes(), 6);
    }
}
