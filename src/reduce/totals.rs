//! One customer's product totals while its groups are gathered, and the favourite among them.

use super::rules::favourite_product;
use crate::key::prefix_key;
use crate::partition::Product;
use crate::products::Catalogue;

/// Arrays a thread reuses from one partition to the next: product totals by id, as large as the
/// catalogue (allocating and zeroing them for every partition would cost more than the reduce
/// when there are thousands of partitions and codes).
#[derive(Default)]
pub struct Scratch {
    /// By id: the sum, valid when the id's stamp is `stamp`.
    sums: Vec<i64>,
    stamps: Vec<u32>,
    /// The present customer's stamp.
    pub(super) stamp: u32,
    /// The present customer's ids, in the order they came (one slot more than ids).
    met: Vec<u32>,
}

/// One customer's product totals, apart for codes with a dictionary id and codes kept as text
/// (rare: the dictionary was full).
///
/// Codes with an id are summed in arrays indexed by the id, without a search or a branch: a
/// slot belongs to the present customer when its stamp is the customer's, and the ids met are
/// listed once each, in the order they came.
pub(super) struct Totals<'a, 's> {
    /// Sums and stamps by id, and the ids met (`met[..count]`).
    scratch: &'s mut Scratch,
    count: usize,
    /// Codes without an id, each with its [`prefix_key`] (compared first: most codes differ in
    /// their first eight bytes), and their sums.
    by_text: Vec<(u64, &'a [u8], i64)>,
    /// A sum went beyond `i64`.
    pub(super) overflow: bool,
}

impl<'a, 's> Totals<'a, 's> {
    /// Totals of codes with ids below `ids`, in `scratch`.
    pub(super) fn new(scratch: &'s mut Scratch, ids: usize) -> Self {
        if scratch.sums.len() < ids {
            scratch.sums.resize(ids, 0);
            scratch.stamps.resize(ids, 0);
            scratch.met.resize(ids + 1, 0);
        }
        Totals {
            scratch,
            count: 0,
            by_text: Vec::new(),
            overflow: false,
        }
    }

    /// Starts the next customer.
    pub(super) fn clear(&mut self) {
        let scratch = &mut *self.scratch;
        scratch.stamp = scratch.stamp.wrapping_add(1);
        if scratch.stamp == 0 {
            scratch.stamps.fill(0);
            scratch.stamp = 1;
        }
        self.count = 0;
        self.by_text.clear();
    }

    #[inline]
    pub(super) fn add(&mut self, product: Product<'a>, total: i64) {
        let sum = match product {
            Product::Id(id) => {
                let (i, scratch) = (id as usize, &mut *self.scratch);
                let new = scratch.stamps[i] != scratch.stamp;
                let (sum, overflow) =
                    (if new { 0 } else { scratch.sums[i] }).overflowing_add(total);
                self.overflow |= overflow;
                scratch.sums[i] = sum;
                scratch.stamps[i] = scratch.stamp;
                scratch.met[self.count] = id;
                self.count += usize::from(new);
                return;
            }
            Product::Text(text) => {
                let key = prefix_key(text);
                match self
                    .by_text
                    .iter_mut()
                    .find(|(k, t, _)| *k == key && *t == text)
                {
                    Some((_, _, sum)) => sum,
                    None => return self.by_text.push((key, text, total)),
                }
            }
        };
        match sum.checked_add(total) {
            Some(new) => *sum = new,
            None => self.overflow = true,
        }
    }

    /// Every product met with its total, in no particular order.
    pub(super) fn pairs(&self, products: &'a Catalogue) -> impl Iterator<Item = (&'a [u8], i64)> {
        let scratch = &*self.scratch;
        let by_id = scratch.met[..self.count]
            .iter()
            .map(|&id| (products.text(id), scratch.sums[id as usize]));
        by_id.chain(self.by_text.iter().map(|&(_, text, sum)| (text, sum)))
    }

    /// The product with the greatest total; ties go to the smallest code in byte order.
    pub(super) fn favourite(&self, products: &'a Catalogue) -> &'a [u8] {
        // One integer compare a code: the total above, the complement of the code's rank below
        // (a smaller code wins a tie), kept by a select, as which code wins is not predictable.
        let (mut best_key, mut best_id) = (i128::MIN, 0);
        let scratch = &*self.scratch;
        for &id in &scratch.met[..self.count] {
            let key =
                (i128::from(scratch.sums[id as usize]) << 32) | i128::from(!products.rank(id));
            let better = key > best_key;
            best_key = std::hint::select_unpredictable(better, key, best_key);
            best_id = std::hint::select_unpredictable(better, id, best_id);
        }
        let by_id = (self.count > 0).then(|| (products.text(best_id), (best_key >> 32) as i64));
        let by_text = self.by_text.iter().map(|&(_, text, sum)| (text, sum));
        favourite_product(by_id.into_iter().chain(by_text))
    }
}
