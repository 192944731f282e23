//! Each input form through the binary, on real data: the sample split into files of every kind,
//! as a directory and a glob; standard input from a pipe; ties and streaks that span files;
//! truncated and corrupt compressed files; Parquet from the generator and with units beyond
//! i32; and a PostgreSQL source table of the tests' own server holding the sample.

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;

use arrow_array::{Int64Array, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;

use crate::engine::Shape;
use crate::inputs::{gzip, parquet_file, zstd};
use crate::pg::server;
use crate::reference::{Tx, expected_csv};
use crate::util::{Dir, Run, custagg, run, sample};

const HEADER: &str = "transactionId|custId|transactionDate|productSold|unitsSold";

/// custagg with `args` and `--output` into `dir`; the output's text, which must be there.
fn output_of<S: AsRef<OsStr>>(dir: &Dir, args: &[S]) -> String {
    let out = dir.path("out.csv");
    let _ = std::fs::remove_file(&out);
    let mut all: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    all.extend([OsStr::new("--output"), out.as_os_str()]);
    let r = run(&all);
    assert_eq!(r.code, 0, "{all:?}: {}", r.stderr.trim());
    std::fs::read_to_string(&out).unwrap()
}

/// `--source` for each of `paths`.
fn sources(paths: &[&Path]) -> Vec<PathBuf> {
    paths
        .iter()
        .flat_map(|p| [PathBuf::from("--source"), p.to_path_buf()])
        .collect()
}

/// custagg reading `stdin` on standard input, with `args`.
fn run_with_stdin(args: &[&OsStr], stdin: Vec<u8>) -> Run {
    let mut child = custagg()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut pipe = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        // The run may stop reading early (and close the pipe) when it fails.
        let _ = pipe.write_all(&stdin);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The data lines of a `|`-delimited file in the sample's columns, as transactions.
fn transactions(lines: &[&str]) -> Vec<Tx> {
    lines
        .iter()
        .map(|line| {
            let f: Vec<&str> = line.split('|').collect();
            let day: Vec<u32> = f[2].split('-').map(|n| n.parse().unwrap()).collect();
            Tx {
                customer: f[1].into(),
                date: (day[0], day[1], day[2]),
                product: f[3].into(),
                units: f[4].parse().unwrap(),
            }
        })
        .collect()
}

/// The sample's columns, reversed: another header order.
fn reversed(lines: &[&str]) -> String {
    let flip = |line: &str| line.rsplit('|').collect::<Vec<_>>().join("|");
    let mut text = flip(HEADER) + "\n";
    for line in lines {
        text += &(flip(line) + "\n");
    }
    text
}

fn with_header(lines: &[&str]) -> String {
    let mut text = String::from(HEADER) + "\n";
    for line in lines {
        text += &(line.to_string() + "\n");
    }
    text
}

/// The sample's data lines in four files — plain text with its columns reversed, two gzip
/// members, zstd, and Parquet — named so that no name tells the kind; every way of naming them
/// (files, a directory, a glob, and the whole sample gzipped on standard input) reads as the
/// sample does.
#[test]
fn the_sample_as_files_of_every_kind_reads_as_the_sample() {
    let Some(sample) = sample() else { return };
    let dir = Dir::new();
    let expected = output_of(&dir, &sources(&[&sample]));
    let text = std::fs::read_to_string(&sample).unwrap();
    let lines: Vec<&str> = text.lines().skip(1).filter(|l| !l.is_empty()).collect();
    let quarter = lines.len() / 4;
    let parts: Vec<&[&str]> = lines.chunks(quarter + 1).collect();
    assert_eq!(parts.len(), 4);
    std::fs::create_dir(dir.path("day")).unwrap();
    let plain = dir.write("day/a", reversed(parts[0]));
    let members = [parts[1].len() / 2].map(|half| {
        [
            gzip(with_header(&parts[1][..half]).as_bytes()),
            // A second member is the rest of the same file: no header of its own.
            gzip(parts[1][half..].join("\n").as_bytes()),
            gzip(b"\n"),
        ]
        .concat()
    });
    let gz = dir.write("day/b", &members[0]);
    let zst = dir.write("day/c", zstd(with_header(parts[2]).as_bytes()));
    let shape = Shape {
        order: vec![4, 0, 3, 2, 1, 5],
        delimiter: b'|',
        quote_all: false,
        crlf: false,
        bom: false,
        blank_lines: false,
        final_newline: true,
        upper_case_header: true,
    };
    let parquet = parquet_file(&transactions(parts[3]), &["x".into()], &shape, 2);
    let pq = dir.write("day/d", parquet);

    assert!(output_of(&dir, &sources(&[&plain, &gz, &zst, &pq])) == expected);
    assert!(output_of(&dir, &sources(&[&pq, &zst, &gz, &plain])) == expected);
    assert!(output_of(&dir, &sources(&[&dir.path("day")])) == expected);
    let glob = dir.path("day/[a-d]");
    assert!(output_of(&dir, &sources(&[&glob])) == expected);

    let out = dir.path("stdin.csv");
    let args = ["--source", "-", "--output", out.to_str().unwrap()].map(OsStr::new);
    for stdin in [text.clone().into_bytes(), gzip(text.as_bytes())] {
        let r = run_with_stdin(&args, stdin);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(std::fs::read_to_string(&out).unwrap() == expected);
    }
}

/// A customer whose products tie on units only over all files, and whose streak runs through
/// three files of three kinds.
#[test]
fn ties_and_streaks_span_files() {
    let dir = Dir::new();
    let first = [
        "1|a|2011-01-01|Q|5",
        "2|a|2011-01-02|P|3",
        "3|b|2011-01-02|P|1",
    ];
    let second = ["4|a|2011-01-03|P|2", "5|b|2011-01-05|Q|1"];
    let third = ["6|a|2011-01-04|R|5", "7|b|2011-01-03|Q|-1"];
    let paths = [
        dir.write("1.csv", with_header(&first)),
        dir.write("2.csv.gz", gzip(with_header(&second).as_bytes())),
        dir.write("3.csv.zst", zstd(with_header(&third).as_bytes())),
    ];
    let all: Vec<&str> = first.iter().chain(&second).chain(&third).copied().collect();
    let expected = expected_csv(&transactions(&all));
    let got = output_of(&dir, &sources(&paths.each_ref().map(|p| p.as_path())));
    assert_eq!(got, expected);
    // P, Q and R each total 5 units; the smallest code wins the tie, and the days 1 to 4 of
    // January run through the three files.
    assert!(got.contains("\na,P,4\n"), "{got}");
}

/// A run over many rows, gzipped and then cut short, or with bytes changed inside: exit 3, an
/// error naming the file and the byte the decoder had got to, and the target table as it was.
#[test]
fn a_truncated_or_corrupt_compressed_file_is_exit_3_and_the_target_stays() {
    let dir = Dir::new();
    let good = dir.path("good.csv");
    let made = custagg()
        .args([
            "generate",
            "--quiet",
            "--rows",
            "60000",
            "--customers",
            "3000",
        ])
        .arg("--out")
        .arg(&good)
        .output()
        .unwrap();
    assert!(made.status.success());
    let text = std::fs::read(&good).unwrap();
    let whole = gzip(&text);
    let cut = dir.write("cut.csv.gz", &whole[..whole.len() * 2 / 3]);
    let mut changed = whole.clone();
    let middle = changed.len() / 2;
    for b in &mut changed[middle..middle + 64] {
        *b = !*b;
    }
    let corrupt = dir.write("corrupt.csv.gz", changed);
    let zst = zstd(&text);
    let cut_zst = dir.write("cut.zst", &zst[..zst.len() / 2]);

    let db = server().database("truncated");
    let target = crate::pg::load(&good, &db, "customers", &[]);
    assert_eq!(target.code, 0, "{}", target.stderr);
    let mut client = server().client(&db);
    let before: i64 = client
        .query_one("SELECT count(*) FROM customers", &[])
        .unwrap()
        .get(0);
    for bad in [&cut, &corrupt, &cut_zst] {
        let name = bad.file_name().unwrap().to_str().unwrap();
        let r = run(&[
            "--source",
            good.to_str().unwrap(),
            "--source",
            bad.to_str().unwrap(),
            "--db-url",
            server().url(),
            "--database",
            &db,
            "--table",
            "customers",
        ]);
        assert_eq!(r.code, 3, "{name}: {}", r.stderr);
        assert!(r.stderr.contains(name), "{name}: {}", r.stderr);
        assert!(r.stderr.contains("compressed byte"), "{name}: {}", r.stderr);
        let after: i64 = client
            .query_one("SELECT count(*) FROM customers", &[])
            .unwrap()
            .get(0);
        assert_eq!(after, before, "{name}: the table is as it was");
        let out = dir.path("out.csv");
        let r = run(&[
            "--source",
            bad.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 3, "{name}: {}", r.stderr);
        assert!(!out.exists(), "{name}: no output");
    }
    let staging: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'custagg_staging_%'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(staging, 0);
}

/// `generate --format parquet` writes the rows of the text file: the same answers.
#[test]
fn parquet_from_the_generator_reads_as_its_text() {
    let dir = Dir::new();
    let generate = |name: &str, format: &str| {
        let path = dir.path(name);
        let made = custagg()
            .args([
                "generate",
                "--quiet",
                "--rows",
                "50000",
                "--customers",
                "2000",
            ])
            .args(["--products", "300", "--seed", "5", "--format", format])
            .arg("--out")
            .arg(&path)
            .output()
            .unwrap();
        assert!(made.status.success(), "{made:?}");
        path
    };
    let (text, parquet) = (generate("g.csv", "text"), generate("g.parquet", "parquet"));
    assert!(std::fs::read(&parquet).unwrap().starts_with(b"PAR1"));
    let expected = output_of(&dir, &sources(&[&text]));
    for threads in ["1", "2"] {
        let mut args = sources(&[&parquet]);
        args.extend(["--threads", threads].map(PathBuf::from));
        assert!(output_of(&dir, &args) == expected, "threads {threads}");
    }
}

/// Units beyond i32 in an int64 column: a bad row named by its row number in the file.
#[test]
fn parquet_units_beyond_i32_are_bad_rows_by_row_number() {
    let dir = Dir::new();
    let schema = Arc::new(Schema::new(vec![
        Field::new("custId", DataType::Utf8, false),
        Field::new("transactionDate", DataType::Utf8, false),
        Field::new("productSold", DataType::Utf8, false),
        Field::new("unitsSold", DataType::Int64, false),
    ]));
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(StringArray::from(vec!["a", "a", "b"])),
            Arc::new(StringArray::from(vec![
                "2011-01-01",
                "2011-01-02",
                "2011-01-02",
            ])),
            Arc::new(StringArray::from(vec!["P", "Q", "P"])),
            Arc::new(Int64Array::from(vec![1, 1 << 40, 2])),
        ],
    )
    .unwrap();
    let mut writer = ArrowWriter::try_new(Vec::new(), schema, None).unwrap();
    writer.write(&batch).unwrap();
    let file = dir.write("units.parquet", writer.into_inner().unwrap());
    let out = dir.path("out.csv");
    let r = run(&[
        "--source",
        file.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("units.parquet: row 2: unitsSold:"),
        "{}",
        r.stderr
    );
    let rejects = dir.path("rejects.csv");
    let r = run(&[
        "--source",
        file.to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
        "--max-bad-rows",
        "1",
        "--rejects",
        rejects.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        dir.read("out.csv"),
        "customer_id,favourite_product,longest_streak\na,P,1\nb,P,1\n"
    );
    let rejected = dir.read("rejects.csv");
    assert!(
        rejected.lines().nth(1).unwrap().starts_with("2,unitsSold,"),
        "{rejected}"
    );
}

/// The server's URL for `database`.
fn url_of(database: &str) -> String {
    let url = server().url();
    let at = url.rfind('/').unwrap();
    format!("{}/{database}", &url[..at])
}

/// The sample in a table of the tests' own server, read by table and by query, gives the
/// sample's answers; a query that would write fails in the read-only transaction and writes
/// nothing.
#[test]
fn a_postgresql_table_or_query_is_a_source() {
    let Some(sample) = sample() else { return };
    let dir = Dir::new();
    let expected = output_of(&dir, &sources(&[&sample]));
    let db = server().database("pgsource");
    server()
        .client("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    let mut client = server().client(&db);
    client
        .batch_execute(
            "CREATE SCHEMA sales;
             CREATE TABLE sales.tx (transactionId text, custId text, transactionDate date,
                                    productSold text, unitsSold integer);",
        )
        .unwrap();
    let mut copy = client
        .copy_in("COPY sales.tx FROM STDIN (FORMAT csv, DELIMITER '|', HEADER true)")
        .unwrap();
    copy.write_all(&std::fs::read(&sample).unwrap()).unwrap();
    copy.finish().unwrap();

    let table = format!("{}?table=Sales.TX", url_of(&db));
    assert!(output_of(&dir, &["--source", &table]) == expected);
    let query = "SELECT custid, transactiondate, productsold, unitssold FROM sales.tx";
    let args = ["--source-query", query, "--source-db-url", &url_of(&db)];
    assert!(output_of(&dir, &args) == expected);

    let count = |client: &mut postgres::Client| -> i64 {
        client
            .query_one("SELECT count(*) FROM sales.tx", &[])
            .unwrap()
            .get(0)
    };
    let before = count(&mut client);
    let out = dir.path("w.csv");
    let r = run(&[
        "--source-query",
        "INSERT INTO sales.tx SELECT * FROM sales.tx RETURNING *",
        "--source-db-url",
        &url_of(&db),
        "--output",
        out.to_str().unwrap(),
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("read-only"), "{}", r.stderr);
    assert_eq!(count(&mut client), before);
    assert!(!out.exists());

    let missing = format!("{}?table=sales.nope", url_of(&db));
    let r = run(&["--source", &missing, "--output", out.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("sales.nope"), "{}", r.stderr);
}
