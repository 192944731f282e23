#!/usr/bin/env bash
# Whole-run benchmark: custagg against DuckDB on the same generated file, several runs, medians.
#
#   scripts/bench.sh                # the 1 GB set: 22,000,000 rows, 2,000,000 customers
#   RUNS=5 scripts/bench.sh
#   BIG=1 scripts/bench.sh          # also the 10 GB out-of-core run (200 M rows, 20 M customers)
#   SHAPES=1 scripts/bench.sh       # also six 1 GB files of other shapes from `custagg generate`
#                                   # (skewed customers, clustered days, a large catalogue, long
#                                   # ids, many duplicates), each against DuckDB and the targets
#   SKEWED_10G=1 scripts/bench.sh   # also 10 GB of the skewed shape (200 M rows, 20 M customers)
#                                   # with --memory-limit 256MB and in memory, against the 1 GB
#                                   # skewed file's, the two in turns
#   TEXT_SHAPES=1 scripts/bench.sh  # also 4 M-row files of other text: every field quoted, rows
#                                   # in date order, 3 rows in 10 from one customer, UUID ids, 15
#                                   # columns, a 100,000-code catalogue (against DuckDB)
#
# Needs the duckdb Python package (pip install duckdb; polars too, if installed) and /usr/bin/time. Data sets are made with
# `custagg generate` into data/bench/ when missing. Every tool computes the same result (checked
# with cmp against custagg's output); wc -l on the same file is the floor of reading it, custagg
# parsing the file and dropping the rows (the hidden --parse-only) is custagg's own floor, and
# DuckDB reading the file without the aggregation is DuckDB's.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=${RUNS:-3}
DATA=${DATA:-data/bench}
mkdir -p "$DATA"
OUT=$(mktemp -d /tmp/custagg-bench-XXXXXX)
trap 'unpin; rm -rf "$OUT"' EXIT

