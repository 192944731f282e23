#!/usr/bin/env bash
# Faults on purpose, where a test needs process control (issue 5). Starts its own throwaway
# PostgreSQL server with log_statement=all and tries:
#   - kill -9 at six points of a load (reading, spilling, reducing, COPY, before and after the swap):
#     the target is always the complete old table or the complete new one, the next run succeeds,
#     and no staging table or spill directory of the dead run is left after it;
#   - kill -9 at five points of an incremental load (reading, reading the stored states, merging,
#     writing, before the commit): the table, its states and its ledger as before, and the
#     next run right;
#   - PostgreSQL stopped (pg_ctl stop -m immediate) during the COPY, and during an incremental
#     load's writes;
#   - a full disk under --spill-dir (tmpfs; needs root): for the partitions, and for the CSV
#     sink's spilled runs;
#   - hostile table names, and the statements the server saw;
#   - passwords: wrong, refused connection, in a URL — never printed.
# One line per trial; exits 1 if any trial fails.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

cargo build --release --quiet
BIN=$PWD/target/release/custagg
WORK=$(mktemp -d /tmp/custagg-faults-XXXXXX)
chmod 755 "$WORK"
SPILL=$WORK/spill
mkdir -p "$SPILL"
FAILED=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; FAILED=1; }

PG_EXTRA_OPTIONS="-c log_statement=all -c log_line_prefix='%a|'"
pg_start
cleanup() { pg_stop; mountpoint -q "$WORK/tiny" 2>/dev/null && umount "$WORK/tiny"; rm -rf "$WORK"; }
trap cleanup EXIT
LOG=$PGDIR/server.log
PSQL=("$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -h "$PGDIR" -U postgres)
"${PSQL[@]}" -d postgres -c "CREATE DATABASE faults"
sql() { "${PSQL[@]}" -d faults -c "$1"; }

OLD=$WORK/old.csv
NEW=$WORK/new.csv
"$BIN" generate --quiet --rows 100000 --customers 10000 --seed 1 --out "$OLD"
"$BIN" generate --quiet --rows 3000000 --customers 300000 --seed 2 --out "$NEW"
LOAD=("$BIN" --quiet --host "$PGDIR" --user postgres --database faults --table customers
      --spill-dir "$SPILL")
load() { "${LOAD[@]}" --source "$@"; } # source [flags...]
fingerprint() {
    sql "SELECT count(*) || ':' || md5(string_agg(customer_id || ',' || favourite_product || ',' || longest_streak, ';' ORDER BY customer_id)) FROM customers"
}
leftovers() {
    echo "$(sql "SELECT count(*) FROM pg_class WHERE relname LIKE 'custagg_staging_%'") staging, $(find "$SPILL" -mindepth 1 -maxdepth 1 | wc -l) spill dirs"
}
load "$NEW"; NEW_FP=$(fingerprint)
load "$OLD"; OLD_FP=$(fingerprint)
echo "old table ${OLD_FP%%:*} rows, new table ${NEW_FP%%:*} rows"

# Starts a load paused at $1 (extra flags after it); sets PID once the pause is reached.
start_paused() {
    local point=$1; shift
    # The binary itself in the background (not a function, whose $! would be a subshell).
    CUSTAGG_PAUSE_AT=$point "${LOAD[@]}" --source "$NEW" "$@" 2>"$WORK/err" &
    PID=$!
    for _ in $(seq 600); do
        grep -q "paused at $point" "$WORK/err" 2>/dev/null && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "never reached $point: $(cat "$WORK/err")" >&2
    return 1
}

for point in reading spilling reducing copy before-swap after-swap; do
    flags=()
    [ "$point" = spilling ] && flags=(--memory-limit 16MiB)
    if ! start_paused "$point" "${flags[@]}"; then fail "kill -9 while $point: pause not reached"; continue; fi
    kill -9 "$PID"; wait "$PID" 2>/dev/null || true
    after=$(fingerprint)
    case "$after" in
        "$OLD_FP") state=old ;;
        "$NEW_FP") state=new ;;
        *) state=partial ;;
    esac
    dead=$(leftovers)
    if load "$OLD" && [ "$(fingerprint)" = "$OLD_FP" ]; then next=ok; else next=failed; fi
    left=$(leftovers)
    expected=old
    [ "$point" = after-swap ] && expected=new
    if [ "$state" = "$expected" ] && [ "$next" = ok ] && [ "$left" = "0 staging, 0 spill dirs" ]; then
        pass "kill -9 while $point: target $state and complete; right after: $dead; next run $next; after it: $left"
    else
        fail "kill -9 while $point: target $state (wanted $expected); next run $next; after it: $left"
    fi
