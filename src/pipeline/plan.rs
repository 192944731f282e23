//! The run's sizes, from the memory limit, the threads and the source's length: how many
//! partitions, how large the workers' blocks, how much is kept in memory, how many product codes
//! get ids. Each rule was measured; the figures are in docs/performance-history.md.

use crate::config::Config;

/// The sizes of one run's read phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    /// Bytes of partition blocks the store keeps in memory before it spills.
    pub store_budget: usize,
    /// Bytes of a block a worker hands to the store.
    pub block_size: usize,
    /// Product codes the run's dictionary gives ids to.
    pub product_ids: usize,
}

impl Plan {
    /// The sizes for `partitions` partitions under `config`.
    pub(super) fn new(config: &Config, partitions: usize) -> Self {
        let half = config.memory_limit / 2;
        let kept = config.store_limit.map_or(half, |cap| cap.min(half)) as usize;
        let store_budget = match config.force_spill {
            true => 0,
            false => kept,
        };
        // At least MIN_BLOCK, unless buffers of that size for every partition do not fit (see
        // `partition_count`).
        let fit = buffers_fit(config.memory_limit, config.threads, MIN_BLOCK);
        let least = if partitions as u64 <= fit {
            MIN_BLOCK
        } else {
            SMALL_BLOCK
        };
        // The workers' blocks, a block per partition each, take at most half of what the store
        // keeps (without a store limit: a quarter of the memory limit).
        let block_size =
            (kept / (4 * config.threads * partitions)).clamp(least as usize, 256 << 10);
        Plan {
            store_budget,
            block_size,
            product_ids: product_cap(config.memory_limit, config.threads),
        }
    }
}

/// How many product codes the run's dictionary may hold: at most 8,192, one per 4 KiB of the
/// memory limit, and no more than keeps the dictionary and each worker's map of the ids it was
/// given (about 64 bytes a code, and as much again per thread) within an eighth of it; later
/// codes are written out as text.
///
/// An id pays for its look-up while the maps it is looked up in, and the reduce's arrays by id,
/// stay in a core's cache: with 8,192 codes they take a few hundred KB. Beyond, each row's look-up
/// waits on the far caches, and copying the code costs less (measured on catalogues of 10,000 to
/// 1,000,000 codes: docs/performance-history.md). The ids go to the codes met
/// first, which in a catalogue where a few codes sell most are likely to be those.
fn product_cap(memory_limit: u64, threads: usize) -> usize {
    let per_code = 512 * (threads as u64 + 1);
    (memory_limit / per_code.max(4096)).clamp(1024, 1 << 13) as usize
}

/// Smallest block a worker hands to the store: smaller would mean a write per few records.
const MIN_BLOCK: u64 = 16 << 10;

/// Smallest block when the memory limit is small for the input (see [`partition_count`]): a
/// write per page, for partitions small enough to be reduced within the limit.
const SMALL_BLOCK: u64 = 4 << 10;

/// How many partitions: enough that one partition's reduce stays in cache (a few MB of source
/// each), at least a few per thread for balance, and few enough that every worker's buffer per
/// partition fits a quarter of the memory budget. Buffers of [`MIN_BLOCK`], for at most
/// [`MOST_PARTITIONS`], unless that leaves partitions of more source than the limit shares out
/// to each thread (their reduce would outgrow it: a small limit on a large input); then of
/// [`SMALL_BLOCK`], for four times as many, up to [`MOST_SMALL_PARTITIONS`] (with
/// `--memory-limit 16MiB`, the 10 GB file gets 512 partitions instead of 128).
pub(super) fn partition_count(source_len: Option<u64>, memory_limit: u64, threads: usize) -> usize {
    const SOURCE_PER_PARTITION: u64 = 4 << 20;
    let len = source_len.unwrap_or(64 << 30);
    let wanted = len.div_ceil(SOURCE_PER_PARTITION).next_power_of_two();
    // A power of two, like `wanted`.
    let most = |block: u64| 1u64 << buffers_fit(memory_limit, threads, block).max(1).ilog2();
    let mut count = wanted.min(most(MIN_BLOCK)).min(MOST_PARTITIONS);
    if len / count > memory_limit / threads as u64 {
        count = wanted.min(most(SMALL_BLOCK)).min(MOST_SMALL_PARTITIONS);
    }
    (count as usize).max(threads * 4)
}

/// Most partitions of [`MIN_BLOCK`] buffers: each row goes to one of them, and a worker writing
/// into more buffers than this waits on address translation and the far caches (measured:
/// docs/performance-history.md).
const MOST_PARTITIONS: u64 = 1024;

/// Most partitions when the memory limit calls for [`SMALL_BLOCK`] buffers: staying within the
/// limit comes before the speed that fewer partitions would give.
const MOST_SMALL_PARTITIONS: u64 = 4096;

/// How many partitions every worker can keep a buffer of `block` bytes for within a quarter of
/// `memory_limit`.
fn buffers_fit(memory_limit: u64, threads: usize, block: u64) -> u64 {
    memory_limit / (4 * threads as u64 * block)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_shrink_for_a_small_limit_and_their_buffers_always_fit() {
        const GB: u64 = 1 << 30;
        const MIB: u64 = 1 << 20;
        // The cases docs/performance-history.md measured, two threads: 16 KB buffers, except
        // where they would leave partitions of more than the limit's share per thread.
        assert_eq!(partition_count(Some(10 * GB), 256_000_000, 2), 1024); // 256MB
        assert_eq!(partition_count(Some(10 * GB), 64 * MIB, 2), 512);
        assert_eq!(partition_count(Some(10 * GB), 16 * MIB, 2), 512); // not 128
        assert_eq!(partition_count(Some(GB), 16 * MIB, 2), 128);
        assert_eq!(partition_count(Some(10 * GB), 6 * GB, 2), 1024); // not 4,096
        assert_eq!(partition_count(Some(GB), 6 * GB, 2), 256);
        // A huge input with a small limit: smaller buffers for more partitions, as before.
        assert_eq!(partition_count(Some(100 * GB), 128 * MIB, 2), 4096);
        assert_eq!(partition_count(Some(100 * GB), 256 * MIB, 2), 1024);
        for len in [MIB, GB, 10 * GB, 100 * GB] {
            for limit in [16 * MIB, 64 * MIB, 256 * MIB, 6 * GB] {
                for threads in [1, 2, 8] {
                    let p = partition_count(Some(len), limit, threads) as u64;
                    let floor = (threads * 4) as u64;
                    assert!(p == floor || 4 * threads as u64 * p * SMALL_BLOCK <= limit);
                    assert!(p == floor || p.is_power_of_two() && p <= MOST_SMALL_PARTITIONS);
                    let blocks_fit = 4 * threads as u64 * p * MIN_BLOCK <= limit;
                    assert!(p == floor || !blocks_fit || p <= MOST_PARTITIONS);
                }
            }
        }
    }
}
