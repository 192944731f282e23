#!/usr/bin/env python3
"""Measures the incremental state's size in three layouts (docs/incremental.md).

Reads the `bytea` states of a table loaded with --mode incremental and stores the same content
as (a) one row a customer with arrays, (b) one row per customer and product plus one row per run
of days; prints each layout's size on disk beside the bytea table's.

    python3 scripts/state-layouts.py 'host=/tmp/custagg-pg-XXXX user=postgres dbname=bench' daily
"""
import sys

import psycopg


def varint(b, i):
    v, shift = 0, 0
    while True:
        x = b[i]
        i += 1
        v |= (x & 0x7F) << shift
        if x < 0x80:
            return v, i
        shift += 7


def unzigzag(v):
    return (v >> 1) ^ -(v & 1)


def decode(b):
    assert b[0] == 1
    i = 1
    n, i = varint(b, i)
    totals = []
    for _ in range(n):
        length = b[i]
        code = bytes(b[i + 1 : i + 1 + length]).decode()
        i += 1 + length
        t, i = varint(b, i)
        totals.append((code, unzigzag(t)))
    m, i = varint(b, i)
    runs, end = [], None
    for _ in range(m):
        gap, i = varint(b, i)
        start = unzigzag(gap) if end is None else end + gap
        length, i = varint(b, i)
        runs.append((start, length))
        end = start + length
    return totals, runs


def main():
    dsn, table = sys.argv[1], sys.argv[2]
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS layout_arrays, layout_products, layout_runs")
        conn.execute(
            "CREATE TABLE layout_arrays (customer_id text PRIMARY KEY, products text[] NOT NULL, "
            "units bigint[] NOT NULL, run_starts int4[] NOT NULL, run_lengths int4[] NOT NULL)"
        )
        conn.execute(
            "CREATE TABLE layout_products (customer_id text, product text, units bigint, "
            "PRIMARY KEY (customer_id, product))"
        )
        conn.execute(
            "CREATE TABLE layout_runs (customer_id text, start int4, length int4, "
            "PRIMARY KEY (customer_id, start))"
        )
        states = conn.execute(f'SELECT customer_id, state FROM "{table}_custagg_state"').fetchall()
        with conn.cursor() as cur:
            with cur.copy("COPY layout_arrays FROM STDIN") as copy:
                for customer, state in states:
                    totals, runs = decode(state)
                    copy.write_row((customer, [c for c, _ in totals], [t for _, t in totals],
                                    [s for s, _ in runs], [n for _, n in runs]))
            with cur.copy("COPY layout_products FROM STDIN") as copy:
                for customer, state in states:
                    for code, total in decode(state)[0]:
                        copy.write_row((customer, code, total))
            with cur.copy("COPY layout_runs FROM STDIN") as copy:
                for customer, state in states:
                    for start, length in decode(state)[1]:
                        copy.write_row((customer, start, length))
        conn.execute("VACUUM ANALYZE layout_arrays, layout_products, layout_runs")
        size = lambda t: conn.execute("SELECT pg_total_relation_size(%s)", (t,)).fetchone()[0]
        rows = lambda t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        state = f"{table}_custagg_state"
        print(f"customers: {len(states)}")
        for name, tables in [
            ("bytea, a row a customer (custagg)", [state]),
            ("arrays, a row a customer", ["layout_arrays"]),
            ("a row per product and per run", ["layout_products", "layout_runs"]),
        ]:
            total = sum(size(t) for t in tables)
            print(f"| {name} | {sum(rows(t) for t in tables):,} | {total / 1e6:,.1f} MB | "
                  f"{total / len(states):.0f} B |")
        conn.execute("DROP TABLE layout_arrays, layout_products, layout_runs")


main()
