//! Bad input on purpose: every class of bad row, placed in the first, a middle and the last row
//! (the last without a final newline), must end the run with exit 3 and one message naming the
//! right physical line and column, leave the PostgreSQL target untouched, and — with
//! `--max-bad-rows` — be the one row in the rejects file, with rows read = aggregated + rejected.

use std::path::Path;

use crate::pg::{load, server};
use crate::util::{Dir, run};

const HEADER: &str = "transactionId|custId|transactionDate|productSold|unitsSold";

/// One class of bad row.
struct Class {
    name: &'static str,
    row: Vec<u8>,
    column: &'static str,
    reason: &'static str,
    /// Cannot be skipped with --max-bad-rows (the quoting after it is ambiguous).
    fatal: bool,
}

fn class(
    name: &'static str,
    row: impl Into<Vec<u8>>,
    column: &'static str,
    reason: &'static str,
) -> Class {
    Class {
        name,
        row: row.into(),
        column,
        reason,
        fatal: false,
    }
}

fn classes() -> Vec<Class> {
    let long_field = format!("1|{}|2011-01-01|P|1", "x".repeat(256));
    let huge_line = "z".repeat(5_000_000);
    let huge_quoted = format!("1|\"{}\"|2011-01-01|P|1", "q".repeat(1_100_000));
    let mut all = vec![
        class(
            "no such day",
            "9|c|2011-02-30|P|1",
            "transactionDate",
            "is not a day of the calendar",
        ),
        class(
            "slashes in the date",
            "9|c|2011/02/03|P|1",
            "transactionDate",
            "is not a date of the form",
        ),
        class(
            "unpadded date",
            "9|c|2011-2-3|P|1",
            "transactionDate",
            "is not a date of the form",
        ),
        class(
            "date with a time",
            "9|c|2011-02-03T10:00|P|1",
            "transactionDate",
            "is not a date of the form",
        ),
        class(
            "empty date",
            "9|c||P|1",
            "transactionDate",
            "is not a date of the form",
        ),
        class(
            "units as text",
            "9|c|2011-01-01|P|abc",
            "unitsSold",
            "is not a whole number",
        ),
        class(
            "decimal units",
            "9|c|2011-01-01|P|1.5",
            "unitsSold",
            "is not a whole number",
        ),
        class("empty units", "9|c|2011-01-01|P|", "unitsSold", "is empty"),
        class(
            "units beyond i32",
            "9|c|2011-01-01|P|2147483648",
            "unitsSold",
            "does not fit a 32-bit integer",
        ),
        class(
            "units with a space",
            "9|c|2011-01-01|P| 7",
            "unitsSold",
            "is not a whole number",
        ),
        class(
            "too few fields",
            "9|c|2011-01-01|P",
            "record",
            "has 4 fields, the header has 5",
        ),
        class(
            "too many fields",
            "9|c|2011-01-01|P|1|x",
            "record",
            "has 6 fields, the header has 5",
        ),
        class("empty customer", "9||2011-01-01|P|1", "custId", "is empty"),
        class(
            "empty product",
            "9|c|2011-01-01||1",
            "productSold",
            "is empty",
        ),
        class("over-long field", long_field, "custId", "is 256 bytes long"),
        class(
            "NUL in a field",
            "9|c\0d|2011-01-01|P|1",
            "custId",
            "holds a NUL byte",
        ),
        class(
            "invalid UTF-8",
            b"9|c|2011-01-01|P\xff|1".to_vec(),
            "productSold",
            "is not valid UTF-8",
        ),
        class(
            "text after a closing quote",
            "9|\"c\"d|2011-01-01|P|1",
            "record",
            "text after the closing quote",
        ),
        class(
            "a line far longer than a record",
            huge_line,
            "record",
            "has 1 field, the header has 5",
        ),
        class(
            "a quoted record over 1 MiB",
            huge_quoted,
            "record",
            "longer than 1 MiB",
        ),
        class(
            "a carriage return inside a line",
            "9|c\r|2011-01-01|P|1",
            "record",
            "a carriage return in the middle of a line",
        ),
    ];
    for (name, row, reason) in [
        (
            "an unterminated quote",
            "9|\"c|2011-01-01|P|1",
            "a quoted field is never closed",
        ),
        (
            "a quote inside an unquoted field",
            "9|c\"d|2011-01-01|P|1",
            "a quote inside an unquoted field",
        ),
    ] {
        all.push(Class {
            fatal: true,
            ..class(name, row, "record", reason)
        });
    }
    all
}

/// A file of ten good rows with `bad` as row `at` (0-based); the file ends without a newline
/// when the bad row is last. Returns the file and the bad row's line.
fn file_with(bad: &[u8], at: usize) -> (Vec<u8>, u64) {
    let mut text = format!("{HEADER}\n").into_bytes();
    let rows = 11;
    for i in 0..rows {
        if i == at {
            text.extend_from_slice(bad);
        } else {
            text.extend_from_slice(format!("{i}|c{i}|2011-01-0{}|P|{i}", 1 + i % 9).as_bytes());
        }
        if i + 1 < rows {
            text.push(b'\n');
        }
    }
    (text, 2 + at as u64)
}

