//! The Spark job (`spark/custagg_spark.py`, Spark in local mode) against custagg: byte-identical
//! CSV on random inputs — ties, duplicate rows, quoted fields, streaks across month ends, files
//! with their own column order, gzip — and on the original sample and a Parquet file; a load into
//! the tests' server, a reload under a view, and a bad row that leaves the table as it was.
//!
//! Needs Java and the Python packages of `spark/requirements.txt`; without them the test says so
//! and passes, unless `CUSTAGG_SPARK=1` (set by `.ci/run`, which installs them) demands them.

use std::path::{Path, PathBuf};
use std::process::Command;

use rand_pcg::Pcg64;
use rand_pcg::rand_core::{Rng, SeedableRng};

use crate::inputs::gzip;
use crate::pg::server;
use crate::reference::{Date, Tx, days_from, expected_csv};
use crate::util::{Dir, Run, run, sample};

fn spark_available() -> bool {
    let ok = |cmd: &mut Command| cmd.output().is_ok_and(|o| o.status.success());
    let found = ok(Command::new("java").arg("-version"))
        && ok(Command::new("python3").args(["-c", "import pyspark, psycopg"]));
    if !found {
        assert!(
            std::env::var("CUSTAGG_SPARK").as_deref() != Ok("1"),
            "CUSTAGG_SPARK=1, but java or the packages of spark/requirements.txt are missing"
        );
        eprintln!(
            "note: no Java or no pyspark/psycopg (pip install -r spark/requirements.txt); \
             skipping the Spark test"
        );
    }
    found
}

/// Runs the Spark job with `args`, none of the PG or custagg variables leaking in.
fn spark(args: &[&str]) -> Run {
    spark_with(args, &[])
}

