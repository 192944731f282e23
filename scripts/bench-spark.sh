#!/usr/bin/env bash
# Spark benchmark: the Spark job (spark/custagg_spark.py, local[2] and local[1]) against custagg
# (2 threads and 1) on the 1 GB set of scripts/bench.sh, in turns, in the same run; medians.
# Every result is checked with cmp against custagg's.
#
#   scripts/bench-spark.sh           # RUNS=3 by default
#   RUNS=1 scripts/bench-spark.sh
#
# Needs what scripts/spark-setup.sh installs, and /usr/bin/time. The file is made by
# `custagg generate` into data/bench/ when missing, and read from the page cache (warmed with
# cat before each run). Spark's memory is not compared: its JVM is not a child /usr/bin/time
# sees whole.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DATA=${DATA:-data/bench}
mkdir -p "$DATA"
OUT=$(mktemp -d /tmp/custagg-bench-spark-XXXXXX)
trap 'rm -rf "$OUT"' EXIT

python3 -c 'import pyspark' 2>/dev/null || { echo "needs pyspark: scripts/spark-setup.sh" >&2; exit 1; }
cargo build --release --quiet
BIN=$PWD/target/release/custagg
FILE=$DATA/1g.csv
[ -f "$FILE" ] || "$BIN" generate --quiet --rows 22000000 --customers 2000000 --seed 1 --out "$FILE"
BYTES=$(stat -c %s "$FILE")

median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
declare -A TIMES
run_once() { # NAME OUTPUT COMMAND...
    local name=$1 output=$2; shift 2
    cat "$FILE" >/dev/null
    /usr/bin/time -f "%e" -o "$OUT/time" "$@" >/dev/null 2>"$OUT/stderr" || {
        cat "$OUT/stderr" >&2; exit 1; }
    TIMES[$name]+="$(cat "$OUT/time") "
    cmp -s "$OUT/custagg.csv" "$output" || { echo "$name: result differs from custagg's" >&2; exit 1; }
}
SPARK=(python3 spark/custagg_spark.py --source "$FILE" --conf spark.driver.memory=8g)

"$BIN" --quiet --source "$FILE" --output "$OUT/custagg.csv"
for _ in $(seq "$RUNS"); do
    run_once "custagg, 2 threads" "$OUT/c2.csv" "$BIN" --quiet --threads 2 --source "$FILE" --output "$OUT/c2.csv"
    run_once "custagg, 1 thread" "$OUT/c1.csv" "$BIN" --quiet --threads 1 --source "$FILE" --output "$OUT/c1.csv"
    run_once "spark, local[2]" "$OUT/s2.csv" "${SPARK[@]}" --conf 'spark.master=local[2]' --output "$OUT/s2.csv"
    run_once "spark, local[1]" "$OUT/s1.csv" "${SPARK[@]}" --conf 'spark.master=local[1]' --output "$OUT/s1.csv"
done

echo
echo "$RUNS runs each, in turns, medians; $(nproc) cores; the file is $BYTES bytes"
printf '%-22s %9s %10s %14s\n' tool seconds "MB/s" "MB/s per core"
declare -A MED
for name in "custagg, 2 threads" "custagg, 1 thread" "spark, local[2]" "spark, local[1]"; do
    MED[$name]=$(echo "${TIMES[$name]}" | tr ' ' '\n' | grep . | median)
    cores=${name//[!0-9]/}
    awk -v n="$name" -v t="${MED[$name]}" -v b="$BYTES" -v c="$cores" \
        'BEGIN {printf "%-22s %9.3f %10.0f %14.0f\n", n, t, b/t/1e6, b/t/1e6/c}'
done
awk -v s="${MED[spark, local[2]]}" -v c="${MED[custagg, 2 threads]}" \
    'BEGIN {printf "\nSpark local[2] time / custagg 2 threads: %.1fx\n", s/c}'
echo "all results identical (cmp)"
