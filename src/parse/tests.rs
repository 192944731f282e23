//! The parser's tests: the fast paths against csv-core, every kind of bad row, and chunks cut
//! anywhere.
use super::check::*;
use super::dates::DateCache;
use super::quoted::*;
use super::scan::*;
use super::*;
use crate::date::parse_date;
use crate::error::BadRow;
use crate::generate::draws;
use crate::source::Chunk;
use std::borrow::Cow;
use std::path::Path;

const HEADER: &[u8] = b"transactionId|custId|transactionDate|productSold|unitsSold\n";

#[derive(Default)]
struct Collect {
    good: Vec<(String, String, i32, i32)>,
    bad: Vec<BadRow>,
}

impl RowSink for Collect {
    fn record(&mut self, r: &Record<'_>) {
        let s = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
        self.good
            .push((s(r.customer), s(r.product), r.day, r.units));
    }
    fn bad_row(&mut self, row: BadRow) {
        self.bad.push(row);
    }
}

fn parse_all(text: &[u8]) -> Collect {
    let path = Path::new("t.csv");
    let header = read_header(path, text, Delimiter::default()).unwrap();
    let chunk = Chunk {
        data: Cow::Borrowed(&text[header.data_start..]),
        offset: header.data_start as u64,
        first_line: header.data_line,
        is_last: true,
    };
    let mut sink = Collect::default();
    let rows = ChunkParser::new(path, &header.layout).parse(&chunk, &mut sink);
    assert_eq!(rows as usize, sink.good.len() + sink.bad.len());
    sink
}

fn with_header(rows: &str) -> Vec<u8> {
    let mut v = HEADER.to_vec();
    v.extend_from_slice(rows.as_bytes());
    v
}

#[test]
fn samples_take_the_customer_of_the_first_whole_good_line() {
    let text = b"custId|productSold|transactionDate|unitsSold\n";
    let layout = read_header(Path::new("t"), text, Delimiter::default())
        .unwrap()
        .layout;
    let sample = |bytes: &str, at_start| {
        sample_customer(bytes.as_bytes(), at_start, &layout).map(|c| c.to_vec())
    };
    assert_eq!(sample("c1|p|2011-01-01|1\n", true).unwrap(), b"c1");
    assert_eq!(
        sample("1|c1|p|2011-01-01|1\r\nc2|p|x|1\n", false).unwrap(),
        b"c2"
    );
    assert_eq!(
        sample("x\n\"c|3\"|p|2011-01-01|1\n", false).unwrap(),
        b"c|3"
    );
    assert_eq!(
        sample("c1|p|2011-01-01|1", true),
        None,
        "no line end within the bytes"
    );
    assert_eq!(sample("c1|p|2011-01-01\n", true), None, "three fields");
    assert_eq!(
        sample("\"c1|p|2011-01-01|1\n", true),
        None,
        "a quote left open"
    );
    assert_eq!(sample("|p|2011-01-01|1\n", true), None, "no customer");
    assert_eq!(sample("\"c\0\"|p|d|1\n", true), None, "a NUL byte");
}

#[test]
fn digits_of_a_word_are_read_like_the_full_check() {
    let cases: Vec<Vec<u8>> = (0..=99_999_999u64)
        .step_by(9_973)
        .chain([0, 7, 10, 99, 100, 12_345_678, 99_999_999])
        .map(|n| n.to_string().into_bytes())
        .chain(
            [
                "007", "00000000", "1a", "a1", "12:4", "9/", "-1", "+1", " 1", "1 ", "\u{ff}",
            ]
            .map(|s| s.as_bytes().to_vec()),
        )
        .collect();
    for text in cases {
        let mut bytes = [0u8; 8];
        bytes[..text.len()].copy_from_slice(&text);
        let word = u64::from_le_bytes(bytes);
        let expected = text
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| check_units(&text).unwrap());
        assert_eq!(
            digits_value(word, text.len()),
            expected,
            "{:?}",
            String::from_utf8_lossy(&text)
        );
    }
}

