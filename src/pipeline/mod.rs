//! The pipeline of contract §1 put together: source → chunks → parse + partition on rayon workers →
//! reduce partitions in parallel → a sink.
//!
//! Workers are `threads` long-lived tasks on the run's rayon pool that take chunks from a bounded
//! crossbeam channel; the calling thread feeds it (slices of the map, or owned chunks read from a
//! stream). Each worker owns its partition buffers, so the hot loop takes no lock. Reduced
//! partitions are handed to the sink's callback as they finish, from any worker.
//!
//! [`plan`] sizes the run, [`sample`] steers the partitioner, [`feed`] yields the chunks,
//! [`worker`] is a read worker's row sink, [`budget`] paces the reducers, [`failure`] keeps the
//! first error.

mod budget;
mod failure;
mod feed;
mod incremental;
mod inputs;
mod plan;
mod sample;
mod worker;

use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::db::connect::Connection;
use crate::error::{Error, Result};
use crate::parse::{ChunkParser, parse_batch};
use crate::partition::{PartitionStore, PartitionWriter, Partitioner};
use crate::products::{Catalogue, ProductDict};
use crate::progress::{Phase, Progress, peak_memory};
use crate::reduce::{Run, Scratch, reduce_partition_with};
use crate::rejects::{BadRows, position, write_rejects};
use crate::sink::csv::CsvSink;
use crate::sink::postgres::{Loader, TableName};
use crate::spill::SpillDir;
use budget::{ReduceBudget, reduce_need};
use failure::Failure;
use feed::{Feeder, Work, start_stream};
use inputs::{Opened, open_inputs};
use plan::Plan;
use sample::partitioner;
use worker::Worker;

pub use incremental::{IncrementalRun, Skipped, run_incremental};

/// What a run did, for the summary (contract §7).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// Data records read (good and bad).
    pub rows_read: u64,
    /// Of them, the records of each input, in the order of the inputs.
    pub rows_by_input: Vec<u64>,
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
    /// How the target's connection is protected, as the server reports it: `TLS 1.3,
    /// verify-full` or `not encrypted`; `None` for a CSV output.
    pub encryption: Option<String>,
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
    let encryption = loader.encryption().to_string();
    let spill = SpillDir::create(&config.spill_dir)?;
    let pool = thread_pool(config.threads)?;
    let (mut summary, copied) =
        aggregate_into_copy(config, &pool, &spill, progress, target, |runs| {
            loader.copy(runs)
        })?;
    let started = Instant::now();
    progress.start(Phase::Write, None);
    let times = loader.finish(copied, summary.customers, progress)?;
    summary.write_time = started.elapsed();
    summary.copy_time = times.copy;
    summary.peak_memory = peak_memory();
    summary.encryption = Some(encryption);
    Ok(summary)
}

/// Aggregates the sources of `config` while `copy`, on a thread of its own, streams the runs it
/// receives over a bounded channel into a COPY to `target`; returns the summary and the rows the
/// server counted. A COPY failure is the cause of the aggregation's "the COPY stopped", so it is
/// the error reported.
fn aggregate_into_copy(
    config: &Config,
    pool: &rayon::ThreadPool,
    spill: &SpillDir,
    progress: &dyn Progress,
    target: &TableName,
    copy: impl FnOnce(crossbeam_channel::Receiver<Run>) -> Result<u64> + Send,
) -> Result<(Summary, u64)> {
    let (sender, receiver) = crossbeam_channel::bounded::<Run>(config.threads * 2);
    let (aggregated, copied) = std::thread::scope(|scope| {
        let copier = scope.spawn(|| copy(receiver));
        let aggregated = aggregate(config, pool, spill, progress, |run, _| {
            sender.send(run).map_err(|_| Error::Database {
                what: target.to_string(),
                message: "the COPY stopped".into(),
            })
        });
        drop(sender);
        let copied = copier.join().expect("the COPY thread does not panic");
        (aggregated, copied)
    });
    match (aggregated, copied) {
        (Ok(summary), Ok(copied)) => Ok((summary, copied)),
        (Err(e), _) if !matches!(e, Error::Database { .. }) => Err(e),
        (_, Err(e)) | (Err(e), Ok(_)) => Err(e),
    }
}

