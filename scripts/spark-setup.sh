#!/usr/bin/env bash
# What the Spark job (spark/custagg_spark.py) and its test need: a Java runtime (Debian's
# OpenJDK 17), the PostgreSQL JDBC driver (Debian's libpostgresql-jdbc-java, at
# /usr/share/java/postgresql.jar) and the Python packages pinned in spark/requirements.txt.
# Installs what is missing (apt as root, pip); exits non-zero when something could not be had.
#
#   scripts/spark-setup.sh && CUSTAGG_SPARK=1 cargo test
set -euo pipefail
cd "$(dirname "$0")/.."

packages=()
command -v java >/dev/null 2>&1 || packages+=(openjdk-17-jre-headless)
[ -f /usr/share/java/postgresql.jar ] || packages+=(libpostgresql-jdbc-java)
if [ ${#packages[@]} -gt 0 ]; then
    [ "$(id -u)" = 0 ] || { echo "needs ${packages[*]} (apt, as root)" >&2; exit 1; }
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q "${packages[@]}" >/dev/null 2>&1 \
        || { apt-get update -q >/dev/null && apt-get install -y -q "${packages[@]}" >/dev/null; }
fi
python3 -c 'import pyspark, psycopg' 2>/dev/null \
    || python3 -m pip install -q --disable-pip-version-check -r spark/requirements.txt
java -version 2>&1 | head -1
python3 -c 'import pyspark, psycopg; print("pyspark", pyspark.__version__, "psycopg", psycopg.__version__)'
