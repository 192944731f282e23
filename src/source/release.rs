//! Pages of the map given back once their chunks are done, so that a file larger than memory
//! does not stay resident: chunks finish in any order, and a page is given back once every
//! chunk on it is.

use std::collections::BTreeMap;
use std::ops::Range;

use memmap2::{Mmap, UncheckedAdvice};

pub(super) const PAGE: usize = 4096;

/// Gives back the whole pages from `start` to `end` (page-aligned) of `map`.
pub(super) fn dont_need(map: &Mmap, start: usize, end: usize) {
    if start < end {
        // SAFETY: the map is read-only and backed by a file, so MADV_DONTNEED drops only the
        // process's references to page-cache pages: a later read faults them in again with the
        // same contents. No Rust reference observes a change.
        let _ =
            unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
    }
}

/// The ranges of a file that are done with, as they come in any order.
#[derive(Default)]
pub(super) struct DoneBytes {
    /// The file's length.
    len: usize,
    /// Every byte below this is done.
    below: usize,
    /// Done ranges above `below`, end by start.
    pub(super) above: BTreeMap<usize, usize>,
    /// Pages (by their first byte) that hold a border between two ranges and reach beyond `below`.
    pub(super) waiting: Vec<usize>,
}

impl DoneBytes {
    pub(super) fn new(len: usize) -> Self {
        DoneBytes {
            len,
            ..DoneBytes::default()
        }
    }

    /// Marks `range` done; returns the pages that hold a border between two ranges and are now
    /// done whole.
    pub(super) fn mark(&mut self, range: Range<usize>) -> Vec<usize> {
        self.above.insert(range.start, range.end);
        while let Some(end) = self.above.remove(&self.below) {
            if !self.below.is_multiple_of(PAGE) {
                self.waiting.push(self.below / PAGE * PAGE);
            }
            self.below = end;
        }
        let (below, all) = (self.below, self.below == self.len);
        let (mut done, waiting): (Vec<usize>, Vec<usize>) = self
            .waiting
            .iter()
            .partition(|&&page| page + PAGE <= below || all);
        self.waiting = waiting;
        done.dedup(); // small ranges: several borders on one page
        done
    }
}