#[test]
fn class_masks_agree_with_a_plain_loop() {
    let mut next = draws(0x9e37_79b9_7f4a_7c15);
    for _ in 0..2000 {
        let mut window = [0u8; 64];
        for b in &mut window {
            *b = *[b'|', b'\n', b'"', b'\r', b'a', 0xff, b',']
                .get(next(10) as usize)
                .unwrap_or(&b'x');
        }
        let mut expected = [0u64; 4];
        for (i, &b) in window.iter().enumerate() {
            for (mask, class) in expected.iter_mut().zip([b'|', b'\n', b'"', b'\r']) {
                *mask |= u64::from(b == class) << i;
            }
        }
        assert_eq!(class_masks64(&window, b'|'), expected);
        #[cfg(target_arch = "x86_64")]
        {
            // SAFETY: SSE2 is part of the x86_64 baseline.
            assert_eq!(unsafe { class_masks64_sse2(&window, b'|') }, expected);
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: the CPU has AVX2.
                assert_eq!(unsafe { class_masks64_avx2(&window, b'|') }, expected);
            }
        }
    }
}

#[test]
fn window_splits_plain_records_like_split_plain() {
    // Records of `count` fields of 0 to 40 bytes (so from a few bytes to 300, crossing the
    // window's 64- and 128-byte borders at every offset), with now and then a quote, a CR, a
    // CRLF line end or one delimiter too many or too few.
    let mut next = draws(0x2545_f491_4f6c_dd1d);
    let mut fast = 0;
    for count in 1..=8 {
        let mut data = Vec::new();
        while data.len() < 100_000 {
            for field in 0..count {
                if field > 0 {
                    data.push(b'|');
                }
                for _ in 0..next(41) {
                    data.push(match next(2000) {
                        0 => b'"',
                        1 => b'\r',
                        2 => b'|',
                        _ => b'a' + next(26) as u8,
                    });
                }
            }
            data.extend_from_slice(if next(4) == 0 { b"\r\n" } else { b"\n" });
        }
        let mut window = Window::new(&data, b'|');
        let mut specials = Specials::new(&data, b'|');
        let mut spans = vec![Span::default(); count];
        let mut expected = vec![Span::default(); count];
        walk_records(&data, |pos| {
            let plain = split_plain(&mut specials, pos, &mut expected);
            if let Some(split) = window.split(pos, &mut spans) {
                if plain.is_none() {
                    // Quotes that happened to enclose whole fields: as csv-core reads them.
                    assert_csv_core_agrees(&data, pos, split, &spans);
                } else {
                    assert_eq!(Some(split), plain, "{count} fields, record at {pos}");
                    assert_eq!(spans, expected, "{count} fields, record at {pos}");
                }
                fast += 1;
            }
            match plain {
                Some(split) => split.next,
                None => memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i + 1),
            }
        });
    }
    assert!(fast > 5_000, "the window took only {fast} records");
}

/// Calls `visit` with the start of each record of `data` (blank lines skipped, as `parse`
/// does); it returns where the next one may start.
fn walk_records(data: &[u8], mut visit: impl FnMut(usize) -> usize) {
    let mut pos = 0;
    loop {
        while pos < data.len() && matches!(data[pos], b'\n' | b'\r') {
            pos += 1;
        }
        if pos == data.len() {
            return;
        }
        pos = visit(pos);
    }
}

/// Asserts that the record at `data[pos..]`, split by the window into `spans` with `split`
/// (next position, field count), is what csv-core reads there, with well-formed quotes.
fn assert_csv_core_agrees(data: &[u8], pos: usize, split: Split, spans: &[Span]) {
    let mut reader = csv_reader(b'|');
    reader.read_record(b"\n", &mut [], &mut []); // past the BOM check, as `parse` does
    let mut fields = Fields::new();
    let consumed = fields.read(&mut reader, &data[pos..]).unwrap();
    let raw = trim_line_end(&data[pos..pos + consumed]);
    assert_eq!(check_quoting(raw, b'|', false), None, "{raw:?}");
    // csv-core stops after the CR of a CRLF; the LF is a blank line to it.
    let end = pos + consumed;
    let end = end + usize::from(data[end - 1] == b'\r' && data.get(end) == Some(&b'\n'));
    assert_eq!((split.next, split.fields), (end, fields.count), "{raw:?}");
    let ours: Vec<&[u8]> = spans.iter().map(|s| &data[s.start..s.end]).collect();
    let theirs: Vec<&[u8]> = (0..fields.count).map(|i| fields.get(i)).collect();
    assert_eq!(ours, theirs, "{raw:?}");
}