done

# stop_server_at POINT command...: runs the command paused at POINT for 3 s, stops the server
# (pg_ctl stop -m immediate) under it, and starts the server again; sets code and message (the
# command's exit status and stderr).
stop_server_at() {
    local point=$1; shift
    CUSTAGG_PAUSE_AT=$point CUSTAGG_PAUSE_FOR=3 "$@" 2>"$WORK/err" &
    local pid=$!
    for _ in $(seq 600); do grep -q "paused at $point" "$WORK/err" && break; sleep 0.1; done
    pg_as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null
    set +e; wait "$pid"; code=$?; set -e
    message=$(grep -v "paused at" "$WORK/err")
    pg_as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$LOG" -w \
        -o "-c listen_addresses='' -c unix_socket_directories=$PGDIR $PG_EXTRA_OPTIONS" start >/dev/null
}

# Incremental loads (issue 21): kill -9 while reading, while the stored states are read, while
# they are merged, while the merged rows are written, and just before the commit. The target,
# its states and its ledger must all be as before; the next run loads the day and equals a
# replace of both files.
INC=("$BIN" --quiet --host "$PGDIR" --user postgres --database faults --table daily
     --mode incremental --spill-dir "$SPILL")
inc_fingerprint() {
    sql "SELECT (SELECT count(*) || ':' || md5(string_agg(customer_id || ',' || favourite_product || ',' || longest_streak, ';' ORDER BY customer_id)) FROM daily)
        || '/' || (SELECT count(*) || ':' || md5(string_agg(customer_id || encode(state, 'hex'), ';' ORDER BY customer_id)) FROM daily_custagg_state)
        || '/' || (SELECT count(*) FROM daily_custagg_ledger)"
}
inc_reset() { "$BIN" state --host "$PGDIR" --user postgres --database faults --table daily --reset >/dev/null; "${INC[@]}" --source "$OLD"; }
"$BIN" --quiet --host "$PGDIR" --user postgres --database faults --table both_files --source "$OLD" --source "$NEW" --spill-dir "$SPILL"
BOTH=$(sql "SELECT count(*) || ':' || md5(string_agg(customer_id || ',' || favourite_product || ',' || longest_streak, ';' ORDER BY customer_id)) FROM both_files")
inc_reset
INC_BEFORE=$(inc_fingerprint)
for point in reading incremental-read incremental-merge incremental-write incremental-commit; do
    CUSTAGG_PAUSE_AT=$point "${INC[@]}" --source "$NEW" 2>"$WORK/err" &
    PID=$!
    reached=no
    for _ in $(seq 600); do
        grep -q "paused at $point" "$WORK/err" 2>/dev/null && { reached=yes; break; }
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.1
    done
    if [ "$reached" = no ]; then fail "incremental, kill -9 while $point: pause not reached: $(cat "$WORK/err")"; continue; fi
    kill -9 "$PID"; wait "$PID" 2>/dev/null || true
    after=$(inc_fingerprint)
    if "${INC[@]}" --source "$NEW" && [ "$(sql "SELECT count(*) || ':' || md5(string_agg(customer_id || ',' || favourite_product || ',' || longest_streak, ';' ORDER BY customer_id)) FROM daily")" = "$BOTH" ]; then
        next=ok
    else
        next=failed
    fi
    left=$(find "$SPILL" -mindepth 1 -maxdepth 1 | wc -l)
    if [ "$after" = "$INC_BEFORE" ] && [ "$next" = ok ] && [ "$left" = 0 ]; then
        pass "incremental, kill -9 while $point: table, states and ledger as before; the next run loads the day and equals a replace of both files; $left spill dirs"
    else
        fail "incremental, kill -9 while $point: before $INC_BEFORE, after $after; next run $next; $left spill dirs"
    fi
    inc_reset
