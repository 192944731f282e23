//! `--mode incremental` against the tests' PostgreSQL server: on random histories cut into
//! daily files, every sequence of incremental loads must hold exactly what the reference
//! computes from all rows loaded so far, and what `--mode replace` loads from the same files —
//! with ties broken only by a later file, streaks that join across files, and files repeated.
//! Also: the ledger and `custagg state`, `--reload`, the lock, and what is refused.

use std::path::{Path, PathBuf};

use rand_pcg::Pcg64Mcg;
use rand_pcg::rand_core::Rng;

use crate::pg::{load, server};
use crate::reference::{Date, Tx, csv_field, days_from, expected_csv};
use crate::util::{Dir, run};

const HEADER: &str = "transactionId|custId|transactionDate|productSold|unitsSold";

/// A file of `rows`, `|`-delimited, fields quoted where they must be.
fn write_file(dir: &Dir, name: &str, rows: &[Tx]) -> PathBuf {
    let field = |s: &str| match s.contains(['|', '"']) {
        true => format!("\"{}\"", s.replace('"', "\"\"")),
        false => s.to_string(),
    };
    let mut text = format!("{HEADER}\n");
    for (i, tx) in rows.iter().enumerate() {
        let (y, m, d) = tx.date;
        text += &format!(
            "{i}|{}|{y:04}-{m:02}-{d:02}|{}|{}\n",
            field(&tx.customer),
            field(&tx.product),
            tx.units
        );
    }
    dir.write(name, text)
}

/// The table as the CSV sink would write it.
fn table_csv(database: &str, table: &str) -> String {
    let mut out = String::from("customer_id,favourite_product,longest_streak\n");
    let sql = format!(
        "SELECT customer_id, favourite_product, longest_streak FROM {table} \
         ORDER BY customer_id COLLATE \"C\""
    );
    for row in server().client(database).query(&sql, &[]).unwrap() {
        let (c, p, s): (String, String, i32) = (row.get(0), row.get(1), row.get(2));
        out += &format!("{},{},{s}\n", csv_field(&c), csv_field(&p));
    }
    out
}

fn incremental(sources: &[&Path], database: &str, table: &str, extra: &[&str]) -> crate::util::Run {
    let mut args: Vec<&str> = Vec::new();
    for source in &sources[1..] {
        args.extend(["--source", source.to_str().unwrap()]);
    }
    args.extend(["--mode", "incremental"]);
    args.extend_from_slice(extra);
    load(sources[0], database, table, &args)
}

/// A random history over 21 days across a month's end, cut into three files by day (so a
/// customer's streak can run from one file into the next), with few products and small units
/// (so totals tie, and a later file breaks or makes the tie).
fn history(seed: u64) -> [Vec<Tx>; 3] {
    let mut random = Pcg64Mcg::new(u128::from(seed));
    let mut below = move |n: u64| random.next_u64() % n;
    let days: Vec<Date> = days_from((2012, 2, 20), 21);
    let customers: Vec<String> = (0..25)
        .map(|i| match i {
            0 => "a|b".to_string(),
            1 => "q\"uote,d".to_string(),
            2 => "0023938".to_string(),
            3 => "023938".to_string(),
            _ => format!("c{i:03}"),
        })
        .collect();
    let products = ["PURA100", "PURA250", "SUPA101", "p|q"];
    let mut files: [Vec<Tx>; 3] = Default::default();
    for _ in 0..200 + below(200) {
        let day = below(days.len() as u64) as usize;
        let tx = Tx {
            customer: customers[below(customers.len() as u64) as usize].clone(),
            product: products[below(products.len() as u64) as usize].into(),
            date: days[day],
            units: below(6) as i32 - 1,
        };
        files[day * 3 / days.len()].push(tx.clone());
        if below(30) == 0 {
            files[day * 3 / days.len()].push(tx); // a repeated row is a repeated purchase
        }
    }
    // One customer whose tie is made in file 1 and broken only by file 3, and whose streak runs
    // across all three files.
    let tie = |product: &str, date, units| Tx {
        customer: "tie".into(),
        product: product.into(),
        date,
        units,
    };
    files[0].push(tie("B", days[6], 5));
    files[0].push(tie("C", days[6], 5));
    files[1].push(tie("D", days[7], 4));
    for &day in &days[8..14] {
        files[1].push(tie("D", day, 0));
    }
    files[2].push(tie("C", days[14], 1));
    files
}

