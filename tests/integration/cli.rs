//! The real binary: known answers on the sample, identical output whatever the threads and
//! memory, bad input and its exit codes, the generator, and the stream fallback.

use std::ffi::OsStr;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{Dir, Run, custagg, run, sample};

const HEADER: &str = "transactionId|custId|transactionDate|productSold|unitsSold\n";

fn with_header(rows: &str) -> String {
    format!("{HEADER}{rows}")
}

fn answer<'a>(csv: &'a str, customer: &str) -> Option<&'a str> {
    csv.lines()
        .find(|l| l.split(',').next() == Some(customer))
        .map(|l| &l[customer.len() + 1..])
}

#[test]
fn sample_gives_the_known_answers_of_the_spec() {
    let Some(sample) = sample() else { return };
    let dir = Dir::new();
    let out = dir.path("out.csv");
    let r = run(&[
        "--source".as_ref(),
        sample.as_os_str(),
        "--output".as_ref(),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let csv = dir.read("out.csv");
    assert!(csv.starts_with("customer_id,favourite_product,longest_streak\n"));
    assert_eq!(csv.lines().count(), 1 + 885);
    for (customer, expected) in [
        ("0023938", "PURA250,2"),
        ("0024003", "SUPA101,3"),
        ("0023824", "PURA250,3"),
        ("0024212", "PURA100,2"),
        ("0023510", "PURA100,1"),
    ] {
        assert_eq!(
            answer(&csv, customer),
            Some(expected),
            "customer {customer}"
        );
    }
    assert!(
        r.stderr
            .contains("13365 rows read, 0 rejected, 885 customers"),
        "{}",
        r.stderr
    );
}

fn generate(dir: &Dir, name: &str, rows: u64, customers: u64, seed: u64) -> PathBuf {
    let out = dir.path(name);
    let generated = generate_to(&out, rows, customers, seed);
    assert!(
        generated.status.success(),
        "{}",
        String::from_utf8_lossy(&generated.stderr)
    );
    out
}

/// `custagg generate --quiet` of `rows` rows, `customers` customers and `seed` into `out`.
fn generate_to(out: impl AsRef<OsStr>, rows: u64, customers: u64, seed: u64) -> Output {
    let counts = [rows, customers, seed].map(|n| n.to_string());
    custagg()
        .args([
            "generate",
            "--quiet",
            "--rows",
            &counts[0],
            "--customers",
            &counts[1],
        ])
        .args(["--seed", &counts[2]])
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// custagg on `source` with `--output output` and the `extra` arguments.
fn run_to(source: &Path, output: impl AsRef<OsStr>, extra: &[&str]) -> Run {
    let mut args = vec![
        OsStr::new("--source"),
        source.as_os_str(),
        OsStr::new("--output"),
        output.as_ref(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    run(&args)
}

#[test]
fn output_is_identical_for_any_threads_memory_limit_and_spilling() {
    let dir = Dir::new();
    let source = generate(&dir, "gen.csv", 30_000, 3_000, 7);
    let spill = dir.path("spill");
    std::fs::create_dir(&spill).unwrap();
    let mut outputs = Vec::new();
    for (i, extra) in [
        &[][..],
        &["--threads", "1", "--memory-limit", "16MiB", "--force-spill"],
        &["--threads", "3", "--chunk-size", "1000"],
        &["--threads", "2", "--chunk-size", "777", "--force-spill"],
    ]
    .iter()
    .enumerate()
    {
        let out = dir.path(&format!("out{i}.csv"));
        let mut args = vec!["--spill-dir", spill.to_str().unwrap()];
        args.extend_from_slice(extra);
        let r = run_to(&source, &out, &args);
        assert_eq!(r.code, 0, "{}", r.stderr);
        if extra.contains(&"--force-spill") {
            assert!(!r.stderr.contains(", 0 B spilled"), "{}", r.stderr);
        }
        outputs.push(std::fs::read(&out).unwrap());
        let left: Vec<_> = std::fs::read_dir(&spill).unwrap().collect();
        assert!(left.is_empty(), "the spill directory is removed: {left:?}");
    }
    assert_eq!(outputs[0].iter().filter(|&&b| b == b'\n').count(), 3_001);
    for (i, out) in outputs.iter().enumerate() {
        assert!(out == &outputs[0], "output {i} differs");
    }
}

#[test]
fn generate_is_deterministic_and_looks_like_the_sample() {
    let dir = Dir::new();
    let a = std::fs::read(generate(&dir, "a.csv", 5_000, 400, 3)).unwrap();
    let b = std::fs::read(generate(&dir, "b.csv", 5_000, 400, 3)).unwrap();
    let c = std::fs::read(generate(&dir, "c.csv", 5_000, 400, 4)).unwrap();
    assert!(a == b, "same seed, same bytes");
    assert!(a != c, "another seed, other bytes");
    let text = String::from_utf8(a).unwrap();
    assert!(text.starts_with(HEADER));
    assert_eq!(text.lines().count(), 5_001);
    let second = text.lines().nth(1).unwrap();
    let fields: Vec<&str> = second.split('|').collect();
    assert_eq!(fields.len(), 5);
    assert_eq!(fields[1].len(), 7, "7-digit customer ids: {second}");
    assert!(fields[0].ends_with(fields[1]));
    // Every customer appears, and some rows are repeated purchases.
    let out = dir.path("out.csv");
    let r = run_to(&dir.path("a.csv"), &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(dir.read("out.csv").lines().count(), 401);
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort();
    lines.dedup();
    assert!(lines.len() < 5_001, "duplicates are generated");
}

#[test]
fn generated_shapes_have_their_shape_and_the_engine_agrees_with_the_reference() {
    use std::collections::{HashMap, HashSet};
    let dir = Dir::new();
    let path = dir.path("skewed.csv");
    let shape = [
        "--skew",
        "4",
        "--day-spread",
        "20",
        "--products",
        "40",
        "--popularity",
        "geometric:70",
        "--duplicates",
        "5",
        "--id-length",
        "24",
    ];
    let mut args = vec![
        "generate",
        "--quiet",
        "--rows",
        "40000",
        "--customers",
        "2000",
    ];
    args.extend(["--seed", "5", "--out", path.to_str().unwrap()]);
    args.extend(shape);
    assert_eq!(run(&args).code, 0);
    let text = dir.read("skewed.csv");
    let mut rows = Vec::new();
    let mut per_customer: HashMap<&str, usize> = HashMap::new();
    let mut days: HashMap<&str, HashSet<&str>> = HashMap::new();
    let mut products: HashMap<&str, usize> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('|').collect();
        assert_eq!(f[1].len(), 24, "{line}");
        *per_customer.entry(f[1]).or_default() += 1;
        days.entry(f[1]).or_default().insert(f[2]);
        *products.entry(f[3]).or_default() += 1;
        let date: Vec<u32> = f[2].split('-').map(|p| p.parse().unwrap()).collect();
        rows.push(crate::reference::Tx {
            customer: f[1].into(),
            product: f[3].into(),
            date: (date[0], date[1], date[2]),
            units: f[4].parse().unwrap(),
        });
    }
    assert_eq!(rows.len(), 40_000);
    let mut counts: Vec<usize> = per_customer.values().copied().collect();
    counts.sort();
    let (median, busiest) = (counts[counts.len() / 2], counts[counts.len() - 1]);
    assert!(
        busiest > 50 * median,
        "skewed: median {median}, busiest {busiest}"
    );
    assert!(products.len() <= 40);
    let mut sold: Vec<usize> = products.values().copied().collect();
    sold.sort();
    assert!(
        sold[sold.len() - 1] > 10 * sold[sold.len() / 2],
        "geometric popularity"
    );
    // Clustered: a busy customer's distinct days fit within the spread plus a visit's run.
    let busy = per_customer.iter().max_by_key(|(_, n)| **n).unwrap().0;
    let spread =
        days[busy].iter().min().unwrap().to_string() + ".." + days[busy].iter().max().unwrap();
    assert!(days[busy].len() <= 20 + 10, "{spread}");
    let mut unique: Vec<&str> = text.lines().collect();
    unique.sort();
    unique.dedup();
    let repeated = 40_001 - unique.len();
    assert!(
        (1_000..3_000).contains(&repeated),
        "5 % repeated lines: {repeated}"
    );

    let expected = crate::reference::expected_csv(&rows);
    for extra in [&[][..], &["--force-spill", "--threads", "1"][..]] {
        let out = dir.path("out.csv");
        let r = run_to(&path, &out, extra);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(
            dir.read("out.csv") == expected,
            "{extra:?} differs from the reference"
        );
    }
}

#[test]
fn first_bad_row_stops_the_run_with_file_line_column_and_exit_3() {
    let dir = Dir::new();
    let source = dir.write(
        "bad.csv",
        with_header("1|a|2011-01-01|P|1\n2|\"b\nc\"|2011-01-01|P|1\n\n3|d|2011-01-02|P|12x\n4|e|2011-02-30|P|1\n"),
    );
    let out = dir.write("out.csv", "previous contents\n");
    let spill = dir.path("spill");
    std::fs::create_dir(&spill).unwrap();
    for threads in ["1", "2"] {
        let r = run_to(
            &source,
            &out,
            &[
                "--threads",
                threads,
                "--chunk-size",
                "8",
                "--force-spill",
                "--spill-dir",
                spill.to_str().unwrap(),
            ],
        );
        assert_eq!(
            std::fs::read_dir(&spill).unwrap().count(),
            0,
            "spill directory removed"
        );
        assert_eq!(r.code, 3, "{}", r.stderr);
        let expected = format!(
            "{}:6: unitsSold: `12x` is not a whole number\n",
            source.display()
        );
        assert_eq!(r.stderr, expected);
        assert_eq!(
            dir.read("out.csv"),
            "previous contents\n",
            "the output is untouched"
        );
    }
}

#[test]
fn max_bad_rows_skips_into_the_rejects_file() {
    let dir = Dir::new();
    let source = dir.write(
        "bad.csv",
        with_header(
            "1|a|2011-01-01|P|1\n2|b|2011/01/01|P|1\n3|a|2011-01-02|P|1\n4|c|2011-01-02|P\n5|c|2011-01-02|Q|7",
        ),
    );
    let out = dir.path("out.csv");
    let rejects = dir.path("rejects.csv");
    let args = |max: &str| {
        let rejects = rejects.to_str().unwrap();
        run_to(
            &source,
            &out,
            &["--max-bad-rows", max, "--rejects", rejects],
        )
    };
    let r = args("2");
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("5 rows read, 2 rejected, 2 customers"),
        "{}",
        r.stderr
    );
    assert_eq!(
        dir.read("out.csv"),
        "customer_id,favourite_product,longest_streak\na,P,2\nc,Q,1\n"
    );
    let rejected = dir.read("rejects.csv");
    let lines: Vec<&str> = rejected.lines().collect();
    assert_eq!(lines[0], "line,column,reason,record,file");
    assert!(
        lines[1].starts_with("3,transactionDate,`2011/01/01` is not a date"),
        "{rejected}"
    );
    assert!(
        lines[2]
            == format!(
                "5,record,\"has 4 fields, the header has 5\",4|c|2011-01-02|P,{}",
                source.display()
            ),
        "{rejected}"
    );
    assert_eq!(lines.len(), 3);

    std::fs::remove_file(&out).unwrap();
    let r = args("1");
    assert_eq!(r.code, 3);
    assert!(
        r.stderr.contains(":5: record: has 4 fields"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("more than --max-bad-rows 1"),
        "{}",
        r.stderr
    );
    assert!(!out.exists(), "no output on failure");
}

#[test]
fn default_rejects_file_is_named_after_the_output() {
    let dir = Dir::new();
    let source = dir.write(
        "in.csv",
        with_header("1|a|2011-01-01|P|x\n2|a|2011-01-01|P|1\n"),
    );
    let r = run_to(&source, dir.path("out.csv"), &["--max-bad-rows", "5"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(dir.read("out.rejects.csv").contains("\n2,unitsSold,"));
}

fn fails_with(contents: &[u8], extra: &[&str], code: i32, needle: &str) {
    let dir = Dir::new();
    let source = dir.write("in.csv", contents);
    let r = run_to(&source, dir.path("out.csv"), extra);
    assert_eq!(r.code, code, "{}", r.stderr);
    assert!(r.stderr.contains(needle), "{:?} lacks {needle:?}", r.stderr);
    assert!(!r.stderr.contains("panicked"));
    assert!(!dir.path("out.csv").exists());
}

#[test]
fn whole_file_problems_are_named() {
    fails_with(b"", &[], 3, "the file is empty");
    fails_with(b"\n\r\n", &[], 3, "the file is empty");
    fails_with(
        b"custId|transactionDate|productSold\nA|2011-01-01|P\n",
        &[],
        3,
        "no column `unitsSold`",
    );
    fails_with(
        b"transactionId,custId,transactionDate,productSold,unitsSold\n1,a,2011-01-01,P,1\n",
        &[],
        3,
        "try --delimiter ','",
    );
    fails_with(
        with_header("1|a\"b|2011-01-01|P|1\n").as_bytes(),
        &["--max-bad-rows", "10"],
        3,
        "cannot be skipped",
    );
    fails_with(
        with_header("1|a|2011-01-01|P|1\n2|\"open|2011-01-01|P|1\n").as_bytes(),
        &[],
        3,
        ":3: record: a quoted field is never closed",
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = Dir::new();
    let source = dir.write("in.csv", with_header(""));
    let s = source.to_str().unwrap();
    let o = dir.path("o.csv");
    let o = o.to_str().unwrap();
    for args in [
        &["--output", o][..],
        &["--source", s][..],
        &["--source", s, "--output", o, "--delimiter", "ab"],
        &["--source", s, "--output", o, "--memory-limit", "lots"],
        &["--source", s, "--output", o, "--threads", "0"],
        &["generate", "--rows", "1"],
    ] {
        let r = run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
    }
    let r = run(&["--source", "/nonexistent/x.csv", "--output", o]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("/nonexistent/x.csv: cannot open the source file"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_header_without_rows_gives_zero_customers() {
    let dir = Dir::new();
    let source = dir.write("in.csv", "custId|transactionDate|productSold|unitsSold");
    let out = dir.path("out.csv");
    let r = run_to(&source, &out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        dir.read("out.csv"),
        "customer_id,favourite_product,longest_streak\n"
    );
}

#[test]
fn help_teaches_with_an_example() {
    let r = run(&["--help"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.contains(
            "custagg --source data/transaction.csv --database warehouse --table customers"
        )
    );
    assert!(r.stdout.contains("--memory-limit"));
    assert!(
        !r.stdout.contains("--force-spill"),
        "test-only flags stay hidden"
    );
    let r = run(&["generate", "--help"]);
    assert!(r.stdout.contains("--customers"));
}

#[test]
fn a_fifo_is_read_as_a_stream_with_the_same_result() {
    let dir = Dir::new();
    let source = generate(&dir, "gen.csv", 20_000, 1_000, 11);
    let (file_out, fifo_out) = (dir.path("file.csv"), dir.path("fifo.csv"));
    let r = run_to(&source, &file_out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let fifo = dir.fifo("fifo", std::fs::read(&source).unwrap());
    let report = dir.path("report.json");
    let child = custagg()
        .args([
            "--source",
            fifo.to_str().unwrap(),
            "--output",
            fifo_out.to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
        ])
        .args(["--chunk-size", "4096", "--threads", "2"])
        .output()
        .unwrap();
    assert!(
        child.status.success(),
        "{}",
        String::from_utf8_lossy(&child.stderr)
    );
    assert!(std::fs::read(&file_out).unwrap() == std::fs::read(&fifo_out).unwrap());
    // A stream has no length to ask for: the bytes reported are the bytes read.
    let report: serde_json::Value = serde_json::from_str(&dir.read("report.json")).unwrap();
    let size = std::fs::metadata(&source).unwrap().len();
    assert_eq!(report["bytes"], size, "{report}");
}

#[test]
fn parse_only_reads_and_checks_every_row_and_keeps_none() {
    // The bench script's floor: the same reading and checking, nothing after it.
    let dir = Dir::new();
    let source = generate(&dir, "gen.csv", 5_000, 500, 3);
    let out = dir.path("out.csv");
    let r = run_to(&source, &out, &["--parse-only"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("5000 rows read, 0 rejected, 0 customers"),
        "{}",
        r.stderr
    );
    assert_eq!(
        dir.read("out.csv"),
        "customer_id,favourite_product,longest_streak\n"
    );
    let bad = dir.write(
        "bad.csv",
        with_header("1|a|2011-01-01|P|1\n2|b|2011-02-30|Q|2\n"),
    );
    let r = run_to(&bad, &out, &["--parse-only"]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(r.stderr.contains(":3: transactionDate:"), "{}", r.stderr);
    // Never an empty table in place of a real one: a usage error before any connection.
    let source = source.to_str().unwrap();
    let r = run(&[
        "--source",
        source,
        "--table",
        "t",
        "--database",
        "d",
        "--parse-only",
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("--output"), "{}", r.stderr);
}

#[test]
fn spilled_bytes_count_the_rows_that_waited_in_the_spill_files() {
    // A stream gets hash partitions, so every reduced run waits for the merge at the end, and
    // --force-spill keeps none of them in memory: the spill files hold the partitions' records
    // (the figure the log gives when the read ends) and then every customer's row.
    let dir = Dir::new();
    let source = generate(&dir, "gen.csv", 20_000, 2_000, 5);
    let fifo = dir.fifo("fifo", std::fs::read(&source).unwrap());
    let (out, report) = (dir.path("out.csv"), dir.path("report.json"));
    let child = custagg()
        .args([
            "--source",
            fifo.to_str().unwrap(),
            "--output",
            out.to_str().unwrap(),
        ])
        .args([
            "--report",
            report.to_str().unwrap(),
            "--force-spill",
            "--quiet",
        ])
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(child.status.success(), "{stderr}");
    let partitions: u64 = stderr
        .lines()
        .find_map(|l| {
            l.split("; ")
                .nth(1)?
                .strip_suffix(" bytes spilled")?
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no spill figure in the log: {stderr}"));
    assert!(partitions > 0, "{stderr}");
    // Each row holds at least its customer id and favourite product.
    let rows: u64 = dir
        .read("out.csv")
        .lines()
        .skip(1)
        .map(|l| l.rsplit_once(',').unwrap().0.len() as u64 - 1)
        .sum();
    let json: serde_json::Value = serde_json::from_str(&dir.read("report.json")).unwrap();
    let spilled = json["spilled_bytes"].as_u64().unwrap();
    assert!(
        spilled >= partitions + rows,
        "{spilled} < {partitions} + {rows}"
    );
}

#[test]
fn report_json_on_success_and_on_failure() {
    let dir = Dir::new();
    let source = dir.write(
        "in.csv",
        with_header("1|a|2011-01-01|P|1\n2|b|2011-01-02|Q|2\n"),
    );
    let report = dir.path("report.json");
    let args = |source: &str| {
        run(&[
            "--source",
            source,
            "--output",
            dir.path("out.csv").to_str().unwrap(),
            "--report",
            report.to_str().unwrap(),
            "--quiet",
        ])
    };
    let r = args(source.to_str().unwrap());
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "", "--quiet prints nothing");
    let json: serde_json::Value = serde_json::from_str(&dir.read("report.json")).unwrap();
    assert_eq!(json["exit_status"], 0);
    assert_eq!(json["rows_read"], 2);
    assert_eq!(json["rows_rejected"], 0);
    assert_eq!(json["customers"], 2);
    assert_eq!(json["bytes"], std::fs::metadata(&source).unwrap().len());
    assert!(json["seconds"]["read"].as_f64().unwrap() >= 0.0);
    assert!(json["seconds"]["total"].as_f64().unwrap() > 0.0);
    assert!(json["peak_memory_bytes"].as_u64().unwrap() > 1 << 20);
    assert!(json["error"].is_null());

    let bad = dir.write("bad.csv", with_header("1|a|2011-13-01|P|1\n"));
    let r = args(bad.to_str().unwrap());
    assert_eq!(r.code, 3);
    let json: serde_json::Value = serde_json::from_str(&dir.read("report.json")).unwrap();
    assert_eq!(json["exit_status"], 3);
    assert!(
        json["error"]
            .as_str()
            .unwrap()
            .contains(":2: transactionDate:")
    );
    assert!(json["rows_read"].is_null());
}

#[test]
fn help_names_every_environment_variable_and_default() {
    let help = run(&["--help"]).stdout;
    for needle in [
        "[env: CUSTAGG_SOURCE=]",
        "[env: CUSTAGG_MEMORY_LIMIT=]",
        "[env: PGHOST=]",
        "[default: localhost]",
        "[env: DATABASE_URL]",
        "[default: |]",
        "[default: all cores]",
        "[default: a quarter of RAM]",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let help = run(&["generate", "--help"]).stdout;
    assert!(
        help.contains("[env: CUSTAGG_ROWS=]") && help.contains("[default: 1]"),
        "{help}"
    );
    assert!(help.contains("custagg generate --rows 22000000"), "{help}");
}

#[test]
fn completions_and_man_page_come_from_the_same_definition() {
    let r = run(&["completions", "bash"]);
    assert_eq!(r.code, 0);
    assert!(r.stdout.contains("--memory-limit") && r.stdout.contains("generate"));
    let r = run(&["man"]);
    assert_eq!(r.code, 0);
    assert!(
        r.stdout.starts_with(".ie") || r.stdout.contains(".TH custagg"),
        "{}",
        &r.stdout[..200]
    );
    assert!(r.stdout.contains("memory\\-limit"));
}

#[test]
fn progress_is_drawn_on_a_terminal_and_nowhere_else() {
    // `script` gives the run a terminal and records what was drawn on it.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: `script` (util-linux) is not installed");
        return;
    }
    let dir = Dir::new();
    let source = generate(&dir, "gen.csv", 2_000_000, 200_000, 5);
    let out = dir.path("out.csv");
    let command = format!(
        "{} --source {} --output {} --threads 1",
        env!("CARGO_BIN_EXE_custagg"),
        source.display(),
        out.display()
    );
    let typescript = dir.path("typescript");
    let status = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &command])
        .arg(&typescript)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let drawn = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(drawn.contains("read ["), "no read bar: {drawn:?}");
    assert!(drawn.contains("/s"), "no rate: {drawn:?}");
    assert!(drawn.contains("ETA"), "no ETA: {drawn:?}");
    assert!(drawn.contains("2000000 rows read"), "no summary: {drawn:?}");

    // Not a terminal: the summary only, no bar.
    let r = run_to(&source, &out, &[]);
    assert!(!r.stderr.contains('['), "{}", r.stderr);
    assert!(r.stderr.contains("peak memory"), "{}", r.stderr);
}

#[test]
fn the_unfinished_output_of_a_killed_run_is_removed_by_the_next_run() {
    use std::io::BufRead;
    let dir = Dir::new();
    let source = dir.write(
        "in.csv",
        with_header("1|a|2024-01-01|P|1\n2|b|2024-01-02|Q|2\n"),
    );
    let out = dir.path("out.csv");
    let args = [
        "--source".as_ref(),
        source.as_os_str(),
        "--output".as_ref(),
        out.as_os_str(),
    ];
    let mut child = custagg()
        .args(args)
        .env("CUSTAGG_PAUSE_AT", "reducing")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("paused at reducing") {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "ended before the pause"
        );
    }
    child.kill().unwrap(); // SIGKILL: nothing of the run cleans up
    child.wait().unwrap();
    let leftovers = || {
        std::fs::read_dir(dir.root())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with(".custagg-"))
            .collect::<Vec<_>>()
    };
    assert_eq!(leftovers().len(), 1, "{:?}", leftovers());
    assert!(!out.exists());

    let r = run(&args);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(leftovers(), Vec::<String>::new());
    assert_eq!(
        dir.read("out.csv"),
        "customer_id,favourite_product,longest_streak\na,P,1\nb,Q,1\n"
    );
}

#[test]
fn output_to_stdout_a_pipe_or_a_link_writes_there_and_replaces_nothing_else() {
    let dir = Dir::new();
    let source = generate(&dir, "gen.csv", 5_000, 500, 12);
    let file_out = dir.path("file.csv");
    let r = run_to(&source, &file_out, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let expected = dir.read("file.csv");

    // Standard output (a pipe here): the rows come out there; /dev/stdout stays what it was.
    let before = std::fs::symlink_metadata("/dev/stdout")
        .unwrap()
        .file_type();
    let r = run_to(&source, "/dev/stdout", &["--quiet"]);
    assert_eq!((r.code, r.stdout == expected), (0, true), "{}", r.stderr);
    let generated = generate_to("/dev/stdout", 5_000, 500, 12);
    assert!(generated.status.success());
    assert!(generated.stdout == std::fs::read(&source).unwrap());
    assert_eq!(
        std::fs::symlink_metadata("/dev/stdout")
            .unwrap()
            .file_type(),
        before
    );

    // A FIFO: written as the rows come, read by whoever opened it.
    let fifo = dir.path("out.fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let r = run_to(&source, &fifo, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(reader.join().unwrap() == expected);
    assert!(
        std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo()
    );

    // A link to a file: the file is replaced, the link stays.
    let (real, link) = (dir.path("real.csv"), dir.path("link.csv"));
    std::fs::write(&real, "old").unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    let r = run_to(&source, &link, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(dir.read("real.csv") == expected);

    // A directory: refused before any work, and left alone.
    let target = dir.path("a-directory");
    std::fs::create_dir(&target).unwrap();
    let r = run_to(&source, &target, &[]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("a-directory") && r.stderr.contains("directory"),
        "{}",
        r.stderr
    );
    assert!(target.is_dir());
}