#[test]
fn window_reads_fields_quoted_whole_like_csv_core() {
    // Records of 1 to 8 fields, each plain, quoted whole, or quoted around a delimiter, a
    // doubled quote, a line break or a CR, or quoted badly; LF or CRLF line ends. Every
    // record the window takes must be read as csv-core reads it, with well-formed quotes.
    let mut next = draws(0x9e37_79b9_7f4a_7c15);
    let (mut fast, mut quoted_fast) = (0, 0);
    for count in 1..=8 {
        let mut data = Vec::new();
        while data.len() < 100_000 {
            for field in 0..count {
                if field > 0 {
                    data.push(b'|');
                }
                let text: Vec<u8> = (0..next(12)).map(|_| b'a' + next(26) as u8).collect();
                let (head, tail) = text.split_at(text.len() / 2);
                let field: Vec<u8> = match next(12) {
                    0..=4 => text.clone(),
                    5..=8 => [&b"\""[..], &text, b"\""].concat(),
                    9 => [
                        &b"\""[..],
                        head,
                        [&b"|"[..], b"\"\"", b"\n", b"\r"][next(4) as usize],
                        tail,
                        b"\"",
                    ]
                    .concat(),
                    10 => [&b"\""[..], &text].concat(),
                    _ => [&b"\""[..], head, b"\"", tail].concat(),
                };
                data.extend_from_slice(&field);
            }
            data.extend_from_slice(if next(4) == 0 { b"\r\n" } else { b"\n" });
        }
        let mut window = Window::new(&data, b'|');
        let mut spans = vec![Span::default(); count];
        walk_records(&data, |pos| match window.split(pos, &mut spans) {
            Some(split) => {
                assert_csv_core_agrees(&data, pos, split, &spans);
                fast += 1;
                quoted_fast += usize::from(data[pos..split.next].contains(&b'"'));
                split.next
            }
            None => {
                // Past this record as csv-core reads it (a bad one to its line end).
                let mut reader = csv_reader(b'|');
                reader.read_record(b"\n", &mut [], &mut []);
                let consumed = Fields::new().read(&mut reader, &data[pos..]);
                let line = memchr::memchr(b'\n', &data[pos..]).map_or(data.len(), |i| pos + i + 1);
                consumed.map_or(line, |c| pos + c)
            }
        });
    }
    assert!(
        fast > 5_000 && quoted_fast > 2_000,
        "the window took {fast} records, {quoted_fast} quoted"
    );
}

#[test]
fn header_by_name_any_order_any_case_extra_columns() {
    let text = b"\xef\xbb\xbf\r\nUNITSSOLD|extra|productsold|CustId|TransactionDate\r\n5|x|P1|c1|2011-01-02\r\n";
    let c = parse_all(text);
    assert_eq!(c.good, vec![("c1".into(), "P1".into(), 14_976, 5)]);
}

#[test]
fn missing_and_duplicate_columns() {
    let e = read_header(
        Path::new("f"),
        b"custId|productSold|unitsSold\n",
        Delimiter::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("no column `transactionDate`"), "{e}");
    let e = read_header(
        Path::new("f"),
        b"custId|CUSTID|transactionDate|productSold|unitsSold\n",
        Delimiter::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("appears twice"), "{e}");
}

#[test]
fn wrong_delimiter_is_named() {
    let e = read_header(
        Path::new("f"),
        b"transactionId,custId,transactionDate,productSold,unitsSold\n1,2,3,4,5\n",
        Delimiter::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("try --delimiter ','"), "{e}");
    assert_eq!(e.exit_code(), 3);
}