#[test]
fn incremental_loads_equal_the_reference_and_a_replace() {
    let dir = Dir::new();
    let db = server().database("incremental");
    for seed in 1..=4u64 {
        let files = history(seed);
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| write_file(&dir, &format!("s{seed}-day{i}.csv"), &files[i]))
            .collect();
        let copy = dir.path(&format!("s{seed}-day0-copy.csv"));
        std::fs::copy(&paths[0], &copy).unwrap();
        let table = format!("inc{seed}");
        let what = format!("seed {seed}");

        // The first load equals a replace of the same file.
        let r = incremental(&[&paths[0]], &db, &table, &[]);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert!(r.stderr.contains("first incremental load"), "{}", r.stderr);
        let r = load(&paths[0], &db, &format!("rep{seed}"), &[]);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert_eq!(
            table_csv(&db, &table),
            table_csv(&db, &format!("rep{seed}"))
        );
        assert_eq!(table_csv(&db, &table), expected_csv(&files[0]), "{what}");

        // The next day, given with a copy of the first under another name: the copy is skipped.
        let r = incremental(&[&copy, &paths[1]], &db, &table, &[]);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert!(
            r.stderr
                .contains(&format!("{}: already loaded on ", copy.display()))
                && r.stderr.contains(&format!("as {}", paths[0].display())),
            "{what}: {}",
            r.stderr
        );
        let so_far = [files[0].clone(), files[1].clone()].concat();
        assert_eq!(table_csv(&db, &table), expected_csv(&so_far), "{what}");

        // The same day again: nothing to do, exit 0, nothing counted twice.
        let r = incremental(&[&paths[1]], &db, &table, &[]);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert!(r.stderr.contains("already loaded on"), "{}", r.stderr);
        assert!(r.stderr.contains("nothing new to load"), "{}", r.stderr);
        assert_eq!(table_csv(&db, &table), expected_csv(&so_far), "{what}");

        // The last day, spilled, on one thread.
        let r = incremental(
            &[&paths[2]],
            &db,
            &table,
            &["--force-spill", "--threads", "1"],
        );
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        let all = files.concat();
        assert_eq!(table_csv(&db, &table), expected_csv(&all), "{what}");
        let tie = table_csv(&db, &table);
        assert!(tie.contains("\ntie,C,9\n"), "{what}: {tie}");

        // A replace over all files holds the same rows.
        let r = load(
            &paths[0],
            &db,
            &format!("rep{seed}"),
            &[
                "--source",
                paths[1].to_str().unwrap(),
                "--source",
                paths[2].to_str().unwrap(),
            ],
        );
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert_eq!(
            table_csv(&db, &table),
            table_csv(&db, &format!("rep{seed}"))
        );

        // All at once, incrementally, into a fresh table: the same again.
        let fresh = format!("all{seed}");
        let sources: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        let r = incremental(&sources, &db, &fresh, &[]);
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert_eq!(table_csv(&db, &fresh), table_csv(&db, &table), "{what}");
        let (sources, loads): (i64, i64) = {
            let sql =
                format!("SELECT count(*), count(DISTINCT load_id) FROM {fresh}_custagg_ledger");
            let row = server().client(&db).query_one(&sql, &[]).unwrap();
            (row.get(0), row.get(1))
        };
        assert_eq!(
            (sources, loads),
            (3, 1),
            "{what}: files loaded together are one load"
        );
    }
}

