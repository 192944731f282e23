"""The benchmarks' DuckDB query: the result custagg computes, in SQL, written as CSV.

    python3 scripts/duckdb-query.py FROM_CLAUSE OUTPUT.csv

FROM_CLAUSE is what the rows are read from, e.g. "read_csv('in.csv', delim = '|', header =
true, all_varchar = true)" or "read_parquet('in.parquet')". scripts/bench.sh and
scripts/bench-inputs.sh both run it, so that every comparison with DuckDB is the same query.
"""
import sys

import duckdb

source, output = sys.argv[1], sys.argv[2]
duckdb.sql(f"""
COPY (
  WITH t AS (
    SELECT custId AS c, productSold AS p, CAST(transactionDate AS DATE) AS d,
           CAST(unitsSold AS INTEGER) AS u
    FROM {source}),
  totals AS (SELECT c, p, sum(u::BIGINT) AS s FROM t GROUP BY c, p),
  fav AS (SELECT c, p FROM (SELECT c, p, row_number() OVER (PARTITION BY c ORDER BY s DESC, p) AS rn
                             FROM totals) WHERE rn = 1),
  days AS (SELECT DISTINCT c, d FROM t),
  runs AS (SELECT c, d - CAST(row_number() OVER (PARTITION BY c ORDER BY d) AS INTEGER) AS g FROM days),
  streak AS (SELECT c, max(n) AS s FROM (SELECT c, g, count(*) AS n FROM runs GROUP BY c, g) GROUP BY c)
  SELECT fav.c AS customer_id, fav.p AS favourite_product, streak.s AS longest_streak
  FROM fav JOIN streak USING (c) ORDER BY customer_id
) TO '{output}' (HEADER, DELIMITER ',')""")