/// Aggregates the sources of `config`, handing every reduced partition to `on_run` (called from
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
    let inputs = open_inputs(config)?;
    // With no mapped file to sample, the first stream's first chunk shows its heavy customers.
    let ahead = match inputs.iter().any(|i| i.mapped().is_some()) {
        true => None,
        false => match inputs
            .iter()
            .position(|i| matches!(i, Opened::Stream { .. }))
        {
            Some(first) => start_stream(&inputs, first, config)?,
            None => None,
        },
    };
    let total = inputs.iter().map(Opened::text_len).sum::<Option<u64>>();
    progress.start(Phase::Read, total);

    let partitioner = partitioner(&inputs, ahead.as_ref(), config);
    let partitions = partitioner.count();
    let plan = Plan::new(config, partitions);
    let store = PartitionStore::new(partitions, plan.store_budget, spill);
    let products = ProductDict::new(plan.product_ids);
    log::info!(
        "{}: {} bytes; {} threads, {partitions} partitions ({} heavy customers summed as they \
         come), blocks of {} bytes, {} bytes of records kept in memory at most",
        shown_inputs(&inputs),
        total.map_or("unknown".into(), |n| n.to_string()),
        config.threads,
        partitioner.heavy().len(),
        plan.block_size,
        plan.store_budget,
    );
    let phases = Phases {
        config,
        pool,
        progress,
        failure: Failure::default(),
    };
    let reading = Reading {
        inputs: &inputs,
        store: &store,
        partitioner: &partitioner,
        products: &products,
        block_size: plan.block_size,
        bad_rows: BadRows::new(config.max_bad_rows),
    };
    let feeder = Feeder {
        inputs: &inputs,
        config,
        failure: &phases.failure,
        started: Mutex::new(ahead),
        bytes: AtomicU64::new(0),
    };
    let rows = phases.read(&reading, &feeder)?;
    let bytes = feeder.bytes_read();
    let rejected = reading.finish(config)?;
    debug_assert_eq!(rows.read, rows.good + rejected);
    let read_time = started.elapsed();

    let started = Instant::now();
    progress.start(Phase::Reduce, Some(partitions as u64));
    log::info!(
        "read {} rows in {:.2} s; {} bytes spilled; reducing {partitions} partitions",
        rows.read,
        read_time.as_secs_f64(),
        store.spilled_bytes()
    );
    let products = Catalogue::new(products.into_texts());
    let ordered = partitioner.is_ordered();
    let customers = phases.reduce(store, spill, &products, ordered, &on_run)?;

    Ok(Summary {
        rows_read: rows.read,
        rows_by_input: rows.by_input,
        rows_rejected: rejected,
        rows_aggregated: rows.good,
        customers,
        bytes,
        partitions,
        // The partitions' records, and the runs a sink kept there while they waited.
        spilled_bytes: spill.written_bytes(),
        read_time,
        reduce_time: started.elapsed(),
        write_time: Duration::ZERO,
        copy_time: Duration::ZERO,
        peak_memory: peak_memory(),
        encryption: None,
    })
}

/// The inputs as the log names them: the one, or the first and how many more.
fn shown_inputs(inputs: &[Opened]) -> String {
    match inputs {
        [one] => one.path().display().to_string(),
        [first, rest @ ..] => format!("{} and {} more inputs", first.path().display(), rest.len()),
        [] => "no input".into(),
    }
}

/// What the two phases of a run share: the settings, the pool, and the first failure of any
/// of their threads.
struct Phases<'r> {
    config: &'r Config,
    pool: &'r rayon::ThreadPool,
    progress: &'r dyn Progress,
    failure: Failure,
}

/// What the read phase's workers share.
struct Reading<'s, 'd> {
    inputs: &'s [Opened],
    store: &'s PartitionStore<'d>,
    partitioner: &'s Partitioner,
    products: &'s ProductDict,
    block_size: usize,
    bad_rows: BadRows,
}

/// Rows the read phase saw.
#[derive(Clone, Debug, Default)]
struct RowCounts {
    /// Good and bad.
    read: u64,
    /// Good: aggregated.
    good: u64,
    /// Good and bad, by input.
    by_input: Vec<u64>,
}

impl Reading<'_, '_> {
    /// After the read: the rejects file written (when bad rows may be skipped), and the bad row
    /// that decides the run, if one does; else the number of rows skipped.
    fn finish(self, config: &Config) -> Result<u64> {
        for (input, opened) in self.inputs.iter().enumerate() {
            if let Some(bytes) = opened.mapped().and_then(|(source, _)| source.bytes()) {
                self.bad_rows.number_lines(input as u32, bytes); // mapped chunks are not numbered
            }
        }
        let (rejected, error) = self.bad_rows.finish(&config.rejects);
        if config.max_bad_rows > 0 {
            write_rejects(&config.rejects, &rejected)?;
        }
        match error {
            Some(e) => Err(e),
            None => Ok(rejected.len() as u64),
        }
    }
}

