//! Reduce: one partition's records into its final customer rows, sorted by customer.
//!
//! All records of a customer are in one partition, so a partition is reduced alone: its groups
//! are sorted by customer and each customer's adjacent groups are summed, reading the text in the
//! partition's own buffers (no copy). The finished rows go out as a *run*: the rows sorted by
//! `customer_id` in byte order, in a compact encoding that sinks merge or stream.
//!
//! [`index`] sorts a partition's groups by customer; [`totals`] sums one customer's products;
//! [`rules`] holds the two rules of contract §3 in their plain form; [`run`] is the rows'
//! encoding.

mod index;
mod rules;
mod run;
mod state;
#[cfg(test)]
mod tests;
mod totals;

pub use rules::{favourite_product, longest_streak};
pub use run::{CustomerRow, RUN_INDEX_EVERY, Run, RunRows, StateRows, encode_row};
pub use state::CustomerState;
pub use totals::Scratch;

use crate::error::{Error, Result};
use crate::products::Catalogue;
use index::GroupIndex;
use totals::Totals;

/// What a reduce hands on for each customer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Emit {
    /// Its row (the run holds [`CustomerRow`]s).
    #[default]
    Rows,
    /// Its whole [`CustomerState`], encoded, for an incremental load to merge (the run holds
    /// [`StateRows`]).
    State,
}

/// Reduces the groups in `blocks` (whole groups of one partition) into a sorted run; `products`
/// is the run's catalogue of product codes.
///
/// No hashing: the groups are sorted by customer (see [`GroupIndex`]), so each customer's groups
/// are adjacent: their product totals and days are gathered in small reused buffers and the row
/// is encoded at once, already in output order. Partitions are sized to stay in cache, so the
/// random reads of the gathering pass do not go to main memory.
pub fn reduce_partition(blocks: &[Vec<u8>], products: &Catalogue) -> Result<Run> {
    reduce_partition_with(blocks, products, &mut Scratch::default(), Emit::Rows)
}

/// [`reduce_partition`] with a thread's reused [`Scratch`].
pub fn reduce_partition_with(
    blocks: &[Vec<u8>],
    products: &Catalogue,
    scratch: &mut Scratch,
    emit: Emit,
) -> Result<Run> {
    let index = GroupIndex::sorted(blocks);
    let mut run = Run::with_capacity(index.len() * 8);
    let mut totals = Totals::new(scratch, products.len());
    let mut days: Vec<i32> = Vec::new();
    let (mut state, mut pairs) = (Vec::new(), Vec::new());
    let mut i = 0;
    while i < index.len() {
        index.prefetch_after(i);
        let first = index.group(i);
        let customer_id = first.customer;
        totals.clear();
        days.clear();
        let mut group = first;
        loop {
            group.visit(
                |product, total| totals.add(product, total),
                |day| days.push(day),
            );
            if totals.overflow {
                return Err(Error::product_total_overflow(customer_id));
            }
            i += 1;
            index.prefetch_after(i);
            if i == index.len() || !index.same_key(i - 1, i) {
                break;
            }
            group = index.group(i);
            if index.may_differ(i - 1, i) && group.customer != customer_id {
                break;
            }
        }
        match emit {
            Emit::Rows => run.push(&CustomerRow {
                customer_id,
                favourite_product: totals.favourite(products),
                longest_streak: longest_streak(&mut days),
            }),
            Emit::State => {
                state.clear();
                pairs.clear();
                pairs.extend(totals.pairs(products));
                CustomerState::encode_new(&mut state, &mut pairs, &mut days);
                run.push_state(customer_id, &state);
            }
        }
    }
    Ok(run)
}
