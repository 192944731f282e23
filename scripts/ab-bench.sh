#!/usr/bin/env bash
# A/B of the criterion stage benches: two builds' bench binaries run alternately, medians of
# criterion's middle estimates. On this shared machine criterion's own comparison with the last
# run ("change: ...") mostly measures the machine's drift; builds run in the same minutes can be
# compared.
#
#   cargo bench --bench stages --no-run        # prints the binary: target/release/deps/stages-…
#   cp target/release/deps/stages-<hash> /tmp/stages-a     # before the change, then after it:
#   cp target/release/deps/stages-<hash> /tmp/stages-b
#   scripts/ab-bench.sh 5 partition /tmp/stages-a /tmp/stages-b   # 5 runs each, benches matching
set -euo pipefail
[ $# -eq 4 ] || { sed -n '2,10p' "$0" >&2; exit 2; }
runs=$1 filter=$2 a=$3 b=$4
for bin in "$a" "$b"; do [ -x "$bin" ] || { echo "not an executable: $bin" >&2; exit 2; }; done

for _ in $(seq "$runs"); do
    for side in a b; do
        bin=$a
        [ "$side" = a ] || bin=$b
        # A bench's name starts a line; its time is on the same line (short names) or the next;
        # a later "time:" line, under "change:", holds percentages and is skipped.
        "$bin" --bench --noplot --discard-baseline --warm-up-time 1 --measurement-time 3 "$filter" \
            2>/dev/null | awk -v side="$side" '
                /^stages\// { name = $0; sub(/ +time:.*/, "", name) }
                / time: +\[/ && $NF ~ /^(ns|µs|us|ms|s)]$/ {
                    print side "\t" name "\t" $(NF - 3) " " $(NF - 2)
                }'
    done
done | awk -F'\t' -v a="$a" -v b="$b" '
    { key = $2 "\t" $1; split($3, t, " "); v[key] = v[key] " " t[1]; unit[key] = t[2]
      if (!($2 in seen)) { seen[$2] = 1; names[++n] = $2 } }
    function median(list,    x, k, i, j, s) {
        k = split(list, x, " ")
        for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (x[j] + 0 < x[i] + 0) { s = x[i]; x[i] = x[j]; x[j] = s }
        return k % 2 ? x[(k + 1) / 2] : (x[k / 2] + x[k / 2 + 1]) / 2
    }
    END {
        for (i = 1; i <= n; i++) for (s = 1; s <= 2; s++) {
            side = s == 1 ? "a" : "b"; key = names[i] "\t" side
            printf "%-42s %s %9.3f %s  (%s)\n", names[i], side, median(v[key]), unit[key], side == "a" ? a : b
        }
    }'
