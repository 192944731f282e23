//! The reducers' memory budget: partitions whose reduce would together hold more than half of
//! `--memory-limit` are reduced in turns.

use std::sync::{Condvar, Mutex};

/// How much memory reducing a partition of `memory` bytes held in memory and `file` bytes
/// spilled takes: the spilled bytes read back, and about as much again as the whole for its
/// index, the radix sort's scratch and the reduced rows.
pub(super) fn reduce_need(memory: usize, file: u64) -> u64 {
    2 * (memory as u64 + file) + file
}

/// The memory the reducers may hold at once. Partitions are about even, and with a large limit
/// all threads' fit at once; with a small limit on a large input (few, large partitions — each
/// worker keeps a buffer for every partition) they take turns rather than hold several times
/// the limit together. A partition that alone needs more than the budget is reduced alone.
pub(super) struct ReduceBudget {
    pub(super) limit: u64,
    /// Bytes taken, and by how many reducers.
    taken: Mutex<(u64, usize)>,
    given_back: Condvar,
}

/// Memory taken from a [`ReduceBudget`], given back when dropped.
pub(super) struct Held<'b> {
    budget: &'b ReduceBudget,
    bytes: u64,
}

impl ReduceBudget {
    pub(super) fn new(limit: u64) -> Self {
        ReduceBudget {
            limit,
            taken: Mutex::new((0, 0)),
            given_back: Condvar::new(),
        }
    }

    /// Takes `bytes` once they fit beside what the others hold (at once when no one holds any).
    pub(super) fn take(&self, bytes: u64) -> Held<'_> {
        let mut taken = self.taken.lock().expect("no panics while locked");
        while taken.1 > 0 && taken.0 + bytes > self.limit {
            taken = self.given_back.wait(taken).expect("no panics while locked");
        }
        *taken = (taken.0 + bytes, taken.1 + 1);
        Held {
            budget: self,
            bytes,
        }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        let mut taken = self.budget.taken.lock().expect("no panics while locked");
        *taken = (taken.0 - self.bytes, taken.1 - 1);
        self.budget.given_back.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn reducers_take_turns_when_their_partitions_do_not_fit_together() {
        let budget = ReduceBudget::new(100);
        let first = budget.take(60);
        let second_taken = AtomicBool::new(false);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let held = budget.take(60); // 120 > 100: waits for the first
                second_taken.store(true, Ordering::SeqCst);
                held
            });
            std::thread::sleep(Duration::from_millis(100));
            assert!(
                !second_taken.load(Ordering::SeqCst),
                "taken beside the first"
            );
            drop(first);
            let second = waiter.join().unwrap();
            assert!(second_taken.load(Ordering::SeqCst));
            // Beside the second: what fits goes at once.
            drop(budget.take(40));
            drop(second);
        });
        // More than the whole budget, with no one holding any: at once.
        drop(budget.take(1_000));
        assert_eq!(*budget.taken.lock().unwrap(), (0, 0));
    }
}
