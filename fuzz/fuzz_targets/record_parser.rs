//! Fuzzes the record parser: any bytes after a fixed header, as one chunk and as many small
//! chunks cut by quote parity. Must not panic; every record is either good or bad, and the
//! cutting must not change which records are good (one chunk takes the parser's fast paths —
//! whole-word loads, the 128-byte window — where 7-byte chunks mostly take the general ones) when
//! the quoting is well formed.
#![no_main]

use std::borrow::Cow;
use std::path::Path;

use custagg::error::BadRow;
use custagg::parse::{ChunkParser, Delimiter, Record, RowSink, read_header};
use custagg::key::prefix_key;
use custagg::source::{Chunk, plan_chunks};
use libfuzzer_sys::fuzz_target;

#[derive(Default)]
struct Count {
    good: u64,
    records: Vec<(Vec<u8>, Vec<u8>, i32, i32)>,
    bad: u64,
    fatal: bool,
}

impl RowSink for Count {
    fn record(&mut self, r: Record<'_>) {
        assert!(!r.customer.is_empty() && r.customer.len() <= 255);
        assert!(std::str::from_utf8(r.product).is_ok());
        assert_eq!(r.customer_key, prefix_key(r.customer));
        assert_eq!(r.product_key, prefix_key(r.product));
        self.records
            .push((r.customer.to_vec(), r.product.to_vec(), r.day, r.units));
        self.good += 1;
    }
    fn bad_row(&mut self, row: BadRow) {
        assert!(row.line >= 2);
        self.fatal |= row.fatal;
        self.bad += 1;
    }
}

fuzz_target!(|body: &[u8]| {
    let mut data = b"transactionId|custId|transactionDate|productSold|unitsSold\n".to_vec();
    data.extend_from_slice(body);
    let path = Path::new("fuzz.csv");
    let header = read_header(path, &data, Delimiter::default()).expect("a fixed header");
    let mut parser = ChunkParser::new(path, &header.layout);

    let mut whole = Count::default();
    let chunk = Chunk {
        data: Cow::Borrowed(&data[header.data_start..]),
        offset: header.data_start as u64,
        first_line: header.data_line,
        is_last: true,
    };
    let rows = parser.parse(&chunk, &mut whole);
    assert_eq!(rows, whole.good + whole.bad);

    let mut cut = Count::default();
    for spec in plan_chunks(&data, header.data_start, header.data_line, 7) {
        let chunk = Chunk {
            offset: spec.range.start as u64,
            first_line: spec.first_line,
            is_last: spec.range.end == data.len(),
            data: Cow::Borrowed(&data[spec.range]),
        };
        parser.parse(&chunk, &mut cut);
    }
    if !whole.fatal && !cut.fatal {
        assert_eq!((whole.good, whole.bad), (cut.good, cut.bad));
        assert_eq!(whole.records, cut.records);
    }
});
