//! Criterion benchmarks of the pipeline's stages on generated data, in bytes of source per second.
//!
//! Data set: `custagg generate --rows 200000 --customers 20000 --seed 1` (about 9.6 MB), made in a
//! temporary directory at start. Run with `cargo bench --bench stages`.

use std::borrow::Cow;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use custagg::error::BadRow;
use custagg::generate::{GenerateConfig, generate};
use custagg::parse::{ChunkParser, Delimiter, Record, RowSink, read_header};
use custagg::partition::{PartitionStore, PartitionWriter, Partitioner};
use custagg::products::{Catalogue, ProductDict};
use custagg::reduce::reduce_partition;
use custagg::source::{Chunk, plan_chunks};
use custagg::spill::SpillDir;

struct Count(u64);

impl RowSink for Count {
    fn record(&mut self, r: &Record<'_>) {
        self.0 += r.units as u64;
    }
    fn bad_row(&mut self, row: BadRow) {
        panic!("{row}");
    }
}

struct Partitioned<'s, 'd>(PartitionWriter<'s, 'd>);

impl RowSink for Partitioned<'_, '_> {
    fn record(&mut self, r: &Record<'_>) {
        self.0.push(r).unwrap();
    }
    fn bad_row(&mut self, row: BadRow) {
        panic!("{row}");
    }
}

fn chunks(data: &[u8], start: usize, line: u64) -> Vec<Chunk<'_>> {
    plan_chunks(data, start, line, 1 << 20)
        .into_iter()
        .map(|spec| Chunk {
            offset: spec.range.start as u64,
            first_line: spec.first_line,
            is_last: spec.range.end == data.len(),
            data: Cow::Borrowed(&data[spec.range]),
        })
        .collect()
}

/// Partitions a worker writes to, as in a run on the 1 GB set (each worker spreads its groups over
/// all of them).
const PARTITIONS: usize = 256;

/// Partitions the reduce bench takes: about 4 MB of source each, as in a run.
const REDUCE_PARTITIONS: usize = 2;

fn stages(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.csv");
    generate(&GenerateConfig {
        rows: 200_000,
        customers: 20_000,
        products: 48,
        seed: 1,
        out: path.clone(),
        format: Default::default(),
        shape: Default::default(),
    })
    .unwrap();
    let data = std::fs::read(&path).unwrap();
    let header = read_header(Path::new("bench.csv"), &data, Delimiter::default()).unwrap();
    let layout = &header.layout;

    let mut group = c.benchmark_group("stages");
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.sample_size(20);

    group.bench_function("chunk+parse", |b| {
        b.iter(|| {
            let mut parser = ChunkParser::new(&path, layout);
            let mut sink = Count(0);
            for chunk in chunks(&data, header.data_start, header.data_line) {
                parser.parse(&chunk, &mut sink);
            }
            sink.0
        })
    });

    let spill = SpillDir::create(dir.path()).unwrap();
    // The run on a mapped file cuts partitions at quantiles of a sample of customers; here the
    // sample is every 64th record's customer. A stream's run hashes customers instead.
    let sample = {
        struct Sample(Vec<Box<[u8]>>, u64);
        impl RowSink for Sample {
            fn record(&mut self, r: &Record<'_>) {
                self.1 += 1;
                if self.1.is_multiple_of(64) {
                    self.0.push(r.customer.into());
                }
            }
            fn bad_row(&mut self, row: BadRow) {
                panic!("{row}");
            }
        }
        let mut parser = ChunkParser::new(&path, layout);
        let mut sink = Sample(Vec::new(), 0);
        for chunk in chunks(&data, header.data_start, header.data_line) {
            parser.parse(&chunk, &mut sink);
        }
        sink.0
    };
    let ranges = Partitioner::ranges(PARTITIONS, sample.clone());
    let hashes = Partitioner::new(PARTITIONS);
    // Parses and partitions the whole file into the partitions of `store`.
    let partition = |store: &PartitionStore<'_>, products: &ProductDict, by: &Partitioner| {
        let mut parser = ChunkParser::new(&path, layout);
        let writer = PartitionWriter::new(store, by.clone(), 64 << 10, products);
        let mut sink = Partitioned(writer);
        for chunk in chunks(&data, header.data_start, header.data_line) {
            parser.parse(&chunk, &mut sink);
        }
        sink.0.finish().unwrap();
    };
    for (name, by) in [("ranges", &ranges), ("hashes", &hashes)] {
        group.bench_function(format!("chunk+parse+partition ({name})"), |b| {
            b.iter(|| {
                let store = PartitionStore::new(by.count(), usize::MAX, &spill);
                partition(&store, &ProductDict::new(1 << 16), by);
                store.into_partitions().len()
            })
        });
    }

    let by = Partitioner::ranges(REDUCE_PARTITIONS, sample);
    let store = PartitionStore::new(by.count(), usize::MAX, &spill);
    let products = ProductDict::new(1 << 16);
    partition(&store, &products, &by);
    let partitions: Vec<Vec<Vec<u8>>> = store
        .into_partitions()
        .into_iter()
        .map(|p| p.into_blocks(&spill).unwrap())
        .collect();
    let texts = Catalogue::new(products.into_texts());
    group.bench_function("reduce", |b| {
        b.iter(|| {
            partitions
                .iter()
                .map(|blocks| reduce_partition(blocks, &texts).unwrap().rows)
                .sum::<u64>()
        })
    });
    group.finish();
}

criterion_group!(benches, stages);
criterion_main!(benches);