#[test]
fn the_ledger_reload_state_and_refusals() {
    let dir = Dir::new();
    let db = server().database("ledger");
    let [one, two, _] = history(9);
    let (a, b) = (
        write_file(&dir, "a.csv", &one),
        write_file(&dir, "b.csv", &two),
    );
    assert_eq!(incremental(&[&a], &db, "t", &[]).code, 0);
    assert_eq!(incremental(&[&b], &db, "t", &[]).code, 0);

    // The ledger: one row a source, with its rows and hash.
    let mut client = server().client(&db);
    let rows: Vec<(i64, String, i64, String)> = client
        .query(
            "SELECT load_id, source, rows, content_hash FROM t_custagg_ledger ORDER BY load_id",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!((rows[0].0, rows[0].1.as_str()), (1, a.to_str().unwrap()));
    assert_eq!((rows[1].0, rows[1].2), (2, two.len() as i64));
    assert!(rows[0].3.starts_with("blake3:"), "{rows:?}");

    let url = server().url().to_string();
    let state = run(&["state", "--db-url", &url, "--database", &db, "--table", "t"]);
    assert_eq!(state.code, 0, "{}", state.stderr);
    assert!(
        state.stdout.contains("2 sources loaded in 2 loads"),
        "{}",
        state.stdout
    );
    assert!(
        state.stdout.contains(a.to_str().unwrap()),
        "{}",
        state.stdout
    );

    // A scheduler's report says what was skipped.
    let report = dir.path("report.json");
    let r = incremental(&[&a], &db, "t", &["--report", report.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let skipped = &json["incremental"]["skipped"];
    assert_eq!(skipped.as_array().map(Vec::len), Some(1), "{json}");
    assert!(
        skipped[0].as_str().unwrap().contains("already loaded on"),
        "{json}"
    );
    assert_eq!(
        json["incremental"]["loaded"],
        serde_json::json!([]),
        "{json}"
    );
    assert_eq!(json["exit_status"], 0, "{json}");

    // --reload takes a file again and counts its rows a second time.
    let r = incremental(&[&a], &db, "t", &["--reload"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let twice = [one.clone(), two.clone(), one.clone()].concat();
    assert_eq!(table_csv(&db, "t"), expected_csv(&twice));

    // A replace would leave the state behind: refused, the table unchanged.
    let before = table_csv(&db, "t");
    let r = load(&b, &db, "t", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--mode incremental") && r.stderr.contains("--reset"),
        "{}",
        r.stderr
    );
    assert_eq!(table_csv(&db, "t"), before);

    // Another run holding the target's lock: refused at once, nothing changed.
    let mut holder = server().client(&db);
    holder
        .execute("SELECT pg_advisory_lock(hashtext('custagg public.t'))", &[])
        .unwrap();
    let c = write_file(&dir, "c.csv", &history(10)[2]);
    let r = incremental(&[&c], &db, "t", &[]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("another custagg run is loading"),
        "{}",
        r.stderr
    );
    drop(holder);
    assert_eq!(table_csv(&db, "t"), before);

    // What incremental mode refuses.
    let r = incremental(&[&c], &db, "t", &["--output", "x.csv"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let r = load(&c, &db, "t", &["--reload"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("--reload goes with --mode incremental"),
        "{}",
        r.stderr
    );
    let r = incremental(&[Path::new("-")], &db, "t", &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("files only"), "{}", r.stderr);
    let long = "x".repeat(50);
    let r = incremental(&[&c], &db, &long, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);

    // A bad row: exit 3, and the state, the ledger and the table as they were.
    let bad = dir.write(
        "bad.csv",
        format!("{HEADER}\n1|c001|2012-02-30|PURA100|1\n"),
    );
    let r = incremental(&[&bad], &db, "t", &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert_eq!(table_csv(&db, "t"), before);
    let ledger: i64 = client
        .query_one("SELECT count(*) FROM t_custagg_ledger", &[])
        .unwrap()
        .get(0);
    assert_eq!(ledger, 3);

    // A first incremental load that fails leaves empty state tables, which do not stop a replace.
    let r = incremental(&[&bad], &db, "fresh", &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    let r = load(&b, &db, "fresh", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);

    // --reset drops the state; then a replace is allowed again.
    let r = run(&[
        "state",
        "--db-url",
        &url,
        "--database",
        &db,
        "--table",
        "t",
        "--reset",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = run(&["state", "--db-url", &url, "--database", &db, "--table", "t"]);
    assert!(r.stdout.contains("no incremental state"), "{}", r.stdout);
    assert_eq!(load(&b, &db, "t", &[]).code, 0);
    assert_eq!(table_csv(&db, "t"), expected_csv(&two));
}
