# Shared by the scripts: start and stop a throwaway PostgreSQL server (source this file).
#
# pg_start makes a cluster in a temporary directory, listening only on a Unix socket there (no
# port to collide with), run as the postgres OS user when we are root. It sets PGDIR (the socket
# directory, usable as --host) and PGBIN, and arranges pg_stop to run on exit.

pg_bindir() {
    if command -v initdb >/dev/null 2>&1; then dirname "$(readlink -f "$(command -v initdb)")"; return; fi
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir; return
    fi
    local dir
    dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$dir" ]; then
        echo "no PostgreSQL server binaries found (Debian package: postgresql)" >&2
        return 1
    fi
    echo "$dir"
}

pg_as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
    PGBIN=$(pg_bindir)
    PGDIR=$(mktemp -d /tmp/custagg-pg-XXXXXX)
    if [ "$(id -u)" = 0 ]; then chown postgres: "$PGDIR"; fi
    pg_as_owner "$PGBIN/initdb" -D "$PGDIR/data" --auth=trust -U postgres -E UTF8 --locale=C \
        --no-sync >/dev/null
    pg_as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" -l "$PGDIR/server.log" -w \
        -o "-c listen_addresses='' -c unix_socket_directories=$PGDIR ${PG_EXTRA_OPTIONS:-}" \
        start >/dev/null
    trap pg_stop EXIT
    export PGDIR PGBIN
}

pg_stop() {
    if [ -n "${PGDIR:-}" ] && [ -d "$PGDIR/data" ]; then
        pg_as_owner "$PGBIN/pg_ctl" -D "$PGDIR/data" -m fast stop >/dev/null || true
        rm -rf "$PGDIR"
    fi
}