#[test]
fn empty_file_and_blank_lines_only() {
    for text in [&b""[..], b"\n\n\r\n", b"\xef\xbb\xbf"] {
        let e = read_header(Path::new("f"), text, Delimiter::default()).unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }
}

#[test]
fn crlf_blank_lines_and_no_final_newline() {
    let c = parse_all(&with_header(
        "1|a|2011-01-01|P|1\r\n\r\n\n2|b|2011-01-02|Q|-3",
    ));
    assert_eq!(c.good.len(), 2);
    assert_eq!(c.good[1], ("b".into(), "Q".into(), 14_976, -3));
    assert!(c.bad.is_empty());
}

#[test]
fn quoted_fields_with_delimiter_quote_and_line_breaks() {
    let c = parse_all(&with_header(
        "1|\"a|b\"|2011-01-01|\"P\"\"1\"|1\n2|\"multi\r\nline\"|2011-01-01|P|\"7\"\n",
    ));
    assert!(c.bad.is_empty(), "{:?}", c.bad);
    assert_eq!(c.good[0].0, "a|b");
    assert_eq!(c.good[0].1, "P\"1");
    assert_eq!(c.good[1].0, "multi\r\nline");
    assert_eq!(c.good[1].3, 7);
}

#[test]
fn bad_rows_have_physical_line_column_and_reason() {
    let c = parse_all(&with_header(
        "1|\"x\ny\"|2011-01-01|P|1\n\n2|c|2011-02-30|P|1\n3|c|2011-01-01|P|1.5\n4|c|2011-01-01|P\n",
    ));
    let got: Vec<(u64, &str)> = c.bad.iter().map(|b| (b.line, b.column.as_str())).collect();
    assert_eq!(
        got,
        vec![(5, "transactionDate"), (6, "unitsSold"), (7, "record")]
    );
    assert!(c.bad[0].reason.contains("`2011-02-30` is not a day"));
    assert_eq!(c.bad[1].raw, b"3|c|2011-01-01|P|1.5");
    assert_eq!(c.good.len(), 1);
}

#[test]
fn text_fields_rules() {
    let long = "x".repeat(256);
    let ok255 = "y".repeat(255);
    let c = parse_all(&with_header(&format!(
        "1||2011-01-01|P|1\n2|{long}|2011-01-01|P|1\n3|{ok255}|2011-01-01|P|1\n4|a\0b|2011-01-01|P|1\n5|c|2011-01-01||1\n"
    )));
    assert_eq!(c.good.len(), 1);
    let reasons: Vec<&str> = c.bad.iter().map(|b| b.reason.as_str()).collect();
    assert!(reasons[0].contains("empty"));
    assert!(reasons[1].contains("256 bytes"));
    assert!(reasons[2].contains("NUL"));
    assert_eq!(c.bad[3].column, "productSold");
    let mut invalid = with_header("1|a");
    invalid.extend_from_slice(b"\xff|2011-01-01|P|1\n");
    assert!(parse_all(&invalid).bad[0].reason.contains("UTF-8"));
}

#[test]
fn units_rules() {
    assert_eq!(check_units(b"0"), Ok(0));
    assert_eq!(check_units(b"-17"), Ok(-17));
    assert_eq!(check_units(b"+17"), Ok(17));
    assert_eq!(check_units(b"2147483647"), Ok(i32::MAX));
    assert_eq!(check_units(b"-2147483648"), Ok(i32::MIN));
    for bad in [
        &b"2147483648"[..],
        b"-2147483649",
        b"99999999999999999999999",
    ] {
        assert!(check_units(bad).unwrap_err().contains("32-bit"));
    }
    for bad in [
        &b"1.5"[..],
        b"abc",
        b"-",
        b"+",
        b" 1",
        b"1 ",
        b"1e3",
        b"--1",
    ] {
        assert!(
            check_units(bad).unwrap_err().contains("whole number"),
            "{bad:?}"
        );
    }
    assert_eq!(check_units(b"").unwrap_err(), "is empty");
}

