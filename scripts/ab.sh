#!/usr/bin/env bash
# A/B: two custagg builds run alternately on the same file, medians of wall time, peak RSS and
# the phases of custagg's summary. On a shared machine whose speed drifts from minute to minute,
# only builds measured in the same minutes can be compared.
#
#   cp target/release/custagg /tmp/custagg-a        # before the change
#   cargo build --release && cp target/release/custagg /tmp/custagg-b
#   scripts/ab.sh 7 /tmp/custagg-a /tmp/custagg-b               # 7 runs of each, 2 threads
#   scripts/ab.sh 5 /tmp/custagg-a /tmp/custagg-b --threads 1   # extra arguments go to both
#
# SOURCE picks the file (default: the 1 GB bench set); it is read before every run to warm the
# page cache. The two outputs must be identical, or the script says so and fails.
set -euo pipefail
[ $# -ge 3 ] || { sed -n '2,12p' "$0" >&2; exit 2; }
cd "$(dirname "$0")/.."
runs=$1 a=$2 b=$3
shift 3
for bin in "$a" "$b"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }; done
SOURCE=${SOURCE:-data/bench/1g.csv}
[ -f "$SOURCE" ] || { echo "no $SOURCE: run scripts/bench.sh once to generate it" >&2; exit 1; }
OUT=$(mktemp -d /tmp/custagg-ab-XXXXXX)
trap 'rm -rf "$OUT"' EXIT

for _ in $(seq "$runs"); do
    for side in a b; do
        bin=$a
        [ "$side" = a ] || bin=$b
        cat "$SOURCE" >/dev/null
        /usr/bin/time -f "%e %M" -o "$OUT/time" "$bin" --source "$SOURCE" --output "$OUT/$side.csv" "$@" \
            2>"$OUT/summary" >/dev/null || { cat "$OUT/summary" >&2; exit 1; }
        phases=$(awk '$1 == "read" || $1 == "reduce" || $1 == "write" {printf "%s ", $2}' "$OUT/summary")
        echo "$side $(cat "$OUT/time") $phases"
    done
done | awk -v a="$a" -v b="$b" '
    { wall[$1] = wall[$1] " " $2; rss[$1] = rss[$1] " " $3
      read[$1] = read[$1] " " $4; reduce[$1] = reduce[$1] " " $5; write[$1] = write[$1] " " $6 }
    function median(list,    v, n, i, j, t) {
        n = split(list, v, " ")
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] + 0 < v[i] + 0) { t = v[i]; v[i] = v[j]; v[j] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    END {
        printf "%-4s %8s %8s %8s %8s %8s  %s\n", "", "wall s", "RSS MB", "read s", "reduce s", "write s", "build"
        split("a b", sides, " ")
        for (k = 1; k <= 2; k++) {
            s = sides[k]
            printf "%-4s %8.3f %8.0f %8.3f %8.3f %8.3f  %s\n", s, median(wall[s]), median(rss[s]) / 1024,
                median(read[s]), median(reduce[s]), median(write[s]), (s == "a" ? a : b)
        }
    }'
cmp -s "$OUT/a.csv" "$OUT/b.csv" || { echo "the two builds wrote different output" >&2; exit 1; }
echo "outputs identical (cmp)"
