//! The store: every partition's blocks, in memory while the total fits its budget; beyond it,
//! the partition that receives a block is moved to the run's spill files.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::Result;
use crate::spill::{Spill, SpillDir};

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
