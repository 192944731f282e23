//! The pipeline of SPEC §1 put together: source → chunks → parse + partition on rayon workers →
//! reduce partitions in parallel → a sink.
//!
//! Workers are `threads` long-lived tasks on the run's rayon pool that take chunks from a bounded
//! crossbeam channel; the calling thread feeds it (slices of the map, or owned chunks read from a
//! stream). Each worker owns its partition buffers, so the hot loop takes no lock. Reduced
//! partitions are handed to the sink's callback as they finish, from any worker.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::{BadRow, Error, Result};
use crate::parse::{ChunkParser, Header, Record, RowSink, read_header, sample_customer};
use crate::partition::{PartitionStore, PartitionWriter, Partitioner};
use crate::products::{Catalogue, ProductDict};
use crate::progress::{Phase, Progress, peak_memory};
use crate::reduce::{Run, Scratch, reduce_partition_with};
use crate::rejects::{BadRows, write_rejects};
use crate::sink::connect::Connection;
use crate::sink::csv::CsvSink;
use crate::sink::postgres::{Loader, TableName};
use crate::source::{Chunk, MappedChunks, Source, StreamChunks};
use crate::spill::SpillDir;

/// What a run did, for the summary (SPEC §7).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Data records read (good and bad).
    pub rows_read: u64,
    /// Bad records skipped (written to the rejects file).
    pub rows_rejected: u64,
    /// Good records aggregated (`rows_read = rows_aggregated + rows_rejected`).
    pub rows_aggregated: u64,
    /// Customer rows produced.
    pub customers: u64,
    /// Bytes of the source.
    pub bytes: u64,
    /// Partitions the records were spread over.
    pub partitions: usize,
    /// Bytes written to the spill files: the partitions' records and, for a CSV output, the
    /// reduced rows that waited there for their turn in customer order.
    pub spilled_bytes: u64,
    /// Time spent reading, parsing and partitioning.
    pub read_time: Duration,
    /// Time spent reducing partitions (and handing runs to the sink).
    pub reduce_time: Duration,
    /// Time spent writing the sink's output after the reduce (for PostgreSQL: primary key,
    /// `ANALYZE` and the swap).
    pub write_time: Duration,
    /// Time the PostgreSQL COPY spent sending and finishing, overlapping the reduce.
    pub copy_time: Duration,
    /// Peak resident memory of the process, in bytes, when known.
    pub peak_memory: Option<u64>,
}

/// Aggregates the source of `config` into the CSV file `output`.
pub fn run_to_csv(config: &Config, output: &Path, progress: &dyn Progress) -> Result<Summary> {
    let spill = SpillDir::create(&config.spill_dir)?;
    let budget = if config.force_spill {
        0
    } else {
        (config.memory_limit / 4) as usize
    };
    let sink = CsvSink::new(output, &spill, budget)?;
    let pool = thread_pool(config.threads)?;
    let mut summary = aggregate(config, &pool, &spill, progress, |run, place| {
        sink.accept(run, place)
    })?;
    let started = Instant::now();
    progress.start(Phase::Write, Some(summary.customers));
    let written = sink.finish(&pool, progress)?;
    debug_assert_eq!(written, summary.customers);
    summary.write_time = started.elapsed();
    summary.peak_memory = peak_memory();
    Ok(summary)
}