/// [`spark`] with `env` set.
fn spark_with(args: &[&str], env: &[(&str, &str)]) -> Run {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("spark/custagg_spark.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(args);
    cmd.args(["--conf", "spark.driver.memory=1g"]);
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CUSTAGG_") || name.starts_with("PG") || name == "DATABASE_URL" {
            cmd.env_remove(&*name);
        }
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The CSV custagg writes for `sources`, and the CSV the Spark job writes.
fn both_outputs(dir: &Dir, sources: &[&Path], spark_extra: &[&str]) -> (String, String) {
    let mut args = Vec::new();
    for source in sources {
        args.extend(["--source", source.to_str().unwrap()]);
    }
    let rust_out = dir.path("custagg.csv");
    let spark_out = dir.path("spark.csv");
    let mut rust_args = args.clone();
    rust_args.extend(["--quiet", "--output", rust_out.to_str().unwrap()]);
    let r = run(&rust_args);
    assert_eq!(r.code, 0, "custagg: {}", r.stderr);
    let mut spark_args = args;
    spark_args.extend(["--output", spark_out.to_str().unwrap()]);
    spark_args.extend_from_slice(spark_extra);
    let r = spark(&spark_args);
    assert_eq!(r.code, 0, "spark: {}", r.stderr);
    (
        std::fs::read_to_string(rust_out).unwrap(),
        std::fs::read_to_string(spark_out).unwrap(),
    )
}

/// A field of the `|`-delimited input, quoted when it must be and sometimes when it need not.
fn input_field(value: &str, rng: &mut Pcg64) -> String {
    if value.contains(['|', '"', '\n', '\r']) || rng.next_u32().is_multiple_of(5) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// Random transactions made to be hard: few customers and products (ties), equal totals on
/// purpose, runs of days across month and year ends and leap days, duplicate rows, and text
/// that needs quoting in the input (`|`, `"`) or in the output (`,`).
fn random_rows(seed: u64) -> Vec<Tx> {
    let mut rng = Pcg64::seed_from_u64(seed);
    let customers = [
        "0023938",
        "0023939",
        "a|b",
        "say \"hi\"",
        "x,y",
        "ünï",
        "Z",
        "z",
        "00",
        &"L".repeat(255),
    ];
    let products = ["P1", "P10", "P2", "p1", "A,B", "Q\"Z", "SUPA101"];
    let starts: [Date; 5] = [
        (2011, 1, 29),
        (2012, 2, 27),
        (2011, 12, 30),
        (2013, 2, 27),
        (2011, 8, 10),
    ];
    let mut rows = Vec::new();
    let mut pick = |n: usize| rng.next_u32() as usize % n;
    for _ in 0..400 {
        let customer = customers[pick(customers.len())].to_string();
        let product = products[pick(products.len())].to_string();
        let start = starts[pick(starts.len())];
        let days = days_from(start, 1 + pick(8));
        let date = days[pick(days.len())];
        let units = pick(7) as i32 - 1;
        let tx = Tx {
            customer,
            product,
            date,
            units,
        };
        // The same purchase again (a repeated row counts), or a rival with an equal total.
        match pick(6) {
            0 => rows.push(tx.clone()),
            1 => rows.push(Tx {
                product: products[pick(products.len())].to_string(),
                ..tx.clone()
            }),
            _ => {}
        }
        rows.push(tx);
    }
    rows
}

/// `rows` as input files in `dir`: three files, each with its own column order and an extra
/// column, one with CRLF line ends, one gzip.
fn write_inputs(dir: &Dir, rows: &[Tx], seed: u64) -> Vec<PathBuf> {
    let mut rng = Pcg64::seed_from_u64(seed ^ 0x5eed);
    let layouts: [(&str, &str, bool, bool); 3] = [
        (
            "part-0.csv",
            "transactionId|custId|transactionDate|productSold|unitsSold",
            false,
            false,
        ),
        (
            "part-1.csv",
            "unitsSold|PRODUCTSOLD|note|custid|transactionDate",
            true,
            false,
        ),
        (
            "part-2.csv.gz",
            "custId|productSold|unitsSold|transactionDate",
            false,
            true,
        ),
    ];
    let chunk = rows.len().div_ceil(layouts.len());
    std::fs::create_dir_all(dir.path("in")).unwrap();
    let mut paths = Vec::new();
    for (i, ((name, header, crlf, gz), part)) in layouts.iter().zip(rows.chunks(chunk)).enumerate()
    {
        let end = if *crlf { "\r\n" } else { "\n" };
        let mut text = format!("{header}{end}");
        for (n, tx) in part.iter().enumerate() {
            let (y, m, d) = tx.date;
            let date = format!("{y:04}-{m:02}-{d:02}");
            let field = |name: &str, rng: &mut Pcg64| match name.to_ascii_lowercase().as_str() {
                "custid" => input_field(&tx.customer, rng),
                "productsold" => input_field(&tx.product, rng),
                "transactiondate" => date.clone(),
                "unitssold" => tx.units.to_string(),
                "transactionid" => format!("{i}-{n}"),
                _ => input_field("a note | with a delimiter", rng),
            };
            let fields: Vec<String> = header.split('|').map(|h| field(h, &mut rng)).collect();
            text.push_str(&fields.join("|"));
            text.push_str(end);
        }
        let bytes = if *gz {
            gzip(text.as_bytes())
        } else {
            text.into_bytes()
        };
        paths.push(dir.write(&format!("in/{name}"), bytes));
    }
    paths
}

#[test]
fn the_spark_job_writes_what_custagg_writes_and_loads_like_it() {
    if !spark_available() {
        return;
    }
    for seed in 0..3 {
        let dir = Dir::new();
        let rows = random_rows(seed);
        let paths = write_inputs(&dir, &rows, seed);
        let sources: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let (ours, theirs) = both_outputs(&dir, &sources, &[]);
        assert_eq!(ours, expected_csv(&rows), "custagg, seed {seed}");
        assert!(
            ours == theirs,
            "seed {seed}: custagg\n{ours}\nspark\n{theirs}"
        );
        if seed == 0 {
            // The same files as a directory, and as a glob.
            let inputs = paths[0].parent().unwrap();
            let (_, theirs) = both_outputs(&dir, &[inputs], &[]);
            assert!(ours == theirs, "the directory differs");
            let glob = inputs.join("part-*");
            let (_, theirs) = both_outputs(&dir, &[&glob], &[]);
            assert!(ours == theirs, "the glob differs");
        }
    }

    // A quoted line break needs --multiline in Spark.
    let dir = Dir::new();
    let text = "custId|transactionDate|productSold|unitsSold\n\
                \"two\nlines\"|2011-08-10|P1|1\n\"two\nlines\"|2011-08-11|P2|2\nc|2011-08-10|P1|1\n";
    let file = dir.write("multi.csv", text);
    let (ours, theirs) = both_outputs(&dir, &[&file], &["--multiline"]);
    assert!(ours == theirs, "custagg\n{ours}\nspark\n{theirs}");

    // Parquet, from the generator, against its text.
    let dir = Dir::new();
    let (text, parquet) = (dir.path("g.csv"), dir.path("g.parquet"));
    for (out, format) in [(&text, "text"), (&parquet, "parquet")] {
        let r = run(&[
            "generate",
            "--quiet",
            "--rows",
            "3000",
            "--customers",
            "150",
            "--products",
            "12",
            "--seed",
            "7",
            "--format",
            format,
            "--out",
            out.to_str().unwrap(),
        ]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let (ours, _) = both_outputs(&dir, &[&text], &[]);
    let (_, theirs) = both_outputs(&dir, &[&parquet], &[]);
    assert!(ours == theirs, "Parquet: custagg\n{ours}\nspark\n{theirs}");

    let Some(sample) = sample() else { return };
    let dir = Dir::new();
    let (ours, theirs) = both_outputs(&dir, &[&sample], &[]);
    assert!(ours == theirs, "the sample differs");

    // Into the tests' server: the rows custagg writes, in place of the table.
    let db = server().database("spark");
    let url: postgres::Config = server().url().parse().unwrap();
    let host = match &url.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = url.get_ports()[0].to_string();
    let user = url.get_user().unwrap_or("postgres").to_string();
    let load_at = |source: &Path, host: &str, env: &[(&str, &str)]| {
        let args = [
            "--source",
            source.to_str().unwrap(),
            "--database",
            &db,
            "--table",
            "sales.customers",
            "--host",
            host,
            "--port",
            &port,
            "--user",
            &user,
        ];
        spark_with(&args, env)
    };
    let load = |source: &Path| load_at(source, &host, &[]);
    let table = |db: &str| -> String {
        let mut client = server().client(db);
        let mut out = String::from("customer_id,favourite_product,longest_streak\n");
        for row in client
            .query(
                "SELECT customer_id, favourite_product, longest_streak FROM sales.customers \
                 ORDER BY customer_id COLLATE \"C\"",
                &[],
            )
            .unwrap()
        {
            let (c, p, s): (String, String, i32) = (row.get(0), row.get(1), row.get(2));
            out.push_str(&format!(
                "{},{},{s}\n",
                crate::reference::csv_field(&c),
                crate::reference::csv_field(&p)
            ));
        }
        out
    };
    server()
        .client("postgres")
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    server()
        .client(&db)
        .batch_execute("CREATE SCHEMA sales")
        .unwrap();
    let r = load(&sample);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        table(&db) == ours,
        "the loaded table differs from custagg's rows"
    );
    // Over TLS with the certificate checked (the tests' own server: its CA is known).
    if let Some(own) = server().own() {
        let ca = own.tls.ca.to_str().unwrap();
        let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca)];
        let r = load_at(&sample, "localhost", &env);
        assert_eq!(r.code, 0, "{}", r.stderr);
        let r = load_at(&sample, "127.0.0.1", &env);
        assert_eq!(
            r.code, 1,
            "a host the certificate does not name: {}",
            r.stderr
        );
        assert!(table(&db) == ours);
    }

    // A view depends on the table: a reload refills it in place and the view keeps working.
    let dir = Dir::new();
    let rows = random_rows(11);
    let paths = write_inputs(&dir, &rows, 11);
    server()
        .client(&db)
        .batch_execute("CREATE VIEW sales.top AS SELECT count(*) AS n FROM sales.customers")
        .unwrap();
    let r = load(&paths[0]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let (ours, _) = both_outputs(&dir, &[&paths[0]], &[]);
    assert!(table(&db) == ours, "the reloaded table differs");
    let n: i64 = server()
        .client(&db)
        .query_one("SELECT n FROM sales.top", &[])
        .unwrap()
        .get(0);
    assert_eq!(n as usize, ours.lines().count() - 1);

    // A bad row: exit 3 naming the file, and the table is as it was.
    let bad = dir.write(
        "bad.csv",
        "custId|transactionDate|productSold|unitsSold\nc|2011-02-29|P1|1\n",
    );
    let r = load(&bad);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.csv") && r.stderr.contains("transactionDate"),
        "{}",
        r.stderr
    );
    assert!(table(&db) == ours, "a failed load changed the table");
}