#[test]
fn quoting_problems() {
    let c = parse_all(&with_header("1|a\"b|2011-01-01|P|1\n"));
    assert!(c.bad[0].fatal && c.bad[0].reason.contains("unquoted field"));
    let c = parse_all(&with_header("1|\"ab\"c|2011-01-01|P|1\n"));
    assert!(!c.bad[0].fatal && c.bad[0].reason.contains("after the closing quote"));
    let c = parse_all(&with_header(
        "1|a|2011-01-01|P|1\n2|\"never closed|2011-01-01|P|1\n3|b|x|y|z\n",
    ));
    assert_eq!(c.good.len(), 1);
    assert_eq!(c.bad.len(), 1);
    assert!(c.bad[0].fatal && c.bad[0].reason.contains("never closed"));
    assert_eq!(c.bad[0].line, 3);
}

#[test]
fn fuzz_regression_bare_cr_after_a_stray_quote_is_fatal() {
    // Found by `cargo fuzz run record_parser`: the bare CR hid the stray quote, and the rest
    // of the input was read with the wrong quote parity.
    let c = parse_all(&with_header("0\"|1\r2\"\n4"));
    assert!(c.bad[0].fatal, "{:?}", c.bad);
    let c = parse_all(&with_header("1|a\rb|2011-01-01|P|1\n2|c|2011-01-01|P|1\n"));
    assert_eq!(c.bad.len(), 1);
    assert!(!c.bad[0].fatal && c.bad[0].reason.contains("carriage return"));
    assert_eq!(c.good.len(), 1);
}

#[test]
fn a_bom_after_the_start_of_the_file_is_data() {
    let c = parse_all(&with_header("1|\u{feff}a|2011-01-01|P|1\n"));
    assert_eq!(c.good[0].0, "\u{feff}a");
    // A record whose first bytes look like a BOM keeps them: only the file's start is stripped.
    let text = "\u{feff}custId|transactionDate|productSold|unitsSold\n\u{feff}b|2011-01-01|P|1\n";
    let c = parse_all(text.as_bytes());
    assert_eq!(c.good[0].0, "\u{feff}b");
}

#[test]
fn overlong_record_is_a_bad_row_and_parsing_goes_on() {
    let huge = "z".repeat(MAX_RECORD_BYTES + 10);
    // Quoted, it goes through csv-core, which stops keeping fields past the limit.
    let c = parse_all(&with_header(&format!(
        "1|\"{huge}\"|2011-01-01|P|1\n2|a|2011-01-01|P|1\n"
    )));
    assert_eq!(c.bad.len(), 1);
    assert!(
        c.bad[0].reason.contains("longer than"),
        "{}",
        c.bad[0].reason
    );
    assert_eq!(c.good.len(), 1);
    // Plain, the field itself is named.
    let c = parse_all(&with_header(&format!(
        "1|{huge}|2011-01-01|P|1\n2|a|2011-01-01|P|1\n"
    )));
    assert_eq!(c.bad.len(), 1);
    assert_eq!(c.bad[0].column, "custId");
    assert!(
        c.bad[0].reason.contains("1048586 bytes long"),
        "{}",
        c.bad[0].reason
    );
    assert_eq!(c.good.len(), 1);
}

#[test]
fn plain_and_csv_paths_agree() {
    for line in [
        &b"1|a|2011-01-01|P|1"[..],
        b"1|a|2011-01-01|P|1\r",
        b"1|a|2011-01-01|P",
        b"1|a|2011-01-01|P|1|",
        b"|||",
        b"1|a|2011-01-01|P|1\rx",
        b"1|\"a\"|2011-01-01|P|1",
    ] {
        let mut spans = vec![Span::default(); 5];
        let plain = split_plain(&mut Specials::new(line, b'|'), 0, &mut spans).map(|split| {
            let fields: Vec<&[u8]> = spans[..split.fields.min(5)]
                .iter()
                .map(|s| &line[s.start..s.end])
                .collect();
            (split.next, split.fields, fields)
        });
        let mut fields = Fields::new();
        let mut reader = csv_reader(b'|');
        let consumed = fields.read(&mut reader, line).unwrap();
        let csv: Vec<&[u8]> = (0..fields.count.min(5)).map(|i| fields.get(i)).collect();
        match plain {
            Some((next, count, plain_fields)) => {
                assert_eq!((next, count), (consumed, fields.count), "{line:?}");
                assert_eq!(plain_fields, csv, "{line:?}");
            }
            None => assert!(line.contains(&b'"') || line.contains(&b'\r'), "{line:?}"),
        }
    }
}