done
# PostgreSQL stopped under an incremental load's writes.
stop_server_at incremental-write "${INC[@]}" --source "$NEW"
after=$(inc_fingerprint)
if [ "$code" = 1 ] && [ "$(printf '%s\n' "$message" | wc -l)" = 1 ] && [ "$after" = "$INC_BEFORE" ]; then
    pass "PostgreSQL stopped during an incremental load: exit $code, table, states and ledger as before; message: $message"
else
    fail "PostgreSQL stopped during an incremental load: exit $code, after $after; message: $message"
fi

# PostgreSQL stopped under the COPY.
stop_server_at copy "${LOAD[@]}" --source "$NEW"
after=$(fingerprint)
if [ "$code" = 1 ] && [ "$(printf '%s\n' "$message" | wc -l)" = 1 ] && [ "$after" = "$OLD_FP" ]; then
    pass "PostgreSQL stopped during COPY: exit $code, target old and complete; message: $message"
else
    fail "PostgreSQL stopped during COPY: exit $code, target ${after%%:*} rows; message: $message"
fi
load "$OLD" && [ "$(leftovers)" = "0 staging, 0 spill dirs" ] \
    && pass "the next run after the stop succeeds and leaves $(leftovers)" \
    || fail "the next run after the stop: $(leftovers)"

# A full disk under --spill-dir.
mkdir -p "$WORK/tiny"
if mount -t tmpfs -o size=1m tmpfs "$WORK/tiny" 2>/dev/null; then
    set +e
    "$BIN" --quiet --source "$NEW" --host "$PGDIR" --user postgres --database faults \
        --table customers --spill-dir "$WORK/tiny" --memory-limit 16MiB 2>"$WORK/err"
    code=$?
    set -e
    message=$(cat "$WORK/err")
    files=$(find "$WORK/tiny" -mindepth 1 | wc -l)
    after=$(fingerprint)
    if [ "$code" = 1 ] && [[ "$message" == *"$WORK/tiny/custagg-"* ]] && [[ "$message" == *"No space left"* ]] \
        && [ "$files" = 0 ] && [ "$after" = "$OLD_FP" ] && [ "$(leftovers)" = "0 staging, 0 spill dirs" ]; then
        pass "spill disk full: exit $code, $files files left in it, target old; message: $message"
    else
        fail "spill disk full: exit $code, $files files left, target ${after%%:*} rows; message: $message"
    fi
    umount "$WORK/tiny"
    # The same for the CSV sink's spilled runs: a stream (hash partitions, runs merged at the
    # end) whose partitions' spill fits the disk and whose runs' spill does not. One worker
    # spills the same bytes every time; the report says how many.
    stream=("$BIN" --quiet --threads 1 --memory-limit 16MiB --output "$WORK/out.csv")
    # The partitions' spill alone, from the log (the report's spilled_bytes counts the runs too).
    RUST_LOG=custagg=info "${stream[@]}" --source <(cat "$NEW") --spill-dir "$SPILL" 2>"$WORK/log"
    spilled=$(sed -n 's/.*read [0-9]* rows in .*; \([0-9]*\) bytes spilled.*/\1/p' "$WORK/log")
    echo "previous output" >"$WORK/out.csv"
    mount -t tmpfs -o size=$(( (spilled + (512 << 10)) / 4096 * 4096 )) tmpfs "$WORK/tiny"
    set +e
    "${stream[@]}" --source <(cat "$NEW") --spill-dir "$WORK/tiny" 2>"$WORK/err"
    code=$?
    set -e
    message=$(cat "$WORK/err")
    files=$(find "$WORK/tiny" -mindepth 1 | wc -l)
    beside=$(find "$WORK" -maxdepth 1 -name '*out.csv*' | wc -l)
    if [ "$code" = 1 ] && [[ "$message" == *"/partitions-"*"cannot spill the reduced rows"*"No space left"* ]] && [ "$files" = 0 ] \
        && [ "$(cat "$WORK/out.csv")" = "previous output" ] && [ "$beside" = 1 ]; then
        pass "runs' spill disk full (partitions spilled $spilled bytes on it first): exit $code, $files files left in it, the old output intact, no temporary file beside it; message: $message"
    else
        fail "runs' spill disk full: exit $code, $files files left, $beside output files; message: $message"
    fi
    umount "$WORK/tiny"
