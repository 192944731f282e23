#!/usr/bin/env bash
# One command for the quick start against a real database: starts a throwaway PostgreSQL server,
# loads data/transaction.csv into warehouse.customers, prints the first ten rows, and stops the
# server again.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

cargo build --release --quiet
pg_start
echo "PostgreSQL started on the socket in $PGDIR"
./target/release/custagg --source data/transaction.csv \
    --host "$PGDIR" --user postgres --database warehouse --table customers
"$PGBIN/psql" -h "$PGDIR" -U postgres -d warehouse \
    -c 'select * from customers order by customer_id limit 10'
echo "stopping the server"
