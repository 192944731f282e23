//! TLS to PostgreSQL against the tests' own server (`ssl=on`, a certificate for `localhost` made
//! by [`crate::pg`]): each sslmode as libpq has it, where its settings come from, certificate
//! and host checks failing before any work, a server that demands TLS, client certificates,
//! and a PostgreSQL source over TLS.

use std::path::Path;

use crate::pg::{Own, TLS_CERT, TLS_ONLY, server};
use crate::util::{Dir, Run, custagg, sample};

/// A connection string to `database` of the own server: `host` in the URL (what the certificate
/// is checked against), 127.0.0.1 the address connected to, and `params` after the `?`.
fn url(own: &Own, host: &str, database: &str, params: &str) -> String {
    format!(
        "postgresql://postgres@{host}:{port}/{database}?hostaddr=127.0.0.1&{params}",
        port = own.port
    )
}

/// Loads `source` into `table` through `db_url`, with `env` set and a HOME without
/// `~/.postgresql`, so that only what the test says is in force.
fn load(source: &Path, db_url: &str, env: &[(&str, &str)], extra: &[&str]) -> Run {
    let home = Dir::new();
    let mut cmd = custagg();
    cmd.env("HOME", home.root())
        .args(["--source", source.to_str().unwrap(), "--db-url", db_url])
        .args(["--table", "customers"])
        .args(extra);
    for (name, value) in env {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Whether the server's log says custagg's sessions to `database` were encrypted: `Some(true)`
/// when every one of them was, `Some(false)` when none was, `None` when there were none.
fn logged_encrypted(own: &Own, database: &str) -> Option<bool> {
    let log = std::fs::read_to_string(&own.log).unwrap();
    let sessions: Vec<bool> = log
        .lines()
        .filter(|l| l.contains("connection authorized"))
        .filter(|l| l.contains(&format!("database={database} ")))
        .filter(|l| l.contains("application_name=custagg"))
        .map(|l| l.contains("SSL enabled"))
        .collect();
    match (sessions.iter().all(|&s| s), sessions.iter().any(|&s| s)) {
        _ if sessions.is_empty() => None,
        (true, _) => Some(true),
        (false, false) => Some(false),
        (false, true) => panic!("some of custagg's sessions to {database} were encrypted"),
    }
}

/// One line on stderr, exit 1, naming the cause.
fn assert_fails_with(r: &Run, needle: &str) {
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(r.stderr.trim_end().lines().count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains(needle), "wanted {needle:?}: {}", r.stderr);
}

#[test]
fn require_encrypts_and_the_server_reports_it() {
    let (Some(sample), Some(own)) = (sample(), server().own()) else {
        return;
    };
    let db = server().database("tls_require");
    let r = load(
        &sample,
        &url(own, "127.0.0.1", &db, "sslmode=require"),
        &[],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("(TLS 1.3, certificate not verified)"),
        "{}",
        r.stderr
    );
    assert_eq!(logged_encrypted(own, &db), Some(true));
    let rows: i64 = server()
        .client(&db)
        .query_one("SELECT count(*) FROM customers", &[])
        .unwrap()
        .get(0);
    assert!(rows > 0);

    // prefer (the default) encrypts when the server offers it; disable never does.
    let db = server().database("tls_prefer");
    let r = load(&sample, &url(own, "127.0.0.1", &db, ""), &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("(TLS 1.3, "), "{}", r.stderr);
    assert_eq!(logged_encrypted(own, &db), Some(true));
    let db = server().database("tls_disable");
    let r = load(
        &sample,
        &url(own, "127.0.0.1", &db, "sslmode=disable"),
        &[],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("(not encrypted)"), "{}", r.stderr);
    assert_eq!(logged_encrypted(own, &db), Some(false));
}

#[test]
fn verify_full_with_the_right_authority_and_host_connects() {
    let (Some(sample), Some(own)) = (sample(), server().own()) else {
        return;
    };
    let ca = own.tls.ca.to_str().unwrap();
    let db = server().database("tls_full");
    let params = format!("sslmode=verify-full&sslrootcert={ca}");
    let r = load(&sample, &url(own, "localhost", &db, &params), &[], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("(TLS 1.3, verify-full)"), "{}", r.stderr);
    assert_eq!(logged_encrypted(own, &db), Some(true));

    // The same from libpq's variables, and --sslmode over them and over the URL: verify-ca
    // checks the authority, not the name, so 127.0.0.1 (not in the certificate) passes.
    let env = [("PGSSLMODE", "verify-full"), ("PGSSLROOTCERT", ca)];
    let r = load(&sample, &url(own, "localhost", &db, ""), &env, &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("verify-full"), "{}", r.stderr);
    let at_address = url(own, "127.0.0.1", &db, "sslmode=verify-full");
    let r = load(&sample, &at_address, &env, &["--sslmode", "verify-ca"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("(TLS 1.3, verify-ca)"), "{}", r.stderr);
}

#[test]
fn a_wrong_authority_or_host_fails_in_one_line_before_any_work() {
    let (Some(sample), Some(own)) = (sample(), server().own()) else {
        return;
    };
    let db = server().database("tls_wrong");
    let other = own.tls.other_ca.to_str().unwrap();
    let ca = own.tls.ca.to_str().unwrap();

    let params = format!("sslmode=verify-full&sslrootcert={other}");
    let r = load(&sample, &url(own, "localhost", &db, &params), &[], &[]);
    assert_fails_with(&r, "is not signed by an authority in");
    assert!(r.stderr.contains(&format!(
        "cannot connect to postgres@localhost:{}",
        own.port
    )));
    // libpq's rule: require with a root certificate checks it as verify-ca does.
    let params = format!("sslmode=require&sslrootcert={other}");
    let r = load(&sample, &url(own, "localhost", &db, &params), &[], &[]);
    assert_fails_with(&r, "is not signed by");

    let params = format!("sslmode=verify-full&sslrootcert={ca}");
    let r = load(&sample, &url(own, "127.0.0.1", &db, &params), &[], &[]);
    assert_fails_with(&r, "does not name the host");

    // Nothing was done: the database custagg would have made does not exist.
    assert!(!server().database_exists(&db));
    assert_eq!(logged_encrypted(own, &db), None);

    // A mode that verifies, with no authorities to verify against, is a usage error.
    let r = load(
        &sample,
        &url(own, "localhost", &db, "sslmode=verify-ca"),
        &[],
        &[],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("sslrootcert"), "{}", r.stderr);
}

#[test]
fn disable_against_a_server_that_demands_tls_fails_clearly() {
    let (Some(sample), Some(own)) = (sample(), server().own()) else {
        return;
    };
    let r = load(
        &sample,
        &url(own, "127.0.0.1", TLS_ONLY, "sslmode=disable"),
        &[],
        &[],
    );
    assert_fails_with(&r, "no encryption");
    assert!(r.stderr.contains("sslmode=disable forbids"), "{}", r.stderr);
    assert!(
        r.stderr.contains("pg_hba.conf rejects connection"),
        "{}",
        r.stderr
    );
    let r = load(
        &sample,
        &url(own, "127.0.0.1", TLS_ONLY, "sslmode=require"),
        &[],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_client_certificate_authenticates() {
    let (Some(sample), Some(own)) = (sample(), server().own()) else {
        return;
    };
    let tls = &own.tls;
    let base = format!("sslmode=verify-full&sslrootcert={}", tls.ca.display());
    let r = load(&sample, &url(own, "localhost", TLS_CERT, &base), &[], &[]);
    assert_fails_with(&r, "certificate");

    let with_cert = format!(
        "{base}&sslcert={}&sslkey={}",
        tls.client_cert.display(),
        tls.client_key.display()
    );
    let r = load(
        &sample,
        &url(own, "localhost", TLS_CERT, &with_cert),
        &[],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);

    // A key others may read is refused, as libpq refuses it.
    use std::os::unix::fs::PermissionsExt;
    let dir = Dir::new();
    let open_key = dir.write("open.key", std::fs::read(&tls.client_key).unwrap());
    std::fs::set_permissions(&open_key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let env = [
        ("PGSSLCERT", tls.client_cert.to_str().unwrap()),
        ("PGSSLKEY", open_key.to_str().unwrap()),
    ];
    let r = load(&sample, &url(own, "localhost", TLS_CERT, &base), &env, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("chmod 0600"), "{}", r.stderr);
}

#[test]
fn a_postgresql_source_uses_the_same_settings() {
    let (Some(sample), Some(own)) = (sample(), server().own()) else {
        return;
    };
    let db = server().database("tls_source");
    let dir = Dir::new();
    let plain = dir.path("plain.csv");
    let out = |name: &str| dir.path(name).to_str().unwrap().to_string();
    let r = crate::util::run(&[
        "--source",
        sample.to_str().unwrap(),
        "--output",
        &out("plain.csv"),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The sample, as a table of the server, read back through TLS.
    let r = load(
        &sample,
        &url(own, "127.0.0.1", &db, "sslmode=require"),
        &[],
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let query = "SELECT customer_id AS custId, '2026-01-01' AS transactionDate, \
                 favourite_product AS productSold, 1 AS unitsSold FROM customers";
    let ca = own.tls.ca.display();
    let source = url(
        own,
        "localhost",
        &db,
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let run = |source: &str, extra: &[&str]| {
        let home = Dir::new();
        let mut cmd = custagg();
        cmd.env("HOME", home.root())
            .args(["--source-query", query, "--source-db-url", source])
            .args(["--output", &out("from-pg.csv")])
            .args(extra);
        cmd.output().unwrap()
    };
    let o = run(&source, &[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rows = std::fs::read_to_string(dir.path("from-pg.csv")).unwrap();
    let customers = std::fs::read_to_string(&plain).unwrap().lines().count();
    assert_eq!(rows.lines().count(), customers);

    // The wrong authority fails before anything is read; --sslmode reaches the source too.
    let wrong = url(
        own,
        "localhost",
        &db,
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            own.tls.other_ca.display()
        ),
    );
    let o = run(&wrong, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is not signed by"));
    let at_address = url(own, "127.0.0.1", &db, &format!("sslrootcert={ca}"));
    let o = run(&at_address, &["--sslmode", "verify-full"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("does not name the host"));
    assert!(
        run(&at_address, &["--sslmode", "verify-ca"])
            .status
            .success()
    );
}
