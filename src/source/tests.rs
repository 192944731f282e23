//! The source's tests: chunks cut at record boundaries wherever the cut falls, streams and maps
//! alike, and pages given back.
use super::boundary::last_boundary;
use super::release::DoneBytes;
use super::*;

#[test]
fn every_page_is_given_back_once_all_its_ranges_are_done() {
    let mut draw = crate::generate::draws(0x2545_f491_4f6c_dd1d);
    let mut next = |n: u64| draw(n) as usize;
    for round in 0..200 {
        // Ranges of a few bytes to a few pages, done in a random order.
        let mut ranges = Vec::new();
        let mut at = 0;
        while at < 40_000 {
            let len = if round % 2 == 0 {
                1 + next(9_000)
            } else {
                1 + next(300)
            };
            ranges.push(at..at + len);
            at += len;
        }
        let len = at;
        let mut order: Vec<usize> = (0..ranges.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, next(i as u64 + 1));
        }
        let mut done = DoneBytes::new(len);
        let mut finished = vec![false; len];
        let mut given_back = vec![false; len.div_ceil(PAGE)];
        for &i in &order {
            let range = ranges[i].clone();
            finished[range.clone()].fill(true);
            // What `Source::release` gives back at once: the whole pages inside (and the
            // file's last page with the last range).
            let end = if range.end == len {
                len.div_ceil(PAGE)
            } else {
                range.end / PAGE
            };
            let first = range.start.div_ceil(PAGE);
            given_back[first..end.max(first)].fill(true);
            for page in done.mark(range) {
                assert_eq!(page % PAGE, 0);
                let bytes = page..(page + PAGE).min(len);
                assert!(
                    finished[bytes].iter().all(|&f| f),
                    "page {page} given back early"
                );
                given_back[page / PAGE] = true;
            }
        }
        assert!(
            given_back.iter().all(|&g| g),
            "round {round}: a page stayed"
        );
        assert!(done.waiting.is_empty() && done.above.is_empty());
    }
}

/// Splits `data` with `plan_chunks` and checks that every cut is at a true record boundary.
fn cuts(data: &[u8], chunk_size: usize) -> Vec<ChunkSpec> {
    let specs = plan_chunks(data, 0, 1, chunk_size);
    let mut expect = 0;
    for spec in &specs {
        assert_eq!(spec.range.start, expect, "chunks are contiguous");
        assert!(!spec.range.is_empty());
        expect = spec.range.end;
        let quotes_before = data[..spec.range.start]
            .iter()
            .filter(|&&b| b == b'"')
            .count();
        assert_eq!(
            quotes_before % 2,
            0,
            "cut at {} is inside quotes",
            spec.range.start
        );
        assert!(spec.range.start == 0 || data[spec.range.start - 1] == b'\n');
        let line = 1 + data[..spec.range.start]
            .iter()
            .filter(|&&b| b == b'\n')
            .count() as u64;
        assert_eq!(spec.first_line, line);
    }
    assert_eq!(expect, data.len(), "chunks cover the input");
    specs
}

#[test]
fn cuts_only_at_line_feeds_outside_quotes() {
    let data = b"a|b\n\"x\ny\"|z\n\"p\"\"\nq\"|r\nlast|row";
    for size in 1..data.len() + 2 {
        cuts(data, size);
    }
}

#[test]
fn quoted_line_break_straddling_every_cut_position() {
    let mut data = Vec::new();
    for i in 0..50 {
        data.extend_from_slice(format!("c{i}|\"multi\nline\r\n\"\"field\"\"\n\"|{i}\n").as_bytes());
    }
    for size in [1, 2, 3, 5, 7, 11, 13, 64, 100, 1000] {
        let specs = cuts(&data, size);
        assert!(size > 100 || specs.len() > 1);
    }
}

#[test]
fn no_final_newline_and_crlf() {
    let data = b"a|1\r\nb|2\r\nc|3";
    let specs = cuts(data, 4);
    assert_eq!(specs.last().unwrap().range.end, data.len());
}

#[test]
fn one_huge_quoted_field_makes_one_chunk() {
    let mut data = b"\"".to_vec();
    data.extend(std::iter::repeat_n(b'\n', 1000));
    data.extend_from_slice(b"\"|x\ny|z\n");
    let specs = cuts(&data, 10);
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[1].first_line, 1002);
}

#[test]
fn last_boundary_respects_quotes() {
    assert_eq!(last_boundary(b"a\nb\"\n\"c"), Some(2));
    assert_eq!(last_boundary(b"a\nb\n"), Some(4));
    assert_eq!(last_boundary(b"\"a\nb"), None);
    assert_eq!(last_boundary(b"abc"), None);
}

#[test]
fn counts() {
    let data: Vec<u8> = (0..10_000).map(|i| [b'"', b'\n', b'x'][i % 3]).collect();
    assert_eq!(count_newlines(&data), 3333);
}