else
    echo "SKIP  spill disk full: cannot mount a tmpfs here (needs root)"
fi

# Hostile names: refused before any statement, or quoted; the server log shows the statements.
: >"$WORK/hostile"
for name in 'customers; DROP TABLE customers' 'x"; DROP TABLE customers; --' "x' OR '1'='1" \
    "$(printf 'a%.0s' $(seq 64))" 'naïve' 'a.b.c' 'Robert'"'"');--'; do
    set +e; "$BIN" --quiet --source "$OLD" --host "$PGDIR" --user postgres --database faults \
        --table "$name" 2>>"$WORK/hostile"; code=$?; set -e
    [ "$code" = 2 ] || fail "hostile name '$name': exit $code, wanted 2"
done
refused=$(grep -c 'is not a table name\|at most 63' "$WORK/hostile" || true)
mark=$(wc -l <"$LOG")
for name in select Public.Order; do
    "$BIN" --quiet --source "$OLD" --host "$PGDIR" --user postgres --database faults --table "$name"
done
theirs=$(tail -n +"$((mark + 1))" "$LOG" | grep '^custagg|' | grep -oE '(statement|execute [^:]*): .*' \
    | sed 's/custagg_staging_[0-9a-f]*/custagg_staging_…/g' | sort -u || true)
intact=$(fingerprint)
if [ "$refused" = 7 ] && [ "$intact" = "$OLD_FP" ] && ! grep -q 'DROP TABLE customers\|OR .1.=.1' "$LOG"; then
    pass "7 hostile names refused before connecting (exit 2); the target is intact; reserved words load quoted"
else
    fail "hostile names: $refused of 7 refused; target ${intact%%:*} rows"
fi
echo "statements custagg sent for --table select and --table Public.Order (log_statement=all):"
printf '%s\n' "$theirs" | sed 's/^/      /'

# Passwords never printed.
sql "CREATE ROLE etl LOGIN PASSWORD 'hunter2-secret'; GRANT ALL ON DATABASE faults TO etl; GRANT ALL ON SCHEMA public TO etl" 2>/dev/null || true
sed -i '1i local all etl scram-sha-256' "$PGDIR/data/pg_hba.conf"
sql "SELECT pg_reload_conf()" >/dev/null
secret_trial() { # description, expected exit, env..., -- flags...
    local what=$1 want=$2; shift 2
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
    set +e; env "${envs[@]}" "$BIN" --source "$OLD" --table etl_customers "$@" >"$WORK/out" 2>&1; local code=$?; set -e
    if [ "$code" = "$want" ] && ! grep -q 'hunter2\|wrong-one' "$WORK/out"; then
        pass "$what: exit $code, no password in: $(head -c 160 "$WORK/out" | tr '\n' ' ')"
    else
        fail "$what: exit $code: $(cat "$WORK/out")"
    fi
}
secret_trial "wrong PGPASSWORD" 1 PGPASSWORD=wrong-one -- --host "$PGDIR" --user etl --database faults
secret_trial "right PGPASSWORD" 0 PGPASSWORD=hunter2-secret -- --quiet --host "$PGDIR" --user etl --database faults
secret_trial "password in a URL, connection refused" 1 -- --db-url "postgresql://etl:hunter2-secret@127.0.0.1:1/faults"
secret_trial "password in DATABASE_URL, wrong" 1 "DATABASE_URL=postgresql://etl:wrong-one@localhost/faults?host=$PGDIR" --
# (The script's own CREATE ROLE … PASSWORD is logged; custagg's lines must not hold it.)
grep -q '^custagg|.*hunter2' "$LOG" && fail "custagg's lines in the server log hold the password" \
    || pass "custagg's lines in the server log never hold the password"

[ "$FAILED" = 0 ] && echo "all trials passed" || echo "some trials FAILED"
exit "$FAILED"