/// Aggregates the source of `config` into the PostgreSQL table `target`, replacing it atomically.
///
/// The connection and the privileges are checked, and the staging table made, before the source
/// is read; runs stream to the COPY over a bounded channel while partitions are still reducing.
pub fn run_to_postgres(
    config: &Config,
    connection: &Connection,
    target: &TableName,
    lock_timeout: Duration,
    progress: &dyn Progress,
) -> Result<Summary> {
    let mut loader = Loader::prepare(connection, target, lock_timeout)?;
    let spill = SpillDir::create(&config.spill_dir)?;
    let pool = thread_pool(config.threads)?;
    let (sender, receiver) = crossbeam_channel::bounded::<Run>(config.threads * 2);
    let (aggregated, copied) = std::thread::scope(|scope| {
        let copier = scope.spawn(|| loader.copy(receiver));
        let aggregated = aggregate(config, &pool, &spill, progress, |run, _| {
            sender.send(run).map_err(|_| Error::Database {
                what: target.to_string(),
                message: "the COPY stopped".into(),
            })
        });
        drop(sender);
        let copied = copier.join().expect("the COPY thread does not panic");
        (aggregated, copied)
    });
    // A COPY failure is the cause of the aggregation's "COPY stopped": report it first.
    let (mut summary, copied) = match (aggregated, copied) {
        (Ok(summary), Ok(copied)) => (summary, copied),
        (Err(e), _) if !matches!(e, Error::Database { .. }) => return Err(e),
        (_, Err(e)) | (Err(e), Ok(_)) => return Err(e),
    };
    let started = Instant::now();
    progress.start(Phase::Write, None);
    let times = loader.finish(copied, summary.customers, progress)?;
    summary.write_time = started.elapsed();
    summary.copy_time = times.copy;
    summary.peak_memory = peak_memory();
    Ok(summary)
}