#[test]
fn date_cache_agrees_with_parse_date() {
    use crate::date::format_date;
    let cache = DateCache::default();
    // Every day of 1999-2101 in a scrambled order (to evict slots), then shapes that fail.
    for i in 0..37_600i32 {
        let day = 10_592 + (i * 7_919) % 37_600;
        let text = format_date(day);
        assert_eq!(
            cache.day(&text),
            Ok(day),
            "{}",
            String::from_utf8_lossy(&text)
        );
    }
    for bad in [
        "2011-02-29",
        "2012-02-30",
        "2011-04-31",
        "2011-13-01",
        "2011-00-10",
        "2011-01-00",
        "0000-01-01",
        "2011-01-1",
        "2011-01-001",
        "2011/01/01",
        "2011-01-0a",
        "201a-01-01",
        "",
        "2011-01-01 ",
    ] {
        assert_eq!(
            cache.day(bad.as_bytes()).is_ok(),
            parse_date(bad.as_bytes()).is_ok(),
            "{bad}"
        );
        assert!(cache.day(bad.as_bytes()).is_err(), "{bad}");
    }
    assert_eq!(
        cache.day(b"2012-02-29"),
        parse_date(b"2012-02-29").map_err(|_| String::new())
    );
}

#[test]
fn plain_text_is_ascii_without_nul_of_1_to_255_bytes() {
    for len in 0..300 {
        let text = vec![b'a'; len];
        assert_eq!(is_plain_text(&text), (1..=255).contains(&len), "{len}");
        for at in 0..len.min(20) {
            for bad in [0u8, 0x80, 0xff, 0xc3] {
                let mut t = text.clone();
                t[at] = bad;
                assert!(!is_plain_text(&t), "{len} {at} {bad}");
            }
        }
    }
    assert!(is_plain_text(b"\x01\x7f~ 0023938"));
}

#[test]
fn specials_are_every_delimiter_quote_cr_and_lf_in_order_from_any_start() {
    // Lengths around the 64-byte window, specials at pseudo-random places, bytes above 0x7f.
    let mut next = draws(0x2545_f491_4f6c_dd1d);
    for len in (0..200).chain([255, 256, 257]) {
        let data: Vec<u8> = (0..len)
            .map(|_| match next(16) {
                0 => b'|',
                1 => b'"',
                2 => b'\r',
                3 => b'\n',
                4 => 0x80 | b'|',
                _ => b'a' + next(7) as u8,
            })
            .collect();
        let expected: Vec<usize> = (0..len)
            .filter(|&i| matches!(data[i], b'|' | b'"' | b'\r' | b'\n'))
            .collect();
        for from in [0, 1, 63, 64, 65, 130, len / 2, len] {
            let mut specials = Specials::new(&data, b'|');
            specials.seek(from.min(len));
            let found: Vec<usize> = std::iter::from_fn(|| specials.next()).collect();
            let want: Vec<usize> = expected.iter().copied().filter(|&i| i >= from).collect();
            assert_eq!(found, want, "{len} bytes from {from}");
        }
    }
}

#[test]
fn delimiter_parsing() {
    assert_eq!("|".parse::<Delimiter>().unwrap().as_byte(), b'|');
    assert_eq!("\\t".parse::<Delimiter>().unwrap().as_byte(), b'\t');
    assert!("ab".parse::<Delimiter>().is_err());
    assert!("\"".parse::<Delimiter>().is_err());
    assert!("é".parse::<Delimiter>().is_err());
}
