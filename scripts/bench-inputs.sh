#!/usr/bin/env bash
# Inputs benchmark: the 1 GB set (22,000,000 rows, 2,000,000 customers, as scripts/bench.sh
# makes it) as 16 gzip files, as 16 zstd files and as one Parquet file; custagg against DuckDB
# reading the same files, in turns, and against the decompression floor: `zcat` (`zstdcat`) of
# the same files to /dev/null in two processes.
#
#   scripts/bench-inputs.sh          # RUNS=3 by default
#   RUNS=5 scripts/bench-inputs.sh
#
# Needs the duckdb Python package, gzip, zstd and /usr/bin/time. The files are made once into
# data/bench/inputs/ (gzip -6 and zstd -3, the tools' defaults; Parquet by `custagg generate
# --format parquet` with the 1 GB set's seed and counts, so the same rows). Every result is
# checked with cmp against custagg's on the plain file.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DATA=${DATA:-data/bench}
SETS=$DATA/inputs
OUT=$(mktemp -d /tmp/custagg-bench-inputs-XXXXXX)
trap 'rm -rf "$OUT"' EXIT

python3 -c 'import duckdb' 2>/dev/null || { echo "needs the duckdb Python package: pip install duckdb" >&2; exit 1; }
for tool in gzip zstd zcat zstdcat /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "needs $tool" >&2; exit 1; }
done
cargo build --release --quiet
BIN=$PWD/target/release/custagg

