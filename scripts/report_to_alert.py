#!/usr/bin/env python3
"""Turns custagg's --report JSON into an alert payload for the daily pipeline's notifications.

    custagg ... --report run.json; python3 scripts/report_to_alert.py run.json --job daily-customers

Prints one JSON object on stdout — the shape of an Amazon SNS/EventBridge message that a Slack,
e-mail or PagerDuty subscription forwards — and exits 0 when no one needs to act, 1 when the
payload is an alert (so a scheduler step can gate on it):

    {"severity": "critical" | "warning" | "ok", "job": ..., "summary": one line,
     "exit_status": ..., "action": what to do, "figures": {...}}

Rules (docs/deployment.md, "Monitoring"): exit 1 (database, I/O) is critical and retried by the
scheduler first; exit 2 (configuration) is critical and not retried; exit 3 (bad input data) is
critical: the day's files must be fixed or skipped by hand; a run that skipped bad rows
(--max-bad-rows) is a warning, as is one with fewer customers than --min-customers, or one that
took longer than --max-seconds. Anything else is ok.
"""

import argparse
import json
import sys

ACTIONS = {
    1: "runtime failure (database or I/O): the target is unchanged; the scheduler retries, "
       "then look at the database's health and the job's log",
    2: "configuration error: fix the job definition (flags, environment, secrets); retrying "
       "will not help",
    3: "bad input data: the target is unchanged; fix or quarantine the day's files named in "
       "the error, then rerun",
}


def alert(report, job, min_customers=None, max_seconds=None):
    status = report.get("exit_status")
    figures = {
        "rows_read": report.get("rows_read"),
        "rows_rejected": report.get("rows_rejected"),
        "customers": report.get("customers"),
        "seconds": (report.get("seconds") or {}).get("total"),
        "peak_memory_bytes": report.get("peak_memory_bytes"),
        "encryption": report.get("encryption"),
    }
    payload = {"job": job, "exit_status": status, "figures": figures}
    if status != 0:
        payload.update(severity="critical",
                       summary=f"{job} failed (exit {status}): {report.get('error')}",
                       action=ACTIONS.get(status, "unknown exit status: read the job's log"))
        return payload
    warnings = []
    if figures["rows_rejected"]:
        warnings.append(f"{figures['rows_rejected']} bad rows skipped (see the rejects file)")
    if min_customers is not None and (figures["customers"] or 0) < min_customers:
        warnings.append(f"only {figures['customers']} customers (expected at least "
                        f"{min_customers})")
    if max_seconds is not None and (figures["seconds"] or 0) > max_seconds:
        warnings.append(f"took {figures['seconds']:.0f} s (budget {max_seconds:.0f} s)")
    if warnings:
        payload.update(severity="warning", summary=f"{job} loaded, but " + "; ".join(warnings),
                       action="look at the day's input before the next run")
    else:
        payload.update(severity="ok", summary=f"{job} loaded {figures['customers']} customers "
                       f"from {figures['rows_read']} rows in {figures['seconds']:.1f} s",
                       action=None)
    return payload


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("report", help="the file custagg --report wrote")
    parser.add_argument("--job", default="custagg", help="the job's name in the alert")
    parser.add_argument("--min-customers", type=int, help="warn below this many customers")
    parser.add_argument("--max-seconds", type=float, help="warn when the run took longer")
    args = parser.parse_args(argv)
    try:
        with open(args.report, encoding="utf-8") as f:
            report = json.load(f)
    except (OSError, ValueError) as e:
        # No report at all is itself an alert: the job died before writing it (killed, OOM).
        report = {"exit_status": None, "error": f"no readable report {args.report}: {e}"}
    payload = alert(report, args.job, args.min_customers, args.max_seconds)
    json.dump(payload, sys.stdout, indent=2)
    print()
    return 0 if payload["severity"] == "ok" else 1


if __name__ == "__main__":
    sys.exit(main())
