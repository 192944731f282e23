//! The PostgreSQL sink against a real server: known answers by SQL, re-runs, failures that leave
//! the target as it was, locks, hostile names, missing databases, views and privileges.

use std::time::Instant;

use custagg::sink::postgres::staging_name;

use crate::pg::{load, server};
use crate::util::{Dir, run, sample};

fn small_file(dir: &Dir, name: &str, rows: &str) -> std::path::PathBuf {
    dir.write(
        name,
        format!("transactionId|custId|transactionDate|productSold|unitsSold\n{rows}"),
    )
}

/// Row count and an order-independent checksum of a table.
fn fingerprint(client: &mut postgres::Client, table: &str) -> (i64, String) {
    let row = client
        .query_one(
            &format!(
                "SELECT count(*), coalesce(md5(string_agg(customer_id || ',' || favourite_product || ',' \
                 || longest_streak, ';' ORDER BY customer_id)), '') FROM {table}"
            ),
            &[],
        )
        .unwrap();
    (row.get(0), row.get(1))
}

fn staging_tables(client: &mut postgres::Client) -> i64 {
    client
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname LIKE 'custagg_staging_%'",
            &[],
        )
        .unwrap()
        .get(0)
}

#[test]
fn sample_loads_with_the_known_answers() {
    let Some(sample) = sample() else { return };
    let db = server().database("sample");
    assert!(!server().database_exists(&db));
    let r = load(&sample, &db, "customers", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(server().database_exists(&db), "the database is created");
    let mut client = server().client(&db);
    for (customer, product, streak) in [
        ("0023938", "PURA250", 2),
        ("0024003", "SUPA101", 3),
        ("0023824", "PURA250", 3),
        ("0024212", "PURA100", 2),
        ("0023510", "PURA100", 1),
    ] {
        let row = client
            .query_one(
                "SELECT favourite_product, longest_streak FROM customers WHERE customer_id = $1",
                &[&customer],
            )
            .unwrap();
        assert_eq!(
            (row.get::<_, String>(0), row.get::<_, i32>(1)),
            (product.to_string(), streak)
        );
    }
    assert_eq!(fingerprint(&mut client, "customers").0, 885);

    // The shape of contract §3: types, not-null, primary key, statistics.
    let columns: Vec<(String, String, String)> = client
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text FROM information_schema.columns \
             WHERE table_name = 'customers' ORDER BY ordinal_position",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let expected = [
        ("customer_id", "text", "NO"),
        ("favourite_product", "text", "NO"),
        ("longest_streak", "integer", "NO"),
    ];
    assert_eq!(
        columns,
        expected.map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
    );
    let pkey: String = client
        .query_one(
            "SELECT pg_get_constraintdef(oid) || ' ' || conname FROM pg_constraint \
             WHERE conrelid = 'customers'::regclass AND contype = 'p'",
            &[],
        )
        .unwrap()
        .get(0);
    assert_eq!(pkey, "PRIMARY KEY (customer_id) customers_pkey");
    let analyzed: bool = client
        .query_one(
            "SELECT last_analyze IS NOT NULL OR last_autoanalyze IS NOT NULL FROM pg_stat_user_tables \
             WHERE relname = 'customers'",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(analyzed);
    assert_eq!(staging_tables(&mut client), 0);
}

#[test]
fn a_rerun_replaces_the_table_and_keeps_its_privileges() {
    let dir = Dir::new();
    let db = server().database("rerun");
    let first = small_file(&dir, "a.csv", "1|a|2011-01-01|P|1\n2|b|2011-01-01|Q|1\n");
    let r = load(&first, &db, "etl_customers", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut client = server().client(&db);
    client
        .batch_execute(
            "DROP ROLE IF EXISTS custagg_reader; CREATE ROLE custagg_reader; \
             GRANT SELECT ON etl_customers TO custagg_reader",
        )
        .unwrap();

    let second = small_file(&dir, "b.csv", "1|c|2011-01-01|R|1\n2|c|2011-01-02|R|1\n");
    let r = load(&second, &db, "etl_customers", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let rows: Vec<(String, String, i32)> = client
        .query("SELECT * FROM etl_customers ORDER BY 1", &[])
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(rows, vec![("c".to_string(), "R".to_string(), 2)]);
    let can_read: bool = client
        .query_one(
            "SELECT has_table_privilege('custagg_reader', 'etl_customers', 'SELECT')",
            &[],
        )
        .unwrap()
        .get(0);
    assert!(can_read, "privileges are granted again on the new table");
    assert_eq!(staging_tables(&mut client), 0);
    client
        .batch_execute("DROP TABLE etl_customers; DROP ROLE custagg_reader")
        .unwrap();
}

#[test]
fn a_failing_run_leaves_the_previous_table_untouched() {
    let dir = Dir::new();
    let db = server().database("failing");
    let good = small_file(&dir, "good.csv", "1|a|2011-01-01|P|1\n2|b|2011-01-01|Q|5\n");
    assert_eq!(load(&good, &db, "customers", &[]).code, 0);
    let mut client = server().client(&db);
    let before = fingerprint(&mut client, "customers");

    let bad = small_file(&dir, "bad.csv", "1|z|2011-01-01|P|1\n2|y|2011-02-30|Q|5\n");
    let r = load(&bad, &db, "customers", &[]);
    assert_eq!(r.code, 3, "{}", r.stderr);
    assert!(
        r.stderr.contains("bad.csv:3: transactionDate:"),
        "{}",
        r.stderr
    );
    assert_eq!(fingerprint(&mut client, "customers"), before);
    assert_eq!(
        staging_tables(&mut client),
        0,
        "the staging table is dropped"
    );
}

#[test]
fn a_locked_target_fails_fast_and_stays_as_it_was() {
    let dir = Dir::new();
    let db = server().database("locked");
    let good = small_file(&dir, "good.csv", "1|a|2011-01-01|P|1\n");
    assert_eq!(load(&good, &db, "customers", &[]).code, 0);
    let mut holder = server().client(&db);
    let before = fingerprint(&mut holder, "customers");
    let mut tx = holder.transaction().unwrap();
    tx.batch_execute("LOCK TABLE customers IN ACCESS SHARE MODE")
        .unwrap();

    let other = small_file(&dir, "other.csv", "1|b|2011-01-01|Q|1\n");
    let started = Instant::now();
    let r = load(&other, &db, "customers", &["--lock-timeout", "0.5"]);
    assert!(started.elapsed().as_secs() < 20);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("locked by another session"),
        "{}",
        r.stderr
    );
    tx.rollback().unwrap();
    let mut client = server().client(&db);
    assert_eq!(fingerprint(&mut client, "customers"), before);
    assert_eq!(staging_tables(&mut client), 0);
}

#[test]
fn a_hostile_table_name_is_refused_before_the_database_is_touched() {
    let dir = Dir::new();
    let db = server().database("hostile");
    let source = small_file(&dir, "in.csv", "1|a|2011-01-01|P|1\n");
    for name in ["customers; DROP TABLE x", "x\"; --", "a.b.c", "naïve"] {
        let r = load(&source, &db, name, &[]);
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert!(r.stderr.contains("is not a table name"), "{}", r.stderr);
    }
    assert!(!server().database_exists(&db), "nothing touched the server");
    // Reserved words and mixed case are fine: always quoted, folded like SQL.
    let r = load(&source, &db, "Public.Select", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut client = server().client(&db);
    assert_eq!(fingerprint(&mut client, "public.\"select\"").0, 1);
}

#[test]
fn views_on_the_target_keep_working() {
    let dir = Dir::new();
    let db = server().database("views");
    let first = small_file(&dir, "a.csv", "1|a|2011-01-01|P|1\n");
    assert_eq!(load(&first, &db, "customers", &[]).code, 0);
    let mut client = server().client(&db);
    client
        .batch_execute(
            "CREATE VIEW loyal AS SELECT customer_id FROM customers WHERE longest_streak >= 2",
        )
        .unwrap();
    let second = small_file(&dir, "b.csv", "1|b|2011-01-01|P|1\n2|b|2011-01-02|P|1\n");
    let r = load(&second, &db, "customers", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let loyal: Vec<String> = client
        .query("SELECT * FROM loyal", &[])
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(loyal, ["b"]);
    assert_eq!(staging_tables(&mut client), 0);
}

#[test]
fn a_staging_table_left_by_a_killed_run_is_dropped() {
    let dir = Dir::new();
    let db = server().database("leftover");
    let source = small_file(&dir, "in.csv", "1|a|2011-01-01|P|1\n");
    assert_eq!(load(&source, &db, "customers", &[]).code, 0);
    let mut client = server().client(&db);
    let leftover = staging_name("public.customers");
    client
        .batch_execute(&format!("CREATE TABLE {leftover} (junk int)"))
        .unwrap();
    assert_eq!(load(&source, &db, "customers", &[]).code, 0);
    assert_eq!(staging_tables(&mut client), 0);
}

#[test]
fn connection_problems_are_one_clear_line_without_the_password() {
    let dir = Dir::new();
    let source = small_file(&dir, "in.csv", "1|a|2011-01-01|P|1\n");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("postgresql://etl:hunter2@127.0.0.1:{port}/warehouse");
    let started = Instant::now();
    let r = run(&[
        "--source",
        source.to_str().unwrap(),
        "--db-url",
        &url,
        "--table",
        "customers",
    ]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(started.elapsed().as_secs() < 15);
    assert!(
        r.stderr
            .contains(&format!("cannot connect to etl@127.0.0.1:{port}/warehouse")),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);
}

#[test]
fn permission_problems_are_found_before_the_source_is_read() {
    let db = server().database("perms");
    let mut admin = server().client("postgres");
    admin
        .batch_execute("DROP ROLE IF EXISTS custagg_weak; CREATE ROLE custagg_weak LOGIN")
        .unwrap();
    admin
        .batch_execute(&format!("CREATE DATABASE {db}"))
        .unwrap();
    // The source does not exist: an error about it would mean the source was opened first.
    let mut url: postgres::Config = server().url().parse().unwrap();
    url.user("custagg_weak");
    let host = match &url.get_hosts()[0] {
        postgres::config::Host::Tcp(h) => h.clone(),
        postgres::config::Host::Unix(p) => p.display().to_string(),
    };
    let port = url.get_ports()[0].to_string();
    let base = [
        "--source",
        "/nonexistent/transactions.csv",
        "--host",
        &host,
        "--port",
        &port,
        "--user",
        "custagg_weak",
        "--table",
        "customers",
    ];

    // PostgreSQL 15 lets only the owner create in schema public.
    let mut args = base.to_vec();
    args.extend(["--database", &db]);
    let r = run(&args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("cannot create a table in schema public"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("permission denied"), "{}", r.stderr);

    // A missing database it may not create.
    let missing = server().database("perms_missing");
    let mut args = base.to_vec();
    args.extend(["--database", &missing]);
    let r = run(&args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "database {missing} does not exist and cannot be created"
        )),
        "{}",
        r.stderr
    );
    assert_eq!(r.stderr.trim().lines().count(), 1, "{}", r.stderr);

    admin.batch_execute(&format!("DROP DATABASE {db}")).unwrap();
    admin.batch_execute("DROP ROLE custagg_weak").unwrap();
}

#[test]
fn a_file_with_no_rows_loads_an_empty_table() {
    let dir = Dir::new();
    let db = server().database("empty");
    let source = small_file(&dir, "in.csv", "");
    let r = load(&source, &db, "etl.customers", &[]);
    assert_eq!(r.code, 1, "a missing schema is an error: {}", r.stderr);
    assert!(
        r.stderr.contains("schema etl does not exist"),
        "{}",
        r.stderr
    );
    server()
        .client(&db)
        .batch_execute("CREATE SCHEMA etl")
        .unwrap();
    let r = load(&source, &db, "etl.customers", &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fingerprint(&mut server().client(&db), "etl.customers").0, 0);
}