/// Aggregates the source of `config`, handing every reduced partition to `on_run` (called from
/// several threads at once), with its place in customer order when partitions are ranges of
/// customers (they are reduced in that order, so each comes about in its turn). Spill files go
/// to `spill`.
pub fn aggregate(
    config: &Config,
    pool: &rayon::ThreadPool,
    spill: &SpillDir,
    progress: &dyn Progress,
    on_run: impl Fn(Run, Option<usize>) -> Result<()> + Sync,
) -> Result<Summary> {
    let started = Instant::now();
    let source = Source::open(&config.source)?;
    let (header, mut feed) = open_feed(&source, config)?;
    progress.start(Phase::Read, source.len());

    let partitioner = partitioner(&source, &header, &feed, config);
    let partitions = partitioner.count();
    let store_budget = if config.force_spill {
        0
    } else {
        (config.memory_limit / 2) as usize
    };
    let store = PartitionStore::new(partitions, store_budget, spill);
    // At least MIN_BLOCK, unless buffers of that size for every partition do not fit (see
    // `partition_count`).
    let least = if partitions as u64 <= buffers_fit(config.memory_limit, config.threads, MIN_BLOCK)
    {
        MIN_BLOCK
    } else {
        SMALL_BLOCK
    };
    let block_size = (config.memory_limit as usize / (8 * config.threads * partitions))
        .clamp(least as usize, 256 << 10);
    let bad_rows = BadRows::new(config.max_bad_rows);
    let products = ProductDict::new(product_cap(config.memory_limit, config.threads));
    log::info!(
        "{}: {} bytes; {} threads, {partitions} partitions ({} heavy customers summed as they \
         come), blocks of {block_size} bytes, {store_budget} bytes of records kept in memory at \
         most",
        source.path().display(),
        source.len().map_or("unknown".into(), |n| n.to_string()),
        config.threads,
        partitioner.heavy().len(),
    );

    // Parse and partition.
    let failure = Failure::default();
    let rows = Mutex::new((0u64, 0u64));
    let (sender, receiver) = crossbeam_channel::bounded::<Chunk<'_>>(config.threads * 2);
    pool.in_place_scope(|scope| {
        for _ in 0..config.threads {
            let receiver = receiver.clone();
            let (source, header, store, bad_rows, products) =
                (&source, &header, &store, &bad_rows, &products);
            let (failure, rows, partitioner) = (&failure, &rows, partitioner.clone());
            scope.spawn(move |_| {
                let mut parser = ChunkParser::new(source.path(), &header.layout);
                let mut worker = Worker {
                    writer: PartitionWriter::new(store, partitioner, block_size, products),
                    bad_rows,
                    good: 0,
                    error: None,
                    parse_only: config.parse_only,
                };
                let mut read = 0;
                for chunk in receiver.iter() {
                    if failure.happened() || chunk.offset > bad_rows.cutoff() {
                        continue;
                    }
                    read += parser.parse(&chunk, &mut worker);
                    progress.advance(chunk.data.len() as u64);
                    crate::faults::point("reading");
                    if let Cow::Borrowed(data) = &chunk.data {
                        let start = chunk.offset as usize;
                        source.release(start..start + data.len());
                    }
                    if let Some(e) = worker.error.take() {
                        failure.set(e);
                    }
                }
                let good = worker.good;
                if let Err(e) = worker.writer.finish() {
                    failure.set(e);
                }
                let mut rows = rows.lock().expect("no panics while locked");
                rows.0 += read;
                rows.1 += good;
            });
        }
        drop(receiver);
        loop {
            match feed.next_chunk() {
                Ok(Some(chunk)) if !failure.happened() => {
                    if sender.send(chunk).is_err() {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    failure.set(e);
                    break;
                }
            }
        }
        drop(sender);
    });
    failure.check()?;
    let (rows_read, rows_good) = rows.into_inner().expect("no panics while locked");
    if let Some(bytes) = source.bytes() {
        bad_rows.number_lines(bytes); // mapped chunks are not numbered
    }
    let (rejected, error) = bad_rows.finish(&config.rejects);
    if config.max_bad_rows > 0 {
        write_rejects(&config.rejects, &rejected)?;
    }
    if let Some(e) = error {
        return Err(e);
    }
    debug_assert_eq!(rows_read, rows_good + rejected.len() as u64);
    let read_time = started.elapsed();

    // Reduce.
    let started = Instant::now();
    progress.start(Phase::Reduce, Some(partitions as u64));
    log::info!(
        "read {rows_read} rows in {:.2} s; {} bytes spilled; reducing {partitions} partitions",
        read_time.as_secs_f64(),
        store.spilled_bytes()
    );
    let products = Catalogue::new(products.into_texts());
    let customers = Mutex::new(0u64);
    let ordered = partitioner.is_ordered();
    // Partitions are taken in order, one at a time, by each thread, as the memory they need to
    // be reduced is free.
    let budget = ReduceBudget::new(config.memory_limit / 2);
    let (sender, receiver) = crossbeam_channel::unbounded();
    let mut most = 0;
    for (place, part) in store.into_partitions().into_iter().enumerate() {
        let need = reduce_need(part.memory_bytes(), part.file_bytes());
        most = most.max(need);
        sender
            .send((place, part, need))
            .expect("the receiver is here");
    }
    drop(sender);
    if config.threads > 1 && 2 * most > budget.limit {
        log::info!(
            "the largest partition needs about {} MB to be reduced; two do not fit in half of \
             --memory-limit ({} MB), so reducers take turns (a larger limit reduces them side \
             by side)",
            most >> 20,
            budget.limit >> 20
        );
    }
    pool.in_place_scope(|scope| {
        for _ in 0..config.threads {
            let (receiver, failure, budget) = (receiver.clone(), &failure, &budget);
            let (products, customers, on_run) = (&products, &customers, &on_run);
            scope.spawn(move |_| {
                let mut scratch = Scratch::default();
                for (place, part, need) in receiver.iter() {
                    if failure.happened() {
                        break;
                    }
                    crate::faults::point("reducing");
                    progress.advance(1);
                    let _held = budget.take(need);
                    if failure.happened() {
                        break;
                    }
                    let reduced = part.into_blocks(spill).and_then(|blocks| {
                        let run = reduce_partition_with(&blocks, products, &mut scratch)?;
                        drop(blocks);
                        *customers.lock().expect("no panics while locked") += run.rows;
                        on_run(run, ordered.then_some(place))
                    });
                    if let Err(e) = reduced {
                        failure.set(e);
                    }
                }
            });
        }
    });
    failure.check()?;

    Ok(Summary {
        rows_read,
        rows_rejected: rejected.len() as u64,
        rows_aggregated: rows_good,
        customers: customers.into_inner().expect("no panics while locked"),
        bytes: feed.bytes_read(),
        partitions,
        // The partitions' records, and the runs a sink kept there while they waited.
        spilled_bytes: spill.written_bytes(),
        read_time,
        reduce_time: started.elapsed(),
        write_time: Duration::ZERO,
        copy_time: Duration::ZERO,
        peak_memory: peak_memory(),
    })
}

/// How much memory reducing a partition of `memory` bytes held in memory and `file` bytes
/// spilled takes: the spilled bytes read back, and about as much again as the whole for its
/// index, the radix sort's scratch and the reduced rows.
fn reduce_need(memory: usize, file: u64) -> u64 {
    2 * (memory as u64 + file) + file
}

/// The memory the reducers may hold at once. Partitions are about even, and with a large limit
/// all threads' fit at once; with a small limit on a large input (few, large partitions — each
/// worker keeps a buffer for every partition) they take turns rather than hold several times
/// the limit together. A partition that alone needs more than the budget is reduced alone.
struct ReduceBudget {
    limit: u64,
    /// Bytes taken, and by how many reducers.
    taken: Mutex<(u64, usize)>,
    given_back: Condvar,
}

/// Memory taken from a [`ReduceBudget`], given back when dropped.
struct Held<'b> {
    budget: &'b ReduceBudget,
    bytes: u64,
}