python3 -c 'import duckdb' 2>/dev/null || { echo "needs the duckdb Python package: pip install duckdb" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (Debian package time)" >&2; exit 1; }
cargo build --release --quiet
BIN=$PWD/target/release/custagg
# "In memory": the default limit (a quarter of RAM) given explicitly, so that every partition is
# kept (without the flag the store keeps 64 MiB and spills the rest).
IN_MEMORY=(--memory-limit "$(awk '/^MemTotal:/ {print int($2 / 4)}' /proc/meminfo)KiB")

dataset() { # rows customers name
    local file="$DATA/$3.csv"
    [ -f "$file" ] || "$BIN" generate --rows "$1" --customers "$2" --seed 1 --out "$file" >&2
    echo "$file"
}

# pin FILE: keeps FILE in the page cache until the script ends (mlock of a read-only map, in a
# helper process), when it is less than half of the available memory. This machine's kernel pages
# out memory it takes for cold (DAMON reclaim), file pages included, so "warm cache" runs would
# otherwise read parts of the file from disk again; locking keeps the condition true for every
# tool alike. Root (or CAP_IPC_LOCK) is needed; without it the runs go on with `cat` warming only.
PINS=()
pin() {
    local size avail
    size=$(stat -c %s "$1")
    avail=$(awk '/MemAvailable/ {printf "%.0f", $2 * 1024}' /proc/meminfo)
    [ "$size" -lt $((avail / 2)) ] || { echo "(not pinning $1: too big for this machine's memory)" >&2; return; }
    python3 - "$1" <<'PY' &
import ctypes, os, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long]
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
PROT_READ, MAP_SHARED = 1, 1
addr = libc.mmap(None, size, PROT_READ, MAP_SHARED, fd, 0)
if libc.mlock(ctypes.c_void_p(addr), ctypes.c_size_t(size)) != 0:
    print(f"(cannot pin {sys.argv[1]}: {os.strerror(ctypes.get_errno())}; warming with cat only)", file=sys.stderr)
    sys.exit(0)
print(f"(pinned {sys.argv[1]} in the page cache)", file=sys.stderr)
signal.pause()
PY
    PINS+=($!)
    sleep 1
    while [ "$(fincore -nbo RES "$1" 2>/dev/null || echo "$size")" -lt "$size" ] && kill -0 "${PINS[-1]}" 2>/dev/null; do
        sleep 1 # mlock reads the whole file in first
    done
}
unpin() {
    [ ${#PINS[@]} -eq 0 ] || { kill "${PINS[@]}" 2>/dev/null; wait "${PINS[@]}" 2>/dev/null; } || true
    PINS=()
}

median() { sort -g | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.3f", m}'; }

# run_once NAME COMMAND...: one timed run, added to NAME's wall seconds and peak RSS (KB).
declare -A TIMES RSSES TIME RSS
run_once() {
    local name=$1; shift
    # The page cache of this shared machine loses some of the file between runs: warm it.
    [ -z "${WARM:-}" ] || cat "$WARM" >/dev/null
    /usr/bin/time -f "%e %M" -o "$OUT/time" "$@" >/dev/null 2>"$OUT/stderr" || {
        cat "$OUT/stderr" >&2; exit 1; }
    read -r t m <"$OUT/time"
    TIMES[$name]+="$t "; RSSES[$name]+="$m "
}
# medians NAME...: records the medians of each NAME's runs.
medians() {
    local name
    for name; do
        TIME[$name]=$(printf '%s\n' ${TIMES[$name]} | median)
        RSS[$name]=$(printf '%s\n' ${RSSES[$name]} | median)
    done
}
# run NAME COMMAND...: RUNS timed runs; records medians of wall seconds and peak RSS (KB).
run() {
    for _ in $(seq "$RUNS"); do run_once "$@"; done
    medians "$1"
}

# The query (scripts/duckdb-query.py) over the file named by $SOURCE.
cat >"$OUT/query.py" <<PY
import os, runpy, sys
source = "read_csv('" + os.environ["SOURCE"] + "', delim = '|', header = true, all_varchar = true)"
sys.argv = ["duckdb-query.py", source, "$OUT/duckdb.csv"]
runpy.run_path("$PWD/scripts/duckdb-query.py")
PY
# DuckDB reading the file alone: the four columns converted as the query converts them, with
# trivial aggregates (max of a text still reads each value). No tool computes the result without
# reading the file, so this is the peer's floor: how much of DuckDB's time is the CSV scan.
cat >"$OUT/scan.py" <<'PY'
import duckdb, os
duckdb.sql(
    "SELECT count(*), sum(CAST(unitsSold AS INTEGER)), max(CAST(transactionDate AS DATE)), "
    "max(custId), max(productSold) FROM read_csv($source, delim = '|', header = true, all_varchar = true)",
    params={"source": os.environ["SOURCE"]},
).fetchall()
PY
# The same result with Polars (lazy API), when it is installed.
cat >"$OUT/polars_query.py" <<'PY'
import os, sys
import polars as pl
t = pl.scan_csv(os.environ["SOURCE"], separator="|", infer_schema=False).select(
    pl.col("custId").alias("c"),
    pl.col("productSold").alias("p"),
    pl.col("transactionDate").str.to_date("%Y-%m-%d").alias("d"),
    pl.col("unitsSold").cast(pl.Int64).alias("u"),
)
fav = (
    t.group_by("c", "p").agg(pl.col("u").sum().alias("s"))
    .sort(["c", "s", "p"], descending=[False, True, False])
    .group_by("c", maintain_order=True).first()
    .select("c", pl.col("p").alias("favourite_product"))
)
streak = (
    t.select("c", "d").unique().sort("c", "d")
    .with_columns((pl.col("d").cast(pl.Int32) - pl.int_range(pl.len()).over("c")).alias("g"))
    .group_by("c", "g").len()
    .group_by("c").agg(pl.col("len").max().alias("longest_streak"))
)
(fav.join(streak, on="c").sort("c").rename({"c": "customer_id"})
    .select("customer_id", "favourite_product", "longest_streak")
    .collect().write_csv(sys.argv[1]))
PY

report() { # file bytes
    local bytes=$2
    printf '\n%s (%s bytes), %s runs each, medians; warm page cache\n' "$1" "$bytes" "$RUNS"
    printf '%-34s %9s %10s %12s %16s\n' tool seconds "MB/s" "peak RSS MB" "DuckDB time / it"
    for name in "${ORDER[@]}"; do
        awk -v n="$name" -v t="${TIME[$name]}" -v m="${RSS[$name]}" -v b="$bytes" -v d="${TIME[duckdb]:-0}" \
            'BEGIN {printf "%-34s %9.3f %10.0f %12.0f %16s\n", n, t, b/t/1e6, m/1024, (d>0 ? sprintf("%.1fx", d/t) : "-")}'
    done
}

SOURCE=$(dataset 22000000 2000000 1g)
BYTES=$(stat -c %s "$SOURCE")
WARM=$SOURCE
pin "$SOURCE"
export SOURCE
run "wc -l (floor)" wc -l "$SOURCE"
# Two threads and one take turns, so that the speed-up compares runs of the same minutes on a
# machine whose speed drifts; the parse-only runs too.
for _ in $(seq "$RUNS"); do
    run_once "custagg" "$BIN" --quiet --source "$SOURCE" --output "$OUT/custagg.csv"
    run_once "custagg --threads 1" "$BIN" --quiet --threads 1 --source "$SOURCE" --output "$OUT/custagg1.csv"
    # The hidden --parse-only (timing only) drops each row once parsed: what reading, splitting
    # and checking the file cost custagg, with nothing done with the rows.
    run_once "custagg, parsing only" "$BIN" --quiet --parse-only --source "$SOURCE" --output "$OUT/floor.csv"
done
medians "custagg" "custagg --threads 1" "custagg, parsing only"
run "duckdb" python3 "$OUT/query.py"
cmp -s "$OUT/custagg.csv" "$OUT/custagg1.csv" || { echo "custagg: --threads 1 differs" >&2; exit 1; }
cmp -s "$OUT/custagg.csv" "$OUT/duckdb.csv" || { echo "DuckDB's result differs from custagg's" >&2; exit 1; }
run "duckdb, reading only" python3 "$OUT/scan.py"
ORDER=("wc -l (floor)" "custagg" "custagg --threads 1" "custagg, parsing only" "duckdb, reading only" "duckdb")
if python3 -c 'import polars' 2>/dev/null; then
    run "polars" python3 "$OUT/polars_query.py" "$OUT/polars.csv"
    cmp -s "$OUT/custagg.csv" "$OUT/polars.csv" || { echo "Polars' result differs from custagg's" >&2; exit 1; }
    ORDER+=("polars")
else
    echo "(polars not installed: pip install polars to include it)" >&2
fi
report "$SOURCE" "$BYTES"
awk -v a="${TIME[custagg --threads 1]}" -v b="${TIME[custagg]}" \
    'BEGIN {printf "speed-up from --threads 1 to --threads 2: %.2fx\n", a/b}'
echo "all results identical (cmp)"

if [ "${SHAPES:-0}" = 1 ]; then
    # Six shapes of 1 GB, each made once by `custagg generate` (seed 1, 2,000,000 customers):
    #   generated  the generator's own shape (the 1 GB set above);
    #   skewed     --skew 4 (u^4: median 6 rows a customer, the busiest hundreds of thousands),
    #              --day-spread 30 (each customer's visits within a month of its own date),
    #              40 codes of geometric popularity (each 80 % as likely as the one before),
    #              0.3 % repeated lines — the shape of issue 22;
    #   clustered  --day-spread 14: each customer's days within two weeks;
    #   catalogue  100,000 product codes, all alike (--popularity uniform);
    #   long-ids   customer ids of 24 digits (--id-length 24; 13 M rows make the 1 GB);
    #   repeats    customers uniform (--skew 1) and 10 % of rows written twice.
    # Per shape: custagg with 2 threads, 1 thread and parsing only, in turns, then DuckDB; the
    # ratios the issue sets as targets, each from this run.
    shape_file() { # name rows generate-flags...
        local file="$DATA/shape1g-$1.csv" rows=$2; shift 2
        [ $# -gt 0 ] || { echo "$DATA/1g.csv"; return; } # the generator's own shape: the 1 GB set
        [ -f "$file" ] || "$BIN" generate --quiet --rows "$rows" --customers 2000000 --seed 1 "$@" --out "$file"
        echo "$file"
    }
    SHAPE_LIST=("generated:22000000:"
        "skewed:22000000:--skew 4 --day-spread 30 --products 40 --popularity geometric --duplicates 0.3"
        "clustered:22000000:--day-spread 14"
        "catalogue:21000000:--products 100000 --popularity uniform"
        "long-ids:13000000:--id-length 24"
        "repeats:22000000:--skew 1 --duplicates 10")
    declare -A SHAPE_BYTES
    for entry in "${SHAPE_LIST[@]}"; do
        IFS=: read -r name rows flags <<<"$entry"
        # shellcheck disable=SC2086 # the flags are words
        file=$(shape_file "$name" "$rows" $flags)
        SHAPE_BYTES[$name]=$(stat -c %s "$file")
        unpin
        pin "$file"
        SOURCE=$file
        WARM=$file
        export SOURCE
        for _ in $(seq "$RUNS"); do
            run_once "$name custagg" "$BIN" --quiet --source "$SOURCE" --output "$OUT/custagg.csv"
            run_once "$name threads 1" "$BIN" --quiet --threads 1 --source "$SOURCE" --output "$OUT/custagg1.csv"
            run_once "$name parse" "$BIN" --quiet --parse-only --source "$SOURCE" --output "$OUT/floor.csv"
        done
        run "$name duckdb" python3 "$OUT/query.py"
        medians "$name custagg" "$name threads 1" "$name parse"
        cmp -s "$OUT/custagg.csv" "$OUT/custagg1.csv" || { echo "$name: --threads 1 differs" >&2; exit 1; }
        cmp -s "$OUT/custagg.csv" "$OUT/duckdb.csv" || { echo "$name: DuckDB's result differs" >&2; exit 1; }
    done
    unpin
    printf '\nshapes of 1 GB, %s runs each, medians (targets: DuckDB time / custagg >= 10;\n' "$RUNS"
    printf 'DuckDB RSS / custagg RSS >= 12 and custagg RSS <= 256 MB; custagg / parse-only <= 2.2;\n'
    printf '1 -> 2 threads >= 1.8)\n'
    printf '%-10s %6s %9s %9s %9s %9s %8s %8s %7s %7s %7s %7s\n' shape MB custagg "1 thread" parse \
        duckdb "RSS MB" "duck MB" "vs duck" "RSS x" "/parse" "1->2"
    for entry in "${SHAPE_LIST[@]}"; do
        name=${entry%%:*}
        awk -v n="$name" -v b="${SHAPE_BYTES[$name]}" -v c="${TIME[$name custagg]}" \
            -v one="${TIME[$name threads 1]}" -v p="${TIME[$name parse]}" -v d="${TIME[$name duckdb]}" \
            -v m="${RSS[$name custagg]}" -v dm="${RSS[$name duckdb]}" \
            'BEGIN {printf "%-10s %6.0f %9.3f %9.3f %9.3f %9.3f %8.0f %8.0f %6.1fx %6.1fx %6.2fx %6.2fx\n",
                n, b/1e6, c, one, p, d, m/1024, dm/1024, d/c, dm/m, c/p, one/c}'
    done
    echo "all results identical (cmp)"
fi

if [ "${SKEWED_10G:-0}" = 1 ]; then
    SKEWED_FLAGS=(--skew 4 --day-spread 30 --products 40 --popularity geometric --duplicates 0.3)
    SMALL=$DATA/shape1g-skewed.csv
    [ -f "$SMALL" ] || "$BIN" generate --quiet --rows 22000000 --customers 2000000 --seed 1 "${SKEWED_FLAGS[@]}" --out "$SMALL"
    LARGE=$DATA/shape10g-skewed.csv
    [ -f "$LARGE" ] || "$BIN" generate --quiet --rows 200000000 --customers 20000000 --seed 1 "${SKEWED_FLAGS[@]}" --out "$LARGE"
    unpin
    pin "$SMALL"
    pin "$LARGE"
    # The 1 GB and the bounded 10 GB runs in turns, so that the ratio is of the same minutes.
    for _ in $(seq "$RUNS"); do
        WARM=$SMALL run_once "skewed 1 GB" "$BIN" --quiet --source "$SMALL" --output "$OUT/small.csv"
        WARM=$LARGE run_once "skewed 10 GB, 256MB" "$BIN" --quiet --memory-limit 256MB --source "$LARGE" --output "$OUT/large-bounded.csv"
    done
    WARM=$LARGE run_once "skewed 10 GB, in memory" "$BIN" --quiet "${IN_MEMORY[@]}" --source "$LARGE" --output "$OUT/large-memory.csv"
    medians "skewed 1 GB" "skewed 10 GB, 256MB" "skewed 10 GB, in memory"
    cmp -s "$OUT/large-bounded.csv" "$OUT/large-memory.csv" || { echo "skewed 10 GB: bounded run differs" >&2; exit 1; }
    unpin
    printf '\nskewed shape, 10 GB (%s bytes) against 1 GB (%s bytes); targets: peak < 400 MB, same\n' \
        "$(stat -c %s "$LARGE")" "$(stat -c %s "$SMALL")"
    printf 'output as in memory, at most 11x the 1 GB time\n'
    for name in "skewed 1 GB" "skewed 10 GB, 256MB" "skewed 10 GB, in memory"; do
        awk -v n="$name" -v t="${TIME[$name]}" -v m="${RSS[$name]}" \
            'BEGIN {printf "%-26s %9.3f s %8.0f MB\n", n, t, m/1024}'
    done
    awk -v a="${TIME[skewed 10 GB, 256MB]}" -v b="${TIME[skewed 1 GB]}" \
        'BEGIN {printf "10 GB bounded / 1 GB: %.1fx; bounded and in-memory outputs identical (cmp)\n", a/b}'
fi

if [ "${TEXT_SHAPES:-0}" = 1 ]; then
    # The same kind of data in shapes real files have, against DuckDB in the same minutes: a
    # large catalogue, every field quoted (as many exporters write), rows in date order (as
    # transaction logs are), 3 rows in 10 from one walk-in "guest" customer, customer ids as
    # UUIDs, and a wide export (ten more columns — store, cashier, time, description, price… —
    # around the four that count, rows of 100-odd bytes). Each shape is made once from
    # `custagg generate` into data/bench/.
    base=$(dataset 4000000 400000 shape-base)
    made() { [ -f "$DATA/shape-$1.csv" ] || { "${@:2}" >"$DATA/shape-$1.tmp" && mv "$DATA/shape-$1.tmp" "$DATA/shape-$1.csv"; }; }
    made catalogue "$BIN" generate --quiet --rows 4000000 --customers 400000 --products 100000 \
        --seed 1 --out /dev/stdout
    made quoted awk 'BEGIN {FS = OFS = "|"} NR > 1 {for (i = 1; i <= NF; i++) $i = "\"" $i "\""} 1' "$base"
    made dated sh -c 'head -n 1 "$1"; tail -n +2 "$1" | sort -s -t "|" -k 3,3' sh "$base"
    made guest awk 'BEGIN {FS = OFS = "|"} NR > 1 && NR % 10 < 3 {$2 = "0000000"} 1' "$base"
    made uuid awk 'BEGIN {FS = OFS = "|"} NR > 1 {n = $2 + 0; h = (n * 2654435761) % 4294967296
        $2 = sprintf("%08x-%04x-4%03x-8%03x-%012d", h, n % 65536, n % 4096, n * 7 % 4096, n)} 1' "$base"
    made wide awk 'BEGIN {FS = OFS = "|"}
        NR == 1 {print "storeId", "transactionId", "custId", "cashier", "transactionDate", "time",
            "productSold", "description", "unitsSold", "unitPrice", "discount", "currency",
            "payment", "channel", "region"; next}
        {print sprintf("S%04d", NR * 7919 % 500), $1, $2, "C" NR % 97, $3,
            sprintf("%02d:%02d:%02d", NR % 24, NR % 60, NR * 7 % 60), $4,
            "Product " $4 " family pack", $5, sprintf("%d.%02d", NR % 50, NR % 100),
            (NR % 10 ? "0" : "0.10"), "EUR", (NR % 3 ? "cash" : "card"), "store", "EU-" NR % 12}' "$base"
    printf '\nshapes: 4,000,000 rows, 400,000 customers; %s runs each in turns, medians\n' "$RUNS"
    printf '%-38s %10s %10s %16s\n' shape "custagg s" "DuckDB s" "DuckDB time / it"
    for shape in "base:as generated (48 product codes)" "catalogue:100,000 product codes" \
        "quoted:every field quoted" "dated:rows in date order" \
        "guest:3 rows in 10 from one walk-in customer" "uuid:customer ids as UUIDs (36 bytes)" \
        "wide:15 columns, rows of 100-odd bytes"; do
        name=${shape%%:*}
        SOURCE=$DATA/shape-$name.csv
        WARM=$SOURCE
        export SOURCE
        for _ in $(seq "$RUNS"); do
            run_once "custagg $name" "$BIN" --quiet --source "$SOURCE" --output "$OUT/custagg.csv"
            run_once "duckdb $name" python3 "$OUT/query.py"
        done
        medians "custagg $name" "duckdb $name"
        cmp -s "$OUT/custagg.csv" "$OUT/duckdb.csv" || { echo "$name: DuckDB's result differs" >&2; exit 1; }
        awk -v s="${shape#*:}" -v a="${TIME[custagg $name]}" -v d="${TIME[duckdb $name]}" \
            'BEGIN {printf "%-38s %10.3f %10.3f %15.1fx\n", s, a, d, d/a}'
    done
    echo "all results identical (cmp)"
fi

if [ "${BIG:-0}" = 1 ]; then
    BIG_SOURCE=$(dataset 200000000 20000000 10g)
    BIG_BYTES=$(stat -c %s "$BIG_SOURCE")
    ONE_GB=${TIME[custagg]}
    RUNS=1
    unpin
    WARM=$BIG_SOURCE # 10 GB fits this machine's page cache; the 1 GB figures are warm too
    pin "$BIG_SOURCE"
    run "custagg --memory-limit 256MB" "$BIN" --quiet --memory-limit 256MB --source "$BIG_SOURCE" \
        --output "$OUT/big-bounded.csv"
    run "custagg (in memory)" "$BIN" --quiet "${IN_MEMORY[@]}" --source "$BIG_SOURCE" --output "$OUT/big-memory.csv"
    cmp -s "$OUT/big-bounded.csv" "$OUT/big-memory.csv" || { echo "10 GB: bounded run differs" >&2; exit 1; }
    TIME[duckdb]=0
    ORDER=("custagg --memory-limit 256MB" "custagg (in memory)")
    report "$BIG_SOURCE" "$BIG_BYTES"
    awk -v a="${TIME[custagg --memory-limit 256MB]}" -v b="$ONE_GB" \
        'BEGIN {printf "10 GB bounded time / 1 GB time: %.1fx (target: at most 12x)\n", a/b}'
    echo "bounded and in-memory outputs identical (cmp)"
fi
