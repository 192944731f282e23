//! `scripts/report_to_alert.py`, the monitoring example of docs/deployment.md: real runs'
//! `--report` files turned into alert payloads — ok, warning, critical by exit code, and no
//! report at all.

use std::process::Command;

use crate::util::{Dir, run};

/// The payload and the script's exit code for `report`.
fn alert(report: &std::path::Path, extra: &[&str]) -> (serde_json::Value, i32) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/report_to_alert.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(report)
        .args(["--job", "daily-customers"])
        .args(extra)
        .output()
        .unwrap();
    let payload = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (payload, out.status.code().unwrap_or(-1))
}

#[test]
fn reports_become_alerts_by_exit_code_and_figures() {
    let dir = Dir::new();
    let header = "transactionId|custId|transactionDate|productSold|unitsSold\n";
    let good = dir.write(
        "good.csv",
        format!("{header}1|a|2011-01-01|P|1\n2|b|2011-01-02|Q|2\n"),
    );
    let bad = dir.write(
        "bad.csv",
        format!("{header}1|a|2011-02-30|P|1\n2|b|2011-01-02|Q|2\n"),
    );
    let (report, out) = (dir.path("run.json"), dir.path("out.csv"));
    let custagg = |source: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["--quiet", "--source", source.to_str().unwrap()];
        args.extend(["--output", out.to_str().unwrap()]);
        args.extend(["--report", report.to_str().unwrap()]);
        args.extend_from_slice(extra);
        run(&args).code
    };

    assert_eq!(custagg(&good, &[]), 0);
    let (payload, code) = alert(&report, &["--min-customers", "2"]);
    assert_eq!(
        (payload["severity"].as_str(), code),
        (Some("ok"), 0),
        "{payload}"
    );
    assert!(
        payload["summary"]
            .as_str()
            .unwrap()
            .contains("2 customers from 2 rows")
    );
    let (payload, code) = alert(&report, &["--min-customers", "3"]);
    assert_eq!(
        (payload["severity"].as_str(), code),
        (Some("warning"), 1),
        "{payload}"
    );

    assert_eq!(custagg(&bad, &[]), 3);
    let (payload, code) = alert(&report, &[]);
    assert_eq!(
        (payload["severity"].as_str(), code),
        (Some("critical"), 1),
        "{payload}"
    );
    assert_eq!(payload["exit_status"], 3);
    assert!(
        payload["summary"].as_str().unwrap().contains("bad.csv:2"),
        "{payload}"
    );
    assert!(
        payload["action"]
            .as_str()
            .unwrap()
            .contains("bad input data")
    );

    let rejects = dir.path("rejects.csv");
    let skip = [
        "--max-bad-rows",
        "5",
        "--rejects",
        rejects.to_str().unwrap(),
    ];
    assert_eq!(custagg(&bad, &skip), 0);
    let (payload, code) = alert(&report, &[]);
    assert_eq!(
        (payload["severity"].as_str(), code),
        (Some("warning"), 1),
        "{payload}"
    );
    assert!(
        payload["summary"]
            .as_str()
            .unwrap()
            .contains("1 bad rows skipped")
    );

    let (payload, code) = alert(&dir.path("missing.json"), &[]);
    assert_eq!(
        (payload["severity"].as_str(), code),
        (Some("critical"), 1),
        "{payload}"
    );
}
