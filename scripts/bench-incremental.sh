#!/usr/bin/env bash
# Incremental loads against a full replace, on one throwaway PostgreSQL 15 server (issue 21).
#
# The history is the 1 GB set (22,000,000 rows, 2,000,000 customers), loaded once with
# --mode incremental into `daily`. Then, in turns, RUNS times each: a full `--mode replace`
# run of the whole history into `full`, and one new day of 1 % (220,000 rows of the same
# customers; a different seed each run, so each is a new file) loaded incrementally into
# `daily`. Medians of the wall times and peak RSS (/usr/bin/time); the ratio is the target's.
# At the end `daily` is checked against a replace over the history and every day. The server
# is set up for daily writes as one of its own would be: shared_buffers=4GB (a sixth of this
# machine's memory; the 128 MB default makes every probe of a 2.7 GB state a buffer miss),
# wal_compression=lz4 and max_wal_size=16GB (a day's rewritten pages are mostly full-page images
# in the WAL after a checkpoint); PG_EXTRA_OPTIONS overrides them.
#
#   scripts/bench-incremental.sh
#   RUNS=5 MEMORY_LIMIT=256MB scripts/bench-incremental.sh
#   BIG=1 scripts/bench-incremental.sh   # the 10 GB history (200 M rows, 20 M customers)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
PG_EXTRA_OPTIONS=${PG_EXTRA_OPTIONS:--c shared_buffers=4GB -c wal_compression=lz4 -c max_wal_size=16GB}

RUNS=${RUNS:-3}
DATA=${DATA:-data/bench}
DAY_ROWS=${DAY_ROWS:-220000}
MEMORY=()
[ -n "${MEMORY_LIMIT:-}" ] && MEMORY=(--memory-limit "$MEMORY_LIMIT")
mkdir -p "$DATA"
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
cargo build --release --quiet
BIN=$PWD/target/release/custagg
if [ -n "${BIG:-}" ]; then
    HISTORY=$DATA/10g.csv ROWS=200000000 CUSTOMERS=20000000
else
    HISTORY=$DATA/1g.csv ROWS=22000000 CUSTOMERS=2000000
fi
[ -f "$HISTORY" ] || "$BIN" generate --quiet --rows $ROWS --customers $CUSTOMERS --seed 1 --out "$HISTORY"
DAYS=()
for i in $(seq "$RUNS"); do
    day=$DATA/day-$DAY_ROWS-of-$CUSTOMERS-seed$((i + 1)).csv
    [ -f "$day" ] || "$BIN" generate --quiet --rows "$DAY_ROWS" --customers $CUSTOMERS --seed $((i + 1)) --out "$day"
    DAYS+=("$day")
done
cat "$HISTORY" "${DAYS[@]}" >/dev/null

pg_start
PSQL=("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PGDIR" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"
LOAD=("$BIN" --host "$PGDIR" --user postgres --database bench "${MEMORY[@]}")
median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
# timed LABEL command...: appends "seconds kB" to $OUT/LABEL, keeps custagg's stderr in $OUT/LABEL.err
OUT=$(mktemp -d /tmp/custagg-bench-inc-XXXXXX)
timed() {
    local label=$1; shift
    /usr/bin/time -f '%e %M' -o "$OUT/time" "$@" 2>"$OUT/$label.err"
    cat "$OUT/time" >>"$OUT/$label"
}

timed history "${LOAD[@]}" --table daily --mode incremental --source "$HISTORY"
echo "history, loaded incrementally: $(cat "$OUT/history") (s, peak kB)"
grep -E 'merged|total' "$OUT/history.err" | sed 's/^/  /'
for i in $(seq "$RUNS"); do
    timed replace "${LOAD[@]}" --table full --source "$HISTORY"
    timed day "${LOAD[@]}" --table daily --mode incremental --source "${DAYS[$((i - 1))]}"
done
grep -E 'merged|total|write' "$OUT/day.err" | sed 's/^/  last day: /'
echo "each replace: $(awk "{print \$1}" "$OUT/replace" | tr "\n" " "); each day: $(awk "{print \$1}" "$OUT/day" | tr "\n" " ")"
replace_s=$(awk '{print $1}' "$OUT/replace" | median)
day_s=$(awk '{print $1}' "$OUT/day" | median)
replace_mb=$(awk '{print $2 / 1000}' "$OUT/replace" | median)
day_mb=$(awk '{print $2 / 1000}' "$OUT/day" | median)

# PostgreSQL's own floor for a day, without custagg: the last day's customers (in a temporary
# table, sorted, as custagg's delta is) joined to the stored states by the key, and the same
# join updating each state to itself, in a transaction rolled back (so nothing changes). These
# are the rows a day must read and write in its one transaction; they leave out the client's
# merge, the target's rows, the ledger and the commit, so a day cannot cost less than them.
floor_ms() { # SQL: the median Execution Time of EXPLAIN ANALYZE over RUNS tries, in ms
    for _ in $(seq "$RUNS"); do
        "${PSQL[@]}" -d bench <<SQL | awk '/Execution Time/ {print $3}'
SET temp_buffers = '64MB';
CREATE TEMPORARY TABLE d (customer_id text NOT NULL);
\copy d FROM '$OUT/day-customers'
SET enable_hashjoin = off; SET enable_mergejoin = off; SET jit = off;
BEGIN;
EXPLAIN (ANALYZE, TIMING OFF) $1;
ROLLBACK;
SQL
    done | median
}
tail -n +2 "${DAYS[-1]}" | cut -d'|' -f2 | LC_ALL=C sort -u >"$OUT/day-customers"
day_customers=$(wc -l <"$OUT/day-customers")
probe_ms=$(floor_ms "SELECT count(*), sum(length(s.state)) FROM d JOIN daily_custagg_state s USING (customer_id)")
update_ms=$(floor_ms "UPDATE daily_custagg_state s SET state = s.state FROM d WHERE s.customer_id = d.customer_id")

SOURCES=(--source "$HISTORY")
for day in "${DAYS[@]}"; do SOURCES+=(--source "$day"); done
"${LOAD[@]}" --quiet --table checked "${SOURCES[@]}"
same=$("${PSQL[@]}" -d bench -c "SELECT count(*) = 0 FROM ((TABLE daily EXCEPT TABLE checked) UNION ALL (TABLE checked EXCEPT TABLE daily)) d")
state=$("$BIN" state --host "$PGDIR" --user postgres --database bench --table daily | head -1)

echo
echo "history: $HISTORY; days: $RUNS files of $DAY_ROWS rows; ${MEMORY_LIMIT:-default} memory limit; server $PG_EXTRA_OPTIONS"
printf '| run | seconds (median of %s) | peak RSS MB |\n|---|---|---|\n' "$RUNS"
printf '| full replace of the history | %s | %s |\n' "$replace_s" "$replace_mb"
printf '| a day of %s rows, incremental | %s | %s |\n' "$DAY_ROWS" "$day_s" "$day_mb"
awk -v d="$day_s" -v r="$replace_s" 'BEGIN {printf "day / replace: %.1f %% (target: at most 10 %%)\n", 100 * d / r}'
awk -v p="$probe_ms" -v u="$update_ms" -v r="$replace_s" -v n="$day_customers" 'BEGIN {
    printf "PostgreSQL alone, the last day'"'"'s %d customers: probing their states %.3f s, probing and updating them %.3f s (%.1f %% of the replace)\n",
        n, p / 1000, u / 1000, 100 * u / 1000 / r}'
echo "daily equals a replace over the history and every day: $same"
echo "$state"
rm -rf "$OUT"
