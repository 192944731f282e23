//! Heavy customers: one so frequent (a walk-in "guest" id) that its groups alone would fill a
//! partition is summed by each worker as its rows come — a running total per product and a set
//! of days — instead of being kept as a group per visit. They are found in the sample before
//! the work starts, and by a [`HeavyWatch`] among the groups a worker writes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::Rng;

use super::group::Product;
use crate::key::prefix_key;

/// The customers of `sorted` (a sample, sorted) drawn at least a partition's share of times,
/// and at least 16 times (so that chance alone does not make one), when there are `count`
/// partitions; none when there is one.
pub(super) fn heavy_of(sorted: &[Box<[u8]>], count: usize) -> Arc<[Box<[u8]>]> {
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

/// A heavy customer's records so far, summed.
pub(super) struct Heavy {
    pub(super) customer: Box<[u8]>,
    pub(super) key: u64,
    pub(super) totals: HashMap<HeavyProduct, i64, ahash::RandomState>,
    pub(super) days: HashSet<i32, ahash::RandomState>,
}

impl Heavy {
    pub(super) fn new(customer: Box<[u8]>) -> Self {
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
pub(super) enum HeavyProduct {
    Id(u32),
    Text(Box<[u8]>),
}

impl HeavyProduct {
    pub(super) fn of(product: Product<'_>) -> Self {
        match product {
            Product::Id(id) => HeavyProduct::Id(id),
            Product::Text(text) => HeavyProduct::Text(text.into()),
        }
    }

    pub(super) fn as_product(&self) -> Product<'_> {
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
pub(super) struct HeavyWatch {
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
pub(super) const MOST_HEAVY: usize = 64;

impl HeavyWatch {
    pub(super) fn new(partitions: usize) -> Self {
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
    pub(super) fn is_due(&mut self) -> bool {
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
    pub(super) fn count(&mut self, key: u64, customer: &[u8]) -> bool {
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
