//! The sample that steers partitioning: customer ids drawn evenly from the mapped files, so that
//! partitions are ranges of customers cut at its quantiles, or from a stream's first chunk,
//! which still shows its heavy customers.

use super::feed::Started;
use super::inputs::Opened;
use super::plan::partition_count;
use crate::config::Config;
use crate::parse::{Layout, sample_customer};
use crate::partition::Partitioner;

/// Ranges of customers cut at quantiles of a sample drawn evenly from the inputs when all are
/// mapped files, so that the reduced partitions come out in output order; a hash otherwise, as
/// streams cannot be sampled ahead of reading them — with the heavy customers of what can be
/// sampled: the mapped files, else the first chunk of a stream read ahead (`started`). The
/// sample is read with `pread`, not through the maps, whose touched pages would count towards
/// the peak memory.
pub(super) fn partitioner(
    inputs: &[Opened],
    started: Option<&Started<'_>>,
    config: &Config,
) -> Partitioner {
    let estimate = inputs
        .iter()
        .map(Opened::estimated_len)
        .sum::<Option<u64>>();
    let count = partition_count(estimate, config.memory_limit, config.threads);
    // The data after each mapped file's header, as if they stood one after another.
    let spans: Vec<(u64, &Opened)> = inputs
        .iter()
        .filter_map(|opened| {
            let (source, header) = opened.mapped()?;
            let span = source.len()?.checked_sub(header.data_start as u64)?;
            (span > 0).then_some((span, opened))
        })
        .collect();
    let total: u64 = spans.iter().map(|&(span, _)| span).sum();
    if total > 0 {
        // About 16 per partition, and no more than the files have records (a small file's
        // draws would only read its few lines again).
        let draws = (count as u64 * 16)
            .clamp(1024, 32 << 10)
            .min(total / 32 + 1);
        let sample = draw_customers(total, draws, |at, buf| {
            let (mut at, mut k) = (at, 0);
            while at >= spans[k].0 {
                at -= spans[k].0;
                k += 1;
            }
            let (source, header) = spans[k].1.mapped()?;
            let n = source.read_at(header.data_start as u64 + at, buf).ok()?;
            Some((n, at == 0, &header.layout))
        });
        let all_mapped = inputs.iter().all(|i| i.mapped().is_some());
        return if all_mapped {
            Partitioner::ranges(count, sample)
        } else {
            Partitioner::new(count).with_heavy_from(sample)
        };
    }
    // A stream's first chunk, drawn from evenly, still shows a customer who is a large part of
    // the input (see `Partitioner::heavy`).
    let Some(Started {
        input,
        first: Some(chunk),
        ..
    }) = started
    else {
        return Partitioner::new(count);
    };
    let Some(layout) = inputs[*input].layout() else {
        return Partitioner::new(count);
    };
    let data = &chunk.data[..];
    let draws = (data.len() as u64 / 32).clamp(1, 1024);
    let sample = draw_customers(data.len() as u64, draws, |at, buf| {
        let bytes = &data[at as usize..];
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        Some((n, at == 0, layout))
    });
    Partitioner::new(count).with_heavy_from(sample)
}

/// The customers of `draws` lines spread evenly over `span` bytes of records, each the first
/// whole line of the up to 2 KiB that `read(at, buf)` puts into `buf` from `at`, which also
/// tells whether those bytes start a record and the layout of their file.
fn draw_customers<'l>(
    span: u64,
    draws: u64,
    mut read: impl FnMut(u64, &mut [u8]) -> Option<(usize, bool, &'l Layout)>,
) -> Vec<Box<[u8]>> {
    let mut buf = vec![0; 2048];
    (0..draws)
        .filter_map(|k| {
            let (n, at_start, layout) = read(span * k / draws, &mut buf)?;
            sample_customer(&buf[..n], at_start, layout)
        })
        .collect()
}
