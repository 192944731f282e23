//! Partitioning by customer: every record of one customer lands in the same partition, so
//! partitions can be reduced independently and in parallel. Partitions are ranges of customers
//! cut at quantiles of a sample of the input when there is one (the reduced partitions are then
//! in output order), else hash buckets.
//!
//! Each worker folds consecutive records of one customer into a *group* — units summed per
//! product, distinct days — and encodes groups into its own per-partition buffers (no locks, no
//! per-row allocation), handing a buffer to the shared [`PartitionStore`] when it reaches the block
//! size. Transaction files list a basket's rows together, so a group usually stands for several
//! rows: less to place, to store, to spill and to reduce. The store keeps blocks in memory while
//! the total fits its budget; beyond it, the partition that receives a block is moved to its
//! spill file. The hash is ahash with fixed seeds and the sample is drawn at fixed places, so a
//! given input always partitions the same way.

//! In the order a record meets them: [`router`] picks the partition; [`fold`] sums a
//! customer's consecutive records into a group; [`group`] is the encoding of groups; [`heavy`]
//! sums the customers too frequent to keep as groups; [`writer`] is a worker's buffers; [`store`]
//! holds the blocks in memory or spills them.

mod fold;
pub mod group;
mod heavy;
mod router;
mod store;
#[cfg(test)]
mod tests;
mod writer;

pub use group::{EncodedGroups, Group, Product, encode_group, encode_record};
pub(crate) use group::{put_varint, unzigzag, zigzag};
pub use router::Partitioner;
pub use store::PartitionStore;
pub use writer::PartitionWriter;
