//! One worker's side of partitioning: records folded into groups, groups encoded into a buffer
//! per partition (no locks, no per-row allocation), buffers handed to the shared store as
//! blocks, heavy customers summed apart.

use super::fold::{PendingGroup, held_text};
use super::group::{GROUP_BODY_LIMIT, GROUP_LIMIT, encode_group};
use super::heavy::{Heavy, HeavyProduct, HeavyWatch, MOST_HEAVY};
use super::router::Partitioner;
use super::store::PartitionStore;
use crate::error::{Error, Result};
use crate::key::prefetch_at;
use crate::parse::Record;
use crate::products::{ProductDict, ProductIds};

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
    /// The pending group's partition, found when the group starts (see [`Self::push`]).
    pending_partition: usize,
    ids: ProductIds<'s>,
    /// Heavy customers, sorted by prefix key.
    heavy: Vec<Heavy>,
    watch: HeavyWatch,
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
            pending_partition: 0,
        }
    }

    /// Adds one record: to the pending group when it is the same customer's, else to a new one.
    #[inline]
    pub fn push(&mut self, record: &Record<'_>) -> Result<()> {
        let key = record.customer_key;
        if !self.pending.is_of(key, record.customer) {
            self.flush_group()?;
            self.pending.start(key, record.customer);
            self.find_pending_partition();
        }
        let (product, units, day) = (record.product, record.units, record.day);
        let product_key = record.product_key;
        if !self
            .pending
            .add(product_key, product, units, day, &mut self.ids)
        {
            self.flush_group()?;
            // The same customer: the same partition, found when its first group started.
            self.pending.start(key, record.customer);
            let added = self
                .pending
                .add(product_key, product, units, day, &mut self.ids);
            debug_assert!(added, "an empty group takes any record");
        }
        Ok(())
    }

    /// Finds the partition of the group just started and asks for its buffer's end, where the
    /// group will be written: by the time its customer's rows are folded (a basket's few), the
    /// search and the buffer's line are done and in cache instead of stalling the flush.
    #[inline]
    fn find_pending_partition(&mut self) {
        let pending = &self.pending;
        let index = if pending.customer_len <= 8 {
            self.partitioner.partition_of_short(pending.customer_key)
        } else {
            self.partitioner.partition_of(&pending.long_customer)
        };
        self.pending_partition = index;
        let buffer = &self.buffers[index];
        prefetch_at(buffer.as_ptr().wrapping_add(buffer.len()));
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
        let index = self.pending_partition;
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
