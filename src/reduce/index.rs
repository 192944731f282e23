//! A partition's groups sorted by customer, without hashing and without moving them: every
//! group is indexed by its customer's 8-byte [`prefix_key`] and its place in the blocks, and the
//! index is radix-sorted (integer keys; customers longer than eight bytes that share a prefix
//! are then put in byte order), after which each customer's groups are adjacent. When all the
//! partition's customers share their first eight bytes or more (zero-padded ids), the key is
//! taken from the bytes after the shared ones.

use crate::key::{prefetch_read, prefix_key, rekey_past_shared_bytes, sort_by_text};
use crate::partition::{EncodedGroups, Group};

/// How many index entries ahead the gather asks for a group's bytes.
const PREFETCH_AHEAD: usize = 8;

/// Bits of an index entry's place that hold the offset in its block; the block is in the bits
/// above them (masked by `LOC_BLOCK_MASK`), and the top bit tells a customer longer than 8 bytes.
const LOC_OFFSET_BITS: u32 = 40;
const LOC_BLOCK_MASK: u64 = (1 << 23) - 1;

/// The sorted index of a partition's groups.
pub(super) struct GroupIndex<'b> {
    blocks: &'b [Vec<u8>],
    /// Entry: prefix key (64 bits), whether the customer is longer than 8 bytes (1 bit), block
    /// (23 bits), offset in the block (40 bits). Equal keys sort short before long, as bytes do.
    /// (Key and length of what follows the bytes all customers share, when they share eight.)
    entries: Vec<u128>,
}

impl<'b> GroupIndex<'b> {
    /// The groups of `blocks` (whole groups), sorted by customer in byte order.
    pub(super) fn sorted(blocks: &'b [Vec<u8>]) -> Self {
        let mut entries: Vec<u128> = Vec::with_capacity(blocks.iter().map(|b| b.len() / 16).sum());
        for (b, block) in blocks.iter().enumerate() {
            assert!(b as u64 <= LOC_BLOCK_MASK && (block.len() as u64) < 1 << LOC_OFFSET_BITS);
            let mut groups = EncodedGroups::new(block);
            let mut offset = 0;
            while let Some(group) = groups.next() {
                let (key, long) = (prefix_key(group.customer), group.customer.len() > 8);
                entries.push(entry(key, long, b, offset));
                offset = block.len() - groups.remaining();
            }
        }
        // Customers that all share their first eight bytes (zero-padded ids) are keyed by the
        // bytes after those they share; "long" then means longer than those and eight more.
        rekey_past_shared_bytes(
            &mut entries,
            |entry| group_of(blocks, entry).customer,
            |loc, rest| with_long(loc, rest.len() > 8),
        );
        // Equal keys stand for one customer unless some are longer than eight bytes (they sort
        // last).
        sort_by_text(
            &mut entries,
            |equal| is_long(equal[equal.len() - 1]),
            |entry| group_of(blocks, entry).customer,
        );
        GroupIndex { blocks, entries }
    }

    /// Number of groups.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The `i`th group in customer order.
    #[inline]
    pub(super) fn group(&self, i: usize) -> Group<'b> {
        group_of(self.blocks, self.entries[i])
    }

    /// Whether groups `i` and `j` have customers of the same prefix key.
    #[inline]
    pub(super) fn same_key(&self, i: usize, j: usize) -> bool {
        self.entries[i] >> 64 == self.entries[j] >> 64
    }

    /// Whether groups `i` and `j`, of the same key, may still be of different customers (one of
    /// them is longer than eight bytes).
    #[inline]
    pub(super) fn may_differ(&self, i: usize, j: usize) -> bool {
        is_long(self.entries[i]) || is_long(self.entries[j])
    }

    /// The gather reads groups in key order, all over the blocks: asks for the first bytes of the
    /// group a few entries after `i`, so that the reads overlap instead of waiting one after
    /// another.
    #[inline]
    pub(super) fn prefetch_after(&self, i: usize) {
        if let Some(&entry) = self.entries.get(i + PREFETCH_AHEAD) {
            prefetch_read(bytes_at(self.blocks, entry));
        }
    }
}

/// An index entry: `key`, whether the customer is longer than its key says (`long`), where the
/// group is.
#[inline]
fn entry(key: u64, long: bool, block: usize, offset: usize) -> u128 {
    let loc = with_long(((block as u64) << LOC_OFFSET_BITS) | offset as u64, long);
    (u128::from(key) << 64) | u128::from(loc)
}

/// `loc` (an entry's low 64 bits) with its flag of a customer longer than its key set to `long`.
#[inline]
fn with_long(loc: u64, long: bool) -> u64 {
    loc & !(1 << 63) | u64::from(long) << 63
}

#[inline]
fn is_long(entry: u128) -> bool {
    (entry as u64) >> 63 == 1
}

/// The blocks' bytes from an entry's group on.
#[inline]
fn bytes_at(blocks: &[Vec<u8>], entry: u128) -> &[u8] {
    let loc = entry as u64;
    let block = &blocks[((loc >> LOC_OFFSET_BITS) & LOC_BLOCK_MASK) as usize];
    &block[(loc & ((1 << LOC_OFFSET_BITS) - 1)) as usize..]
}

#[inline]
fn group_of(blocks: &[Vec<u8>], entry: u128) -> Group<'_> {
    EncodedGroups::new(bytes_at(blocks, entry))
        .next()
        .expect("the index points at groups")
}