impl ReduceBudget {
    fn new(limit: u64) -> Self {
        ReduceBudget {
            limit,
            taken: Mutex::new((0, 0)),
            given_back: Condvar::new(),
        }
    }

    /// Takes `bytes` once they fit beside what the others hold (at once when no one holds any).
    fn take(&self, bytes: u64) -> Held<'_> {
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

/// The first error of a phase's threads; the others see that one happened and stop early.
#[derive(Default)]
struct Failure {
    happened: AtomicBool,
    first: Mutex<Option<Error>>,
}

impl Failure {
    /// Records `error`, unless an earlier one was.
    fn set(&self, error: Error) {
        self.happened.store(true, Ordering::Relaxed);
        self.first
            .lock()
            .expect("no panics while locked")
            .get_or_insert(error);
    }

    fn happened(&self) -> bool {
        self.happened.load(Ordering::Relaxed)
    }

    /// The first error, if any (taken: the next check is `Ok`).
    fn check(&self) -> Result<()> {
        match self.first.lock().expect("no panics while locked").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// Ranges of customers cut at quantiles of a sample drawn evenly from a mapped source, so that
/// the reduced partitions come out in output order; a hash for a stream, which cannot be sampled
/// ahead of reading it (beyond its first chunk, which still shows its heavy customers). The
/// sample is read with `pread`, not through the map, whose touched pages would count towards the
/// peak memory.
fn partitioner(source: &Source, header: &Header, feed: &Feed<'_>, config: &Config) -> Partitioner {
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

/// How many product codes the run's dictionary may hold: at most 8,192, one per 4 KiB of the
/// memory limit, and no more than keeps the dictionary and each worker's map of the ids it was
/// given (about 64 bytes a code, and as much again per thread) within an eighth of it; later
/// codes are written out as text.
///
/// An id pays for its look-up while the maps it is looked up in, and the reduce's arrays by id,
/// stay in a core's cache: with 8,192 codes they take a few hundred KB. Beyond, each row's look-up
/// waits on the far caches, and copying the code costs less (4 M rows, uniform catalogues, two
/// threads, caps of 65,536 and 8,192: 100,000 codes 0.47 and 0.32 s, 1,000,000 codes 0.38 and
/// 0.31 s, 10,000 codes 0.24 and 0.25 s; BENCHMARKS.md, session 9). The ids go to the codes met
/// first, which in a catalogue where a few codes sell most are likely to be those.
fn product_cap(memory_limit: u64, threads: usize) -> usize {
    let per_code = 512 * (threads as u64 + 1);
    (memory_limit / per_code.max(4096)).clamp(1024, 1 << 13) as usize
}

/// The run's rayon pool of `threads` workers (the aggregation and the CSV sink's merge share it).
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("custagg-{i}"))
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {threads} threads: {e}")))
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
/// `--memory-limit 16MiB`, the 10 GB file gets 512 partitions instead of 128, and peaks at about
/// 45 MB instead of 70).
fn partition_count(source_len: Option<u64>, memory_limit: u64, threads: usize) -> usize {
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
/// into more buffers than this waits on address translation and the far caches (10 GB set in
/// memory, two threads, three runs each in turns: read 7.96–8.86 s with 4,096 partitions,
/// 6.77–7.71 s with 2,048, 6.61–6.84 s with 1,024; the reduce took 2.1–2.4 s in each case).
const MOST_PARTITIONS: u64 = 1024;

/// Most partitions when the memory limit calls for [`SMALL_BLOCK`] buffers: staying within the
/// limit comes before the speed that fewer partitions would give.
const MOST_SMALL_PARTITIONS: u64 = 4096;

/// How many partitions every worker can keep a buffer of `block` bytes for within a quarter of
/// `memory_limit`.
fn buffers_fit(memory_limit: u64, threads: usize, block: u64) -> u64 {
    memory_limit / (4 * threads as u64 * block)
}

/// One worker's side of the parse: good rows into its partition buffers, bad rows to the collector.
struct Worker<'s, 'd> {
    writer: PartitionWriter<'s, 'd>,
    bad_rows: &'s BadRows,
    good: u64,
    error: Option<Error>,
    /// Drop each row once parsed (see [`Config::parse_only`]).
    parse_only: bool,
}

impl RowSink for Worker<'_, '_> {
    fn record(&mut self, record: Record<'_>) {
        self.good += 1;
        if self.parse_only {
            std::hint::black_box(&record);
            return;
        }
        if self.error.is_none()
            && let Err(e) = self.writer.push(&record)
        {
            self.error = Some(e);
        }
    }

    fn bad_row(&mut self, row: BadRow) {
        self.bad_rows.push(row);
    }

    fn stop_after(&self) -> u64 {
        if self.error.is_some() {
            0
        } else {
            self.bad_rows.cutoff()
        }
    }
}

/// Chunks of the data after the header, in file order.
enum Feed<'s> {
    Mapped {
        bytes: &'s [u8],
        specs: MappedChunks<'s>,
    },
    Stream {
        first: Option<Chunk<'static>>,
        rest: StreamChunks<'s>,
    },
}

impl<'s> Feed<'s> {
    /// Bytes of the source read so far (all of a mapped file's).
    fn bytes_read(&self) -> u64 {
        match self {
            Feed::Mapped { bytes, .. } => bytes.len() as u64,
            Feed::Stream { rest, .. } => rest.offset(),
        }
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk<'s>>> {
        match self {
            Feed::Mapped { bytes, specs } => Ok(specs.next().map(|spec| Chunk {
                offset: spec.range.start as u64,
                first_line: spec.first_line,
                is_last: spec.range.end == bytes.len(),
                data: Cow::Borrowed(&bytes[spec.range]),
            })),
            Feed::Stream { first, rest } => match first.take() {
                Some(chunk) => Ok(Some(chunk)),
                None => rest.next_chunk(),
            },
        }
    }
}

/// Reads the header and prepares the chunks after it.
fn open_feed<'s>(source: &'s Source, config: &Config) -> Result<(Header, Feed<'s>)> {
    if let Some(bytes) = source.bytes() {
        let header = read_header(source.path(), bytes, config.delimiter)?;
        source.release(0..header.data_start);
        let specs = MappedChunks::unnumbered(bytes, header.data_start, config.chunk_size);
        return Ok((header, Feed::Mapped { bytes, specs }));
    }
    let mut rest = source.stream(config.chunk_size).expect("not mapped");
    let first = rest.next_chunk()?;
    let first_bytes = first.as_ref().map_or(&[][..], |c| &c.data[..]);
    let header = read_header(source.path(), first_bytes, config.delimiter)?;
    let first = first.map(|chunk| Chunk {
        data: Cow::Owned(chunk.data[header.data_start..].to_vec()),
        offset: header.data_start as u64,
        first_line: header.data_line,
        is_last: chunk.is_last,
    });
    Ok((header, Feed::Stream { first, rest }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    #[test]
    fn partitions_shrink_for_a_small_limit_and_their_buffers_always_fit() {
        const GB: u64 = 1 << 30;
        const MIB: u64 = 1 << 20;
        // The cases BENCHMARKS.md measured, two threads: 16 KB buffers, except where they would
        // leave partitions of more than the limit's share per thread.
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