impl Phases<'_> {
    /// Parses and partitions all work of `feeder`: `threads` workers take it from a bounded
    /// channel that this thread and the feeder's decoder threads fill.
    fn read<'s>(&self, reading: &Reading<'s, '_>, feeder: &Feeder<'_, 's>) -> Result<RowCounts> {
        let rows = Mutex::new(RowCounts {
            by_input: vec![0; reading.inputs.len()],
            ..RowCounts::default()
        });
        let (sender, receiver) = crossbeam_channel::bounded::<Work<'s>>(self.config.threads * 2);
        self.pool.in_place_scope(|scope| {
            for _ in 0..self.config.threads {
                let (receiver, rows) = (receiver.clone(), &rows);
                scope.spawn(move |_| {
                    let counts = self.read_work(reading, receiver);
                    let mut rows = rows.lock().expect("no panics while locked");
                    rows.read += counts.read;
                    rows.good += counts.good;
                    for (total, n) in rows.by_input.iter_mut().zip(counts.by_input) {
                        *total += n;
                    }
                });
            }
            drop(receiver);
            feeder.feed(&sender);
            drop(sender);
        });
        self.failure.check()?;
        Ok(rows.into_inner().expect("no panics while locked"))
    }

    /// One worker of the read phase: parses the work it receives into its partition buffers.
    fn read_work<'s>(
        &self,
        reading: &Reading<'s, '_>,
        work: crossbeam_channel::Receiver<Work<'s>>,
    ) -> RowCounts {
        let bad_rows = &reading.bad_rows;
        let writer = PartitionWriter::new(
            reading.store,
            reading.partitioner.clone(),
            reading.block_size,
            reading.products,
        );
        let mut worker = Worker::new(writer, bad_rows, self.config.parse_only);
        // The parser of the input last parsed (chunks of one input mostly come in a row).
        let mut parser: Option<(u32, ChunkParser<'s>)> = None;
        let mut by_input = vec![0; reading.inputs.len()];
        for work in work.iter() {
            if self.failure.happened() {
                continue;
            }
            match work {
                Work::Text { input, chunk } => {
                    if position(input, chunk.offset) > bad_rows.cutoff() {
                        continue;
                    }
                    let opened = &reading.inputs[input as usize];
                    let parser = match &mut parser {
                        Some((of, parser)) if *of == input => parser,
                        slot => {
                            let layout = opened.layout().expect("a header before its chunks");
                            let parser = ChunkParser::new(opened.path(), layout).of_input(input);
                            &mut slot.insert((input, parser)).1
                        }
                    };
                    worker.input = input;
                    by_input[input as usize] += parser.parse(&chunk, &mut worker);
                    self.progress.advance(chunk.data.len() as u64);
                    crate::faults::point("reading");
                    if let (Cow::Borrowed(data), Some((source, _))) = (&chunk.data, opened.mapped())
                    {
                        let start = chunk.offset as usize;
                        source.release(start..start + data.len());
                    }
                }
                Work::RowGroup { input, group } => {
                    worker.input = input;
                    match self.read_group(
                        &reading.inputs[input as usize],
                        input,
                        group,
                        &mut worker,
                    ) {
                        Ok(rows) => by_input[input as usize] += rows,
                        Err(e) => self.failure.set(e),
                    }
                }
            }
            if let Some(e) = worker.error.take() {
                self.failure.set(e);
            }
        }
        let good = worker.good;
        if let Err(e) = worker.writer.finish() {
            self.failure.set(e);
        }
        RowCounts {
            read: by_input.iter().sum(),
            good,
            by_input,
        }
    }

    /// Decodes and parses row group `group` of the Parquet file that is input `input`.
    fn read_group(
        &self,
        opened: &Opened,
        input: u32,
        group: usize,
        worker: &mut Worker<'_, '_>,
    ) -> Result<u64> {
        let Opened::Parquet { source, file } = opened else {
            unreachable!("row groups are of Parquet files");
        };
        let path = source.path();
        if position(input, file.first_row(group)) > worker.cutoff() {
            return Ok(0);
        }
        let mut read = 0;
        file.read_group(path, group, |batch, first_row| {
            read += parse_batch(batch, &file.columns, first_row, (path, input), worker)?;
            crate::faults::point("reading");
            Ok(())
        })?;
        self.progress.advance(file.group_bytes(group));
        Ok(read)
    }

    /// Reduces every partition of `store`, handing each run to `on_run`; returns the number of
    /// customers. Partitions are taken in order, one at a time, by each thread, as the memory
    /// they need to be reduced is free.
    fn reduce(
        &self,
        store: PartitionStore<'_>,
        spill: &SpillDir,
        products: &Catalogue,
        ordered: bool,
        on_run: &(impl Fn(Run, Option<usize>) -> Result<()> + Sync),
    ) -> Result<u64> {
        let (config, failure) = (self.config, &self.failure);
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
                "the largest partition needs about {} MB to be reduced; two do not fit in half \
                 of --memory-limit ({} MB), so reducers take turns (a larger limit reduces them \
                 side by side)",
                most >> 20,
                budget.limit >> 20
            );
        }
        let customers = Mutex::new(0u64);
        self.pool.in_place_scope(|scope| {
            for _ in 0..config.threads {
                let (receiver, budget, customers) = (receiver.clone(), &budget, &customers);
                scope.spawn(move |_| {
                    let mut scratch = Scratch::default();
                    for (place, part, need) in receiver.iter() {
                        if failure.happened() {
                            break;
                        }
                        crate::faults::point("reducing");
                        self.progress.advance(1);
                        let _held = budget.take(need);
                        if failure.happened() {
                            break;
                        }
                        let reduced = part.into_blocks(spill).and_then(|blocks| {
                            let run = reduce_partition_with(
                                &blocks,
                                products,
                                &mut scratch,
                                config.emit,
                            )?;
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
        Ok(customers.into_inner().expect("no panics while locked"))
    }
}

/// The run's rayon pool of `threads` workers (the aggregation and the CSV sink's merge share it).
pub fn thread_pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("custagg-{i}"))
        .build()
        .map_err(|e| Error::Usage(format!("cannot start {threads} threads: {e}")))
}
