//! The router: which partition a customer's groups go to. Ranges of customers cut at quantiles
//! of a sample of the input when there is one (the reduced partitions are then in output
//! order), else a hash. The hash has fixed seeds and the sample is drawn at fixed places, so a
//! given input always partitions the same way.

use std::sync::Arc;

use super::heavy::heavy_of;
use crate::key::{common_prefix_len, prefix_key};

/// Maps a customer to a partition: by ranges of customers in byte order when a sample of them
/// is known (partition `i` then holds only customers below those of partition `i + 1`, so the
/// reduced partitions come out already in output order), else by a hash.
#[derive(Clone)]
pub struct Partitioner {
    count: usize,
    pub(super) kind: Kind,
    /// Customers so frequent in the sample that each alone would fill a partition or more (a
    /// walk-in "guest" id, say): workers sum their records as they come instead of keeping a
    /// group for every visit (see [`PartitionWriter`]).
    heavy: Arc<[Box<[u8]>]>,
}

#[derive(Clone)]
pub(super) enum Kind {
    Hash(ahash::RandomState),
    Ranges {
        /// The splitting customers, ascending and distinct: partition `i` holds the customers
        /// with exactly `i` splitters at or below them.
        splitters: Arc<[Box<[u8]>]>,
        /// The first bytes that every splitter shares, when they are eight or more (zero-padded
        /// ids, `CUSTOMER-…`), else empty: keys are then taken from the bytes after them, where
        /// the splitters differ, instead of from bytes that are the same in all of them.
        common: Arc<[u8]>,
        /// For each splitter, the smallest key (the [`prefix_key`] of what follows `common`) of
        /// a customer whose rest is at most 8 bytes that is at or above it (its key, plus one
        /// when its rest is longer than 8 bytes); then `u64::MAX` up to a power of two (at least
        /// two of them), for a branch-free search.
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
pub(super) struct Lookup {
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
    pub(super) fn new(bounds: &[u64]) -> Option<Lookup> {
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
        // Sorted: what the first and the last share, all of them share.
        let common: Arc<[u8]> = match (splitters.first(), splitters.last()) {
            (Some(first), Some(last)) => {
                let shared = common_prefix_len(first, last);
                first[..if shared >= 8 { shared } else { 0 }].into()
            }
            _ => Arc::new([]),
        };
        let slots = (splitters.len() + 2).next_power_of_two();
        let bounds: Vec<u64> = splitters
            .iter()
            .map(|s| &s[common.len()..])
            .map(|rest| prefix_key(rest).saturating_add(u64::from(rest.len() > 8)))
            .chain(std::iter::repeat(u64::MAX))
            .take(slots)
            .collect();
        Partitioner {
            count: splitters.len() + 1,
            heavy,
            kind: Kind::Ranges {
                lookup: Lookup::new(&bounds[..splitters.len()]).map(Arc::new),
                splitters: splitters.into(),
                common,
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
        match &self.kind {
            Kind::Hash(_) if customer.len() <= 8 => self.partition_of_short(prefix_key(customer)),
            Kind::Hash(hasher) => self.partition_of_hash(hasher.hash_one(customer)),
            Kind::Ranges {
                splitters, common, ..
            } => {
                let Some(rest) = customer.strip_prefix(&**common) else {
                    // Below every splitter, or above them all.
                    return if customer < &**common {
                        0
                    } else {
                        self.count - 1
                    };
                };
                let key = prefix_key(rest);
                let below = self.ranges_below(key);
                if rest.len() <= 8 {
                    return below; // the key is the whole rest
                }
                // The splitters whose bounds are at or below the key are below the customer:
                // those with a smaller key, and one whose rest is the customer's next eight
                // bytes. Only longer ones that share its key, which come next, need their bytes
                // compared: a binary search, as zero-padded ids can make many of them.
                let at_or_below = |s: &[u8]| prefix_key(&s[common.len()..]) == key && s <= customer;
                let next = &splitters[below..];
                if !next.first().is_some_and(|s| at_or_below(s)) {
                    return below;
                }
                below + next.partition_point(|s| at_or_below(s))
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
            Kind::Ranges { common, .. } if common.is_empty() => self.ranges_below(key),
            Kind::Ranges { common, .. } => {
                // The splitters share eight bytes or more, so a customer of up to eight is below
                // them all, above them all, or (when the splitters share exactly eight) those
                // eight bytes, with nothing after them. No NUL in either: a shorter customer's
                // key differs from the shared bytes' key.
                let head = prefix_key(common);
                match key.cmp(&head) {
                    std::cmp::Ordering::Less => 0,
                    std::cmp::Ordering::Greater => self.count - 1,
                    std::cmp::Ordering::Equal if common.len() == 8 => self.ranges_below(0),
                    std::cmp::Ordering::Equal => 0,
                }
            }
        }
    }

    /// How many splitters a customer is at or above whose key (after the splitters' common
    /// bytes) is `key` and whose rest after them is at most eight bytes; at most `count - 1`.
    #[inline]
    fn ranges_below(&self, key: u64) -> usize {
        let Kind::Ranges { bounds, lookup, .. } = &self.kind else {
            unreachable!("only ranges have bounds")
        };
        // A splitter is at or below the customer exactly when its bound is at or below the key
        // (a longer splitter sharing the key sorts after the customer). The last bounds are
        // `u64::MAX`, above every key of a text without NUL or 0xFF bytes, so the count stays
        // below `bounds.len()`.
        if let Some(lookup) = lookup {
            let prefix = key.checked_shr(lookup.prefix_shift).unwrap_or(0);
            if prefix == lookup.prefix {
                // The bounds before the key's bucket are below it, those after it above it: of
                // the next two (the at most two in the bucket, or bounds of later buckets, or
                // the padding), count those at or below it.
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
            below += std::hint::select_unpredictable(bounds[below + step - 1] <= key, step, 0);
            step /= 2;
        }
        below.min(self.count - 1)
    }

    #[inline]
    fn partition_of_hash(&self, hash: u64) -> usize {
        // Multiply-shift maps the hash onto [0, count) without a division.
        ((u128::from(hash) * self.count as u128) >> 64) as usize
    }
}