fn fingerprint(database: &str) -> (i64, String) {
    let row = server()
        .client(database)
        .query_one(
            "SELECT count(*), md5(string_agg(customer_id || favourite_product || longest_streak, ',' \
             ORDER BY customer_id)) FROM customers",
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

#[test]
fn every_class_of_bad_row_in_every_position() {
    let dir = Dir::new();
    let db = server().database("badrows");
    let good = dir.write("good.csv", file_with(b"0|keep|2011-01-01|P|1", 0).0);
    let load = |source: &Path, extra: &[&str]| load(source, &db, "customers", extra);
    assert_eq!(load(&good, &[]).code, 0);
    let before = fingerprint(&db);

    let mut cases = 0;
    for class in classes() {
        for (position, at) in [("first", 0), ("middle", 5), ("last", 10)] {
            let what = format!("{} in the {position} row", class.name);
            let (text, line) = file_with(&class.row, at);
            let source = dir.write("bad.csv", &text);
            let expected = format!("{}:{line}: {}: ", source.display(), class.column);

            // Default: the run stops at the bad row, exit 3, one line, target untouched.
            let r = load(&source, &[]);
            assert_eq!(r.code, 3, "{what}: {}", r.stderr);
            assert!(
                r.stderr.starts_with(&expected),
                "{what}: {:?} is not {expected:?}…",
                r.stderr
            );
            assert!(r.stderr.contains(class.reason), "{what}: {:?}", r.stderr);
            assert_eq!(r.stderr.lines().count(), 1, "{what}: {:?}", r.stderr);
            assert!(!r.stderr.contains("panicked"), "{what}");
            assert_eq!(fingerprint(&db), before, "{what}: the target changed");

            // With --max-bad-rows: the row is skipped into the rejects file, or the run stops if
            // it cannot be skipped.
            let out = dir.path("out.csv");
            let rejects = dir.path("rejects.csv");
            let report = dir.path("report.json");
            let r = run(&[
                "--source",
                source.to_str().unwrap(),
                "--output",
                out.to_str().unwrap(),
                "--max-bad-rows",
                "5",
                "--rejects",
                rejects.to_str().unwrap(),
                "--report",
                report.to_str().unwrap(),
            ]);
            let rejected = std::fs::read(&rejects).unwrap();
            let rejected: Vec<&[u8]> = rejected
                .split(|&b| b == b'\n')
                .filter(|l| !l.is_empty())
                .collect();
            if class.fatal {
                assert_eq!(r.code, 3, "{what}: {}", r.stderr);
                assert!(
                    r.stderr.contains("cannot be skipped"),
                    "{what}: {}",
                    r.stderr
                );
                assert_eq!(rejected.len(), 1, "{what}: only the header");
            } else {
                assert_eq!(r.code, 0, "{what}: {}", r.stderr);
                assert_eq!(rejected.len(), 2, "{what}: the header and one row");
                let prefix = format!("{line},{},", class.column);
                assert!(
                    rejected[1].starts_with(prefix.as_bytes()),
                    "{what}: {:?}",
                    String::from_utf8_lossy(rejected[1])
                );
                let json: serde_json::Value =
                    serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
                let (read, aggregated, skipped) = (
                    json["rows_read"].as_u64().unwrap(),
                    json["rows_aggregated"].as_u64().unwrap(),
                    json["rows_rejected"].as_u64().unwrap(),
                );
                assert_eq!((aggregated, skipped), (10, 1), "{what}");
                assert_eq!(read, aggregated + skipped, "{what}");
            }
            std::fs::remove_file(&rejects).unwrap();
            cases += 1;
        }
    }
    assert_eq!(cases, 3 * classes().len());
    assert!(classes().len() >= 20);
}

#[test]
fn whole_file_problems_leave_the_target_untouched() {
    let dir = Dir::new();
    let db = server().database("badfiles");
    let good = dir.write("good.csv", file_with(b"0|keep|2011-01-01|P|1", 0).0);
    assert_eq!(load(&good, &db, "customers", &[]).code, 0);
    let before = fingerprint(&db);
    for (what, text, needle) in [
        ("an empty file", &b""[..], "the file is empty"),
        (
            "a missing column",
            b"custId|transactionDate|productSold\nc|2011-01-01|P\n",
            "no column `unitsSold`",
        ),
        (
            "the wrong delimiter",
            b"transactionId,custId,transactionDate,productSold,unitsSold\n1,c,2011-01-01,P,1\n",
            "try --delimiter ','",
        ),
    ] {
        let source = dir.write("bad.csv", text);
        let r = load(&source, &db, "customers", &[]);
        assert_eq!(r.code, 3, "{what}: {}", r.stderr);
        assert!(r.stderr.contains(needle), "{what}: {}", r.stderr);
        assert_eq!(r.stderr.lines().count(), 1, "{what}: {}", r.stderr);
        assert_eq!(fingerprint(&db), before, "{what}: the target changed");
    }
}