mkdir -p "$SETS/gz" "$SETS/zst"
PLAIN=$DATA/1g.csv
[ -f "$PLAIN" ] || "$BIN" generate --quiet --rows 22000000 --customers 2000000 --seed 1 --out "$PLAIN"
if [ ! -f "$SETS/gz/part-15.csv.gz" ] || [ ! -f "$SETS/zst/part-15.csv.zst" ]; then
    echo "(splitting $PLAIN into 16 files, gzip and zstd)" >&2
    rm -f "$SETS"/gz/* "$SETS"/zst/*
    header=$(head -1 "$PLAIN")
    tail -n +2 "$PLAIN" | split -n r/16 -d -a 2 --additional-suffix=.csv - "$OUT/part-"
    for f in "$OUT"/part-*.csv; do
        name=$(basename "$f")
        { echo "$header"; cat "$f"; } >"$OUT/h-$name" && rm "$f"
    done
    printf '%s\n' "$OUT"/h-part-*.csv | xargs -P 2 -I{} sh -c \
        'n=$(basename {} | sed s/^h-//); gzip -6 -c {} > '"$SETS"'/gz/$n.gz; zstd -q -3 -c {} > '"$SETS"'/zst/$n.zst; rm {}'
fi
PARQUET=$SETS/1g.parquet
[ -f "$PARQUET" ] || "$BIN" generate --quiet --format parquet --rows 22000000 --customers 2000000 --seed 1 --out "$PARQUET"

median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }
declare -A TIMES RSSES
run_once() { # NAME COMMAND...
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$OUT/time" "$@" >/dev/null 2>"$OUT/stderr" || {
        cat "$OUT/stderr" >&2; exit 1; }
    read -r t m <"$OUT/time"
    TIMES[$name]+="$t "; RSSES[$name]+="$m "
}
warm() { cat "$@" >/dev/null; }

# The benchmarks' query (scripts/duckdb-query.py, as scripts/bench.sh runs it) over each set.
QUERY=$PWD/scripts/duckdb-query.py
GZ_FROM="read_csv('$SETS/gz/*.csv.gz', delim = '|', header = true, all_varchar = true)"
ZST_FROM="read_csv('$SETS/zst/*.csv.zst', delim = '|', header = true, all_varchar = true, compression = 'zstd')"
PARQUET_FROM="read_parquet('$PARQUET')"

"$BIN" --quiet --source "$PLAIN" --output "$OUT/plain.csv"
GZ=("$SETS"/gz/*.csv.gz)
ZST=("$SETS"/zst/*.csv.zst)
for _ in $(seq "$RUNS"); do
    warm "${GZ[@]}"
    run_once "zcat, 2 processes (floor)" sh -c 'printf "%s\n" "$@" | xargs -P 2 -n 8 zcat >/dev/null' _ "${GZ[@]}"
    run_once "custagg, 16 gzip" "$BIN" --quiet --source "$SETS/gz" --output "$OUT/custagg-gz.csv"
    run_once "duckdb, 16 gzip" python3 "$QUERY" "$GZ_FROM" "$OUT/duckdb-gz.csv"
    warm "${ZST[@]}"
    run_once "zstdcat, 2 processes (floor)" sh -c 'printf "%s\n" "$@" | xargs -P 2 -n 8 zstdcat -q >/dev/null' _ "${ZST[@]}"
    run_once "custagg, 16 zstd" "$BIN" --quiet --source "$SETS/zst" --output "$OUT/custagg-zst.csv"
    run_once "duckdb, 16 zstd" python3 "$QUERY" "$ZST_FROM" "$OUT/duckdb-zst.csv"
    warm "$PARQUET"
    run_once "custagg, Parquet" "$BIN" --quiet --source "$PARQUET" --output "$OUT/custagg-parquet.csv"
    run_once "duckdb, Parquet" python3 "$QUERY" "$PARQUET_FROM" "$OUT/duckdb-parquet.csv"
    warm "$PLAIN"
    run_once "custagg, plain file" "$BIN" --quiet --source "$PLAIN" --output "$OUT/custagg-plain.csv"
done
for f in custagg-gz custagg-zst custagg-parquet custagg-plain duckdb-gz duckdb-zst duckdb-parquet; do
    cmp -s "$OUT/plain.csv" "$OUT/$f.csv" || { echo "$f: the result differs from custagg's on the plain file" >&2; exit 1; }
done

size() { du -cb "$@" | tail -1 | cut -f1; }
printf '\n%s runs each, in turns, medians; 2 threads; the text is %s bytes\n' "$RUNS" "$(stat -c %s "$PLAIN")"
printf '%-30s %14s %9s %12s %11s\n' tool "input bytes" seconds "peak RSS MB" "text MB/s"
for name in "zcat, 2 processes (floor)" "custagg, 16 gzip" "duckdb, 16 gzip" \
    "zstdcat, 2 processes (floor)" "custagg, 16 zstd" "duckdb, 16 zstd" \
    "custagg, Parquet" "duckdb, Parquet" "custagg, plain file"; do
    case $name in
        *gzip*|zcat*) bytes=$(size "${GZ[@]}") ;;
        *zstd*) bytes=$(size "${ZST[@]}") ;;
        *Parquet*) bytes=$(stat -c %s "$PARQUET") ;;
        *) bytes=$(stat -c %s "$PLAIN") ;;
    esac
    t=$(printf '%s\n' ${TIMES[$name]} | median)
    m=$(printf '%s\n' ${RSSES[$name]} | median)
    awk -v n="$name" -v b="$bytes" -v t="$t" -v m="$m" -v text="$(stat -c %s "$PLAIN")" \
        'BEGIN {printf "%-30s %14d %9.3f %12.0f %11.0f\n", n, b, t, m/1024, text/t/1e6}'
    printf -v "T_${name//[^a-zA-Z0-9]/_}" '%s' "$t"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
echo
echo "DuckDB's time / custagg's: gzip $(ratio "$T_duckdb__16_gzip" "$T_custagg__16_gzip")x," \
    "zstd $(ratio "$T_duckdb__16_zstd" "$T_custagg__16_zstd")x, Parquet $(ratio "$T_duckdb__Parquet" "$T_custagg__Parquet")x (target: 3x or more)"
echo "custagg's time / zcat's: $(ratio "$T_custagg__16_gzip" "$T_zcat__2_processes__floor_")x (target: 1.3x or less);" \
    "zstd: $(ratio "$T_custagg__16_zstd" "$T_zstdcat__2_processes__floor_")x of zstdcat's"
echo "all results identical (cmp)"
