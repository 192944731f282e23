#!/usr/bin/env bash
# The load phase against psql, side by side on one throwaway server (issue 3's speed check).
#
# custagg's load phase is the time its COPY spends sending and finishing (it runs while the
# partitions reduce) plus the primary key, ANALYZE and the swap after the reduce, as its summary
# line reports them. The peer is `psql -c "\copy ... (FORMAT csv)"` of the very same rows into a
# fresh table that has the same primary key. Each side runs RUNS times; medians are printed.
#
#   scripts/bench-load.sh            # 22,000,000 rows, 2,000,000 customers (the 1 GB set)
#   CUSTOMERS=200000 RUNS=3 scripts/bench-load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

CUSTOMERS=${CUSTOMERS:-2000000}
ROWS=${ROWS:-$((CUSTOMERS * 11))}
RUNS=${RUNS:-5}
DATA=${DATA:-data/bench}
mkdir -p "$DATA"
SOURCE="$DATA/load-$ROWS-$CUSTOMERS.csv"

cargo build --release --quiet
BIN=./target/release/custagg
[ -f "$SOURCE" ] || $BIN generate --rows "$ROWS" --customers "$CUSTOMERS" --seed 1 --out "$SOURCE"
ROWS_CSV=$(mktemp /tmp/custagg-rows-XXXXXX.csv)
chmod 644 "$ROWS_CSV"
$BIN --quiet --source "$SOURCE" --output "$ROWS_CSV"

pg_start
PSQL=("$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PGDIR" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE bench"

median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
now() { date +%s.%N; }

custagg_load=()
custagg_wall=()
psql_copy=()
for i in $(seq "$RUNS"); do
    start=$(now)
    summary=$($BIN --source "$SOURCE" --host "$PGDIR" --user postgres --database bench \
        --table customers 2>&1)
    end=$(now)
    write=$(grep -oE 'write +[0-9.]+ s' <<<"$summary" | grep -oE '[0-9.]+')
    copy=$(grep -oE 'COPY +[0-9.]+ s' <<<"$summary" | grep -oE '[0-9.]+')
    custagg_load+=("$(awk "BEGIN {print $write + $copy}")")
    custagg_wall+=("$(awk "BEGIN {print $end - $start}")")

    "${PSQL[@]}" -d bench -c "DROP TABLE IF EXISTS peer; CREATE TABLE peer (customer_id text PRIMARY KEY, favourite_product text NOT NULL, longest_streak integer NOT NULL)"
    start=$(now)
    "${PSQL[@]}" -d bench -c "\\copy peer FROM '$ROWS_CSV' (FORMAT csv, HEADER)"
    end=$(now)
    psql_copy+=("$(awk "BEGIN {print $end - $start}")")
done
count=$("${PSQL[@]}" -d bench -At -c "SELECT count(*) FROM customers")
same=$("${PSQL[@]}" -d bench -At -c "SELECT count(*) = 0 FROM ((TABLE customers EXCEPT TABLE peer) UNION ALL (TABLE peer EXCEPT TABLE customers)) d")
rm -f "$ROWS_CSV"

echo
echo "source: $SOURCE ($ROWS rows, $count customers loaded; same rows as psql's: $same)"
echo "runs: $RUNS, medians"
printf '%-58s %10s\n' "what" "seconds"
printf '%-58s %10s\n' "custagg load phase (COPY + primary key + ANALYZE + swap)" "$(printf '%s\n' "${custagg_load[@]}" | median)"
printf '%-58s %10s\n' "psql \\copy (FORMAT csv) into a table with the primary key" "$(printf '%s\n' "${psql_copy[@]}" | median)"
printf '%-58s %10s\n' "custagg whole run, source to committed table (wall)" "$(printf '%s\n' "${custagg_wall[@]}" | median)"
