//! Hash partitioning by customer: every record of one customer lands in the same partition, so
//! partitions can be reduced independently and in parallel.
//!
//! Each worker encodes records into its own per-partition buffers (no locks, no per-row
//! allocation) and hands a buffer to the shared [`PartitionStore`] when it reaches the block
//! size. The store keeps blocks in memory while the total fits its budget; beyond it, the
//! partition that receives a block is moved to its spill file. The hash is ahash with fixed seeds,
//! so a given input always partitions the same way.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Result;
use crate::parse::Record;
use crate::spill::{Spill, SpillDir};

/// Maps a customer to a partition.
#[derive(Clone)]
pub struct Partitioner {
    count: usize,
    hasher: ahash::RandomState,
}

impl Partitioner {
    /// A partitioner into `count` partitions.
    pub fn new(count: usize) -> Self {
        Partitioner {
            count: count.max(1),
            hasher: ahash::RandomState::with_seeds(
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0,
                0x082e_fa98_ec4e_6c89,
            ),
        }
    }

    /// Number of partitions.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The partition of `customer`.
    #[inline]
    pub fn partition_of(&self, customer: &[u8]) -> usize {
        // Multiply-shift maps the hash onto [0, count) without a division.
        ((u128::from(self.hasher.hash_one(customer)) * self.count as u128) >> 64) as usize
    }
}

/// Appends `record` in the compact partition encoding:
/// `len(customer) u8, customer, len(product) u8, product, day i32 LE, units i32 LE`.
/// Text fields are at most 255 bytes (checked by the parser), so one length byte suffices.
#[inline]
pub fn encode_record(buf: &mut Vec<u8>, record: &Record<'_>) {
    buf.push(record.customer.len() as u8);
    buf.extend_from_slice(record.customer);
    buf.push(record.product.len() as u8);
    buf.extend_from_slice(record.product);
    buf.extend_from_slice(&record.day.to_le_bytes());
    buf.extend_from_slice(&record.units.to_le_bytes());
}

/// Iterates the records of a block written by [`encode_record`].
pub struct EncodedRecords<'a> {
    bytes: &'a [u8],
}

impl<'a> EncodedRecords<'a> {
    /// Records of `bytes`, which holds whole records.
    pub fn new(bytes: &'a [u8]) -> Self {
        EncodedRecords { bytes }
    }
}

impl<'a> Iterator for EncodedRecords<'a> {
    type Item = Record<'a>;

    #[inline]
    fn next(&mut self) -> Option<Record<'a>> {
        let (&clen, rest) = self.bytes.split_first()?;
        let (customer, rest) = rest.split_at(clen as usize);
        let (&plen, rest) = rest.split_first().expect("whole records");
        let (product, rest) = rest.split_at(plen as usize);
        let (day, rest) = rest.split_first_chunk::<4>().expect("whole records");
        let (units, rest) = rest.split_first_chunk::<4>().expect("whole records");
        self.bytes = rest;
        Some(Record {
            customer,
            product,
            day: i32::from_le_bytes(*day),
            units: i32::from_le_bytes(*units),
        })
    }
}

/// The partitions of a run: blocks in memory within the budget, the rest in spill files.
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
        let name = format!("partition-{index:05}");
        let freed = part.spill_memory(self.dir, &name)?;
        self.in_memory.fetch_sub(freed, Ordering::Relaxed);
        part.write(self.dir, &name, &block)
    }

    /// Bytes written to spill files so far.
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
pub struct PartitionWriter<'s, 'd> {
    store: &'s PartitionStore<'d>,
    partitioner: Partitioner,
    buffers: Vec<Vec<u8>>,
    block_size: usize,
}

impl<'s, 'd> PartitionWriter<'s, 'd> {
    /// A writer into `store` that hands over blocks of about `block_size` bytes.
    pub fn new(store: &'s PartitionStore<'d>, partitioner: Partitioner, block_size: usize) -> Self {
        PartitionWriter {
            buffers: vec![Vec::new(); partitioner.count()],
            store,
            partitioner,
            block_size,
        }
    }

    /// Adds one record to its partition's buffer.
    #[inline]
    pub fn push(&mut self, record: &Record<'_>) -> Result<()> {
        let index = self.partitioner.partition_of(record.customer);
        let buffer = &mut self.buffers[index];
        encode_record(buffer, record);
        if buffer.len() >= self.block_size {
            let block = std::mem::replace(buffer, Vec::with_capacity(self.block_size + 600));
            self.store.accept(index, block)?;
        }
        Ok(())
    }

    /// Hands every non-empty buffer to the store.
    pub fn finish(self) -> Result<()> {
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
    fn records_round_trip() {
        let records = [
            Record {
                customer: b"0023938",
                product: b"PURA250",
                day: 15_000,
                units: -5,
            },
            Record {
                customer: &[b'x'; 255],
                product: b"p",
                day: i32::MIN,
                units: i32::MAX,
            },
        ];
        let mut buf = Vec::new();
        for r in &records {
            encode_record(&mut buf, r);
        }
        let back: Vec<Record> = EncodedRecords::new(&buf).collect();
        assert_eq!(back, records);
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
