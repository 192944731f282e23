//! The sample that steers partitioning: customer ids drawn evenly from a mapped file, so that
//! partitions are ranges of customers cut at its quantiles, or from a stream's first chunk,
//! which still shows its heavy customers.

use super::feed::Feed;
use super::plan::partition_count;
use crate::config::Config;
use crate::parse::{Header, sample_customer};
use crate::partition::Partitioner;
use crate::source::Source;

/// Ranges of customers cut at quantiles of a sample drawn evenly from a mapped source, so that
/// the reduced partitions come out in output order; a hash for a stream, which cannot be sampled
/// ahead of reading it (beyond its first chunk, which still shows its heavy customers). The
/// sample is read with `pread`, not through the map, whose touched pages would count towards the
/// peak memory.
pub(super) fn partitioner(
    source: &Source,
    header: &Header,
    feed: &Feed<'_>,
    config: &Config,
) -> Partitioner {
    let count = partition_count(source.len(), config.memory_limit, config.threads);
    let data_start = header.data_start as u64;
    if let Some(len) = source.len().filter(|&len| len > data_start) {
        let span = len - data_start;
        // About 16 per partition, and no more than the file has records (a small file's draws
        // would only read its few lines again).
        let draws = (count as u64 * 16).clamp(1024, 32 << 10).min(span / 32 + 1);
        let sample = draw_customers(span, draws, header, |at, buf| {
            source.read_at(data_start + at, buf).ok()
        });
        return Partitioner::ranges(count, sample);
    }
    // A stream's first chunk, drawn from evenly, still shows a customer who is a large part of
    // the input (see `Partitioner::heavy`).
    let Feed::Stream {
        first: Some(chunk), ..
    } = feed
    else {
        return Partitioner::new(count);
    };
    let data = &chunk.data[..];
    let draws = (data.len() as u64 / 32).clamp(1, 1024);
    let sample = draw_customers(data.len() as u64, draws, header, |at, buf| {
        let bytes = &data[at as usize..];
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Some(n)
    });
    Partitioner::new(count).with_heavy_from(sample)
}

/// The customers of `draws` lines spread evenly over `span` bytes of records, each the first
/// whole line of the up to 2 KiB that `read(at, buf)` puts into `buf` from `at` (the first draw
/// starts at a line).
fn draw_customers(
    span: u64,
    draws: u64,
    header: &Header,
    mut read: impl FnMut(u64, &mut [u8]) -> Option<usize>,
) -> Vec<Box<[u8]>> {
    let mut buf = vec![0; 2048];
    (0..draws)
        .filter_map(|k| {
            let n = read(span * k / draws, &mut buf)?;
            sample_customer(&buf[..n], k == 0, &header.layout)
        })
        .collect()
}
