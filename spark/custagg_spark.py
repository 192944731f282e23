#!/usr/bin/env python3
"""custagg on Apache Spark: the same job, for daily volumes one machine no longer takes.

Each customer's favourite product (the greatest total of unitsSold; ties to the smallest code in
byte order) and longest streak of consecutive purchase days (over distinct days), one row per
customer, written as CSV or loaded into PostgreSQL. The command line, the semantics and the
loading contract are custagg's (docs/contract.md):

    python3 spark/custagg_spark.py --source 'exports/2026-12-*.csv.gz' --database warehouse --table customers
    python3 spark/custagg_spark.py --source exports/ --output customers.csv
    spark-submit --master yarn spark/custagg_spark.py --source s3a://bucket/day/ --table customers ...

Input: delimited text with a header (plain, or gzip named *.gz: Spark picks the codec by the
name) and Parquet (told from its magic bytes); each a file, a directory (its files, sorted) or a
glob. Columns are found by name, case-insensitively, in each file's own header. A bad row fails
the run (exit 3) naming its file and what is wrong; nothing is written.

Loading: the rows go into the staging table custagg uses (the same name, so either tool cleans up
what a killed run of the other left), under the same advisory lock, then one transaction puts it
in place of the target: a rename keeping the old privileges and owner, or TRUNCATE + INSERT when
views depend on the target. Readers never see a partial table.

Exit codes as custagg's: 0 success, 1 runtime failure, 2 usage error, 3 bad input data.
"""

import argparse
import glob as globbing
import os
import re
import sys

EXIT_RUNTIME, EXIT_USAGE, EXIT_DATA = 1, 2, 3
REQUIRED = ("custid", "transactiondate", "productsold", "unitssold")
HEADER = "customer_id,favourite_product,longest_streak\n"
NAME_PART = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
DEFAULT_JDBC_JAR = "/usr/share/java/postgresql.jar"


class Failure(Exception):
    """A failure with its exit code and a one-line message."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


# ---------------------------------------------------------------------------------------------
# The command line


def parse_args(argv):
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="custagg_spark.py",
        description="custagg's aggregation on Apache Spark: one row per customer with its "
        "favourite product and longest streak of purchase days, into PostgreSQL or CSV.",
        epilog="Examples:\n"
        "  custagg_spark.py --source 'exports/*.csv.gz' --database warehouse --table customers\n"
        "  custagg_spark.py --source day.parquet --output customers.csv\n"
        "  spark-submit --master yarn custagg_spark.py --source s3a://b/day/ --table customers\n\n"
        "The password comes from PGPASSWORD or ~/.pgpass, never from a flag.\n"
        "Exit codes: 0 success, 1 runtime failure, 2 usage error, 3 bad input data.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", action="append", metavar="PATH",
                        help="a file, a directory (its files, sorted) or a glob; repeatable")
    parser.add_argument("--delimiter", default=env("CUSTAGG_DELIMITER", "|"),
                        help="field delimiter of text files, one ASCII character (default |)")
    parser.add_argument("--multiline", action="store_true",
                        help="quoted fields may hold line breaks (each text file is then read "
                        "by one task)")
    parser.add_argument("--table", default=env("CUSTAGG_TABLE"), metavar="NAME",
                        help="target table, name or schema.name, replaced atomically")
    parser.add_argument("--database", default=env("PGDATABASE"), metavar="NAME",
                        help="database to load into; created when missing [env: PGDATABASE]")
    parser.add_argument("--host", default=env("PGHOST", "localhost"),
                        help="PostgreSQL host [env: PGHOST] (default localhost)")
    parser.add_argument("--port", type=int, default=int(env("PGPORT", "5432")),
                        help="PostgreSQL port [env: PGPORT] (default 5432)")
    parser.add_argument("--user", default=env("PGUSER", "postgres"),
                        help="PostgreSQL user [env: PGUSER] (default postgres)")
    parser.add_argument("--sslmode", default=env("PGSSLMODE"),
                        choices=["disable", "prefer", "require", "verify-ca", "verify-full"],
                        help="TLS as libpq's sslmode, for the driver's and the executors' "
                        "connections; the authorities from PGSSLROOTCERT [env: PGSSLMODE] "
                        "(default prefer)")
    parser.add_argument("--lock-timeout", type=float, default=10.0, metavar="SECONDS",
                        help="how long the swap waits for a lock on the target (default 10)")
    parser.add_argument("--output", default=env("CUSTAGG_OUTPUT"), metavar="FILE.csv",
                        help="write the rows here, sorted by customer_id, instead of PostgreSQL")
    parser.add_argument("--jdbc-jar", default=env("CUSTAGG_JDBC_JAR", DEFAULT_JDBC_JAR),
                        help="the PostgreSQL JDBC driver, for a local run (default %(default)s)")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE",
                        help="a Spark setting, as spark-submit's --conf; repeatable")
    args = parser.parse_args(argv)
    if not args.source:
        raise Failure(EXIT_USAGE, "--source is required")
    if (args.output is None) == (args.table is None):
        raise Failure(EXIT_USAGE, "give either --table (with --database) or --output")
    if args.table is not None and not args.database:
        raise Failure(EXIT_USAGE, "--table needs --database NAME (or PGDATABASE)")
    if len(args.delimiter) != 1 or not args.delimiter.isascii() or args.delimiter in '"\r\n':
        raise Failure(EXIT_USAGE, f"--delimiter {args.delimiter!r} is not one ASCII character")
    if args.table is not None:
        args.schema, args.table = table_name(args.table)
    return args


def table_name(text):
    """`name` or `schema.name`, validated and folded to lower case as custagg does."""
    parts = text.split(".")
    if len(parts) > 2 or not all(NAME_PART.match(p) for p in parts):
        raise Failure(EXIT_USAGE, f"--table {text!r}: each part starts with a letter or _ and "
                      "holds letters, digits and _, at most 63 bytes")
    parts = [p.lower() for p in parts]
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


def staging_name(qualified):
    """custagg's staging table of `qualified` (FNV-1a of `schema.table`)."""
    h = 0xCBF29CE484222325
    for b in qualified.encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"custagg_staging_{h:016x}"


# ---------------------------------------------------------------------------------------------
# Inputs


def expand(sources):
    """The files the sources name, in order: directories sorted, globs expanded and sorted."""
    files = []
    for source in sources:
        if source == "-" or source.startswith(("postgres://", "postgresql://")):
            raise Failure(EXIT_USAGE, f"--source {source}: the Spark job reads files only "
                          "(standard input and PostgreSQL sources are custagg's)")
        if "://" in source:
            files.append(source)  # a Hadoop file system (s3a://, gs://, hdfs://): Spark lists it
        elif os.path.isdir(source):
            names = sorted(n for n in os.listdir(source)
                           if os.path.isfile(os.path.join(source, n)))
            if not names:
                raise Failure(EXIT_DATA, f"{source}: the directory holds no files")
            files.extend(os.path.join(source, n) for n in names)
        elif any(c in source for c in "*?["):
            matched = sorted(p for p in globbing.glob(source) if os.path.isfile(p))
            if not matched:
                raise Failure(EXIT_USAGE, f"--source {source}: the pattern matches no file")
            files.extend(matched)
        elif os.path.isfile(source):
            files.append(source)
        else:
            raise Failure(EXIT_USAGE, f"--source {source}: no such file or directory")
    return files


def kind_of(path):
    """`parquet` or `text`, from the file's first bytes (remote files: from the name)."""
    if "://" in path:
        return "parquet" if path.endswith(".parquet") else "text"
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic == b"PAR1":
        return "parquet"
    if magic[:2] == b"\x1f\x8b" and not path.endswith(".gz"):
        raise Failure(EXIT_USAGE, f"{path}: gzip data in a file not named *.gz, which Spark "
                      "would read as text; rename it")
    if magic == b"\x28\xb5\x2f\xfd":
        raise Failure(EXIT_USAGE, f"{path}: zstd is not read by the Spark job; use custagg, or "
                      "gzip or Parquet")
    return "text"


def read_file(spark, path, delimiter, multiline):
    """One file as rows of (file, c, d, p, u, problem): `problem` names what is wrong, or null."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import DateType, IntegralType

    kind = kind_of(path)
    if kind == "parquet":
        df = spark.read.parquet(path)
    else:
        df = (spark.read.option("header", True).option("sep", delimiter)
              .option("quote", '"').option("escape", '"').option("multiLine", multiline)
              .option("mode", "FAILFAST").option("encoding", "UTF-8")
              .option("enforceSchema", False).csv(path))
    names = {}
    for name in df.columns:
        names.setdefault(name.lstrip("\ufeff").lower(), name)
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        wanted = {"custid": "custId", "transactiondate": "transactionDate",
                  "productsold": "productSold", "unitssold": "unitsSold"}
        raise Failure(EXIT_DATA, f"{path}: no column {', '.join(wanted[m] for m in missing)} "
                      "in the header")
    fields = {f.name: f.dataType for f in df.schema.fields}
    col = {c: F.col(f"`{names[c]}`") for c in REQUIRED}

    c = col["custid"].cast("string")
    p = col["productsold"].cast("string")
    date_type = fields[names["transactiondate"]]
    if isinstance(date_type, DateType):
        d = col["transactiondate"]
    else:
        raw = col["transactiondate"].cast("string")
        d = F.when(raw.rlike(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"), F.to_date(raw, "yyyy-MM-dd"))
    units_type = fields[names["unitssold"]]
    if isinstance(units_type, IntegralType):
        u = col["unitssold"].cast("long")
    else:
        raw_u = col["unitssold"].cast("string")
        u = F.when(raw_u.rlike(r"^[+-]?[0-9]{1,10}$"), raw_u.cast("long"))

    def text_problem(value, name):
        return (F.when(value.isNull() | (value == ""), F.lit(f"{name}: empty"))
                .when(F.octet_length(value) > 255, F.lit(f"{name}: longer than 255 bytes"))
                .when(F.instr(value, "\u0000") > 0, F.lit(f"{name}: holds a NUL byte")))

    problem = F.coalesce(
        text_problem(c, "custId"),
        text_problem(p, "productSold"),
        F.when(d.isNull(), F.lit("transactionDate: not a YYYY-MM-DD calendar date")),
        F.when(u.isNull() | (u < -(2**31)) | (u > 2**31 - 1),
               F.lit("unitsSold: not an integer that fits 32 bits")),
    )
    return df.select(F.lit(path).alias("file"), c.alias("c"), d.alias("d"), p.alias("p"),
                     u.alias("u"), problem.alias("problem"),
                     col["custid"].cast("string").alias("raw_c"))


def aggregate(rows):
    """The result: customer_id, favourite_product, longest_streak (contract §3)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    totals = rows.groupBy("c", "p").agg(F.sum("u").alias("s"))
    by_total = Window.partitionBy("c").orderBy(F.desc("s"), F.asc("p"))
    favourite = (totals.withColumn("rank", F.row_number().over(by_total))
                 .filter("rank = 1").select("c", F.col("p").alias("favourite_product")))
    days = rows.select("c", "d").distinct()
    by_day = Window.partitionBy("c").orderBy("d")
    # Consecutive days keep the same difference between the day and its rank: one run each.
    runs = (days.withColumn("rank", F.row_number().over(by_day))
            .withColumn("run", F.expr("date_sub(d, rank)")))
    streak = (runs.groupBy("c", "run").count().groupBy("c")
              .agg(F.max("count").cast("int").alias("longest_streak")))
    return favourite.join(streak, "c").select(
        F.col("c").alias("customer_id"), "favourite_product", "longest_streak")


# ---------------------------------------------------------------------------------------------
# Outputs


def csv_field(value):
    """RFC 4180 quoting where needed, as custagg writes it."""
    if any(ch in value for ch in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def write_csv(result, path):
    """The rows sorted by customer_id in byte order, written whole or not at all."""
    directory = os.path.dirname(os.path.abspath(path))
    temporary = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    rows = 0
    try:
        # Spark orders strings by their UTF-8 bytes, as custagg does.
        with open(temporary, "w", encoding="utf-8", newline="") as out:
            out.write(HEADER)
            for row in result.orderBy("customer_id").toLocalIterator():
                out.write(f"{csv_field(row[0])},{csv_field(row[1])},{row[2]}\n")
                rows += 1
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return rows


def pgpass_password(host, port, database, user):
    """The password of ~/.pgpass (or PGPASSFILE), read as libpq reads it."""
    path = os.environ.get("PGPASSFILE") or os.path.expanduser("~/.pgpass")
    try:
        if os.stat(path).st_mode & 0o077:
            return None
        lines = open(path, encoding="utf-8").read().splitlines()
    except OSError:
        return None
    want = ["localhost" if host.startswith("/") else host, str(port), database, user]
    for line in lines:
        if line.startswith("#"):
            continue
        fields, field, escaped = [], "", False
        for ch in line:
            if escaped:
                field, escaped = field + ch, False
            elif ch == "\\":
                escaped = True
            elif ch == ":" and len(fields) < 4:
                fields, field = fields + [field], ""
            else:
                field += ch
        fields.append(field)
        if len(fields) == 5 and all(h in ("*", w) for h, w in zip(fields, want)):
            return fields[4]
    return None


class Target:
    """The PostgreSQL target: connection, lock, staging table and swap, as custagg's sink."""

    def __init__(self, args):
        import psycopg
        from psycopg import sql

        self.psycopg, self.sql, self.args = psycopg, sql, args
        if args.host.startswith("/"):
            raise Failure(EXIT_USAGE, "--host: Spark's JDBC writers need a TCP host, not a "
                          "socket directory")
        self.password = os.environ.get("PGPASSWORD") or pgpass_password(
            args.host, args.port, args.database, args.user)
        self.shown = f"{args.user}@{args.host}:{args.port}/{args.database}"
        self.conn = self.connect_creating_database()
        self.conn.autocommit = True
        self.schema = args.schema or self.scalar("SELECT current_schema()")
        if self.schema is None:
            raise Failure(EXIT_RUNTIME, f"{self.shown}: no current schema; use --table schema.name")
        self.qualified = f"{self.schema}.{args.table}"
        self.staging = staging_name(self.qualified)
        # One run per target at a time, custagg's or this job's: the same lock.
        if not self.scalar("SELECT pg_try_advisory_lock(hashtext(%s))", [self.qualified]):
            raise Failure(EXIT_RUNTIME, f"{self.qualified}: another run is loading this table")
        self.execute(self.sql.SQL(
            "DROP TABLE IF EXISTS {s}; CREATE TABLE {s} (customer_id text NOT NULL, "
            "favourite_product text NOT NULL, longest_streak integer NOT NULL)"
        ).format(s=self.ident(self.staging)))
        self.staging_exists = True

    def connect(self, database):
        return self.psycopg.connect(host=self.args.host, port=self.args.port,
                                    user=self.args.user, dbname=database,
                                    password=self.password, connect_timeout=10,
                                    sslmode=self.args.sslmode or "prefer",
                                    application_name="custagg_spark")

    def connect_creating_database(self):
        try:
            return self.connect(self.args.database)
        except self.psycopg.OperationalError as e:
            if f'database "{self.args.database}" does not exist' not in str(e):
                raise Failure(EXIT_RUNTIME, f"cannot connect to {self.shown}: {one_line(e)}")
        with self.connect("postgres") as admin:
            admin.autocommit = True
            try:
                admin.execute(self.sql.SQL("CREATE DATABASE {}").format(
                    self.sql.Identifier(self.args.database)))
            except self.psycopg.errors.DuplicateDatabase:
                pass
        return self.connect(self.args.database)

    def ident(self, name):
        return self.sql.Identifier(self.schema, name)

    def scalar(self, query, params=None):
        return self.conn.execute(query, params).fetchone()[0]

    def execute(self, query, params=None):
        self.conn.execute(query, params)

    def jdbc_url(self):
        return f"jdbc:postgresql://{self.args.host}:{self.args.port}/{self.args.database}"

    def load(self, result):
        """Writes `result` into the staging table from the executors, then swaps it in."""
        expected = result.count()
        staging = self.ident(self.staging).as_string(self.conn)
        properties = {"user": self.args.user, "driver": "org.postgresql.Driver",
                      "batchsize": "10000", "reWriteBatchedInserts": "true",
                      "ApplicationName": "custagg_spark"}
        if self.password:
            properties["password"] = self.password
        # The JDBC driver takes libpq's TLS settings under the same names.
        if self.args.sslmode:
            properties["sslmode"] = self.args.sslmode
        if os.environ.get("PGSSLROOTCERT"):
            properties["sslrootcert"] = os.environ["PGSSLROOTCERT"]
        result.write.jdbc(self.jdbc_url(), staging, mode="append", properties=properties)
        stored = self.scalar(self.sql.SQL("SELECT count(*) FROM {}").format(
            self.ident(self.staging)))
        if stored != expected:
            raise Failure(EXIT_RUNTIME, f"{self.qualified}: the staging table holds {stored} "
                          f"rows, but {expected} customers were reduced")
        pkey = self.sql.Identifier(f"{self.staging}_pkey")
        self.execute(self.sql.SQL("ALTER TABLE {s} ADD CONSTRAINT {k} PRIMARY KEY "
                                  "(customer_id); ANALYZE {s}").format(
            s=self.ident(self.staging), k=pkey))
        self.swap()
        return expected

    def swap(self):
        sql, target, staging = self.sql, self.ident(self.args.table), self.ident(self.staging)
        with self.conn.transaction():
            self.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(
                sql.Literal(int(max(self.args.lock_timeout * 1000, 1)))))
            row = self.conn.execute(
                "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s", [self.schema, self.args.table]
            ).fetchone()
            refilled = False
            if row is None:
                self.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    staging, sql.Identifier(self.args.table)))
            else:
                oid = row[0]
                self.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(target))
                refilled = self.scalar(
                    "SELECT EXISTS (SELECT 1 FROM pg_depend WHERE refclassid = "
                    "'pg_class'::regclass AND refobjid = %s AND deptype = 'n')", [oid])
                if refilled:
                    self.execute(sql.SQL(
                        "TRUNCATE {t}; INSERT INTO {t} (customer_id, favourite_product, "
                        "longest_streak) SELECT customer_id, favourite_product, longest_streak "
                        "FROM {s}; DROP TABLE {s}").format(t=target, s=staging))
                else:
                    self.replace_keeping_privileges(oid, target, staging)
            if not refilled:
                self.rename_primary_key()
        self.staging_exists = False

    def replace_keeping_privileges(self, oid, target, staging):
        sql = self.sql
        shown = target.as_string(self.conn)
        grants = [r[0] for r in self.conn.execute(
            "SELECT 'GRANT ' || a.privilege_type || ' ON ' || %s || ' TO ' || "
            "CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) "
            "END || CASE WHEN a.is_grantable THEN ' WITH GRANT OPTION' ELSE '' END "
            "FROM pg_class c, aclexplode(c.relacl) a WHERE c.oid = %s", [shown, oid])]
        owner = self.scalar(
            "SELECT CASE WHEN relowner <> (SELECT oid FROM pg_roles WHERE rolname = "
            "current_user) THEN quote_ident(pg_get_userbyid(relowner)) END "
            "FROM pg_class WHERE oid = %s", [oid])
        self.execute(sql.SQL("DROP TABLE {}; ALTER TABLE {} RENAME TO {}").format(
            target, staging, sql.Identifier(self.args.table)))
        for grant in grants:  # every name in it came from the catalog through quote_ident
            self.execute(grant)
        if owner:
            self.execute(sql.SQL("ALTER TABLE {} OWNER TO ").format(target) + sql.SQL(owner))

    def rename_primary_key(self):
        wanted = f"{self.args.table}_pkey"[:63]
        taken = self.scalar(
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = "
            "c.relnamespace WHERE n.nspname = %s AND c.relname = %s)", [self.schema, wanted])
        if not taken:
            self.execute(self.sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                self.ident(f"{self.staging}_pkey"), self.sql.Identifier(wanted)))

    def close(self):
        if self.staging_exists:
            try:
                self.execute(self.sql.SQL("DROP TABLE IF EXISTS {}").format(
                    self.ident(self.staging)))
            except self.psycopg.Error:
                pass
        self.conn.close()


# ---------------------------------------------------------------------------------------------
# The run


def one_line(error):
    return " ".join(str(error).split())


def spark_session(args):
    from pyspark.sql import SparkSession

    builder = (SparkSession.builder.appName("custagg")
               .config("spark.ui.showConsoleProgress", "false"))
    if args.table is not None and os.path.isfile(args.jdbc_jar):
        builder = builder.config("spark.jars", args.jdbc_jar)
    for setting in args.conf:
        key, sep, value = setting.partition("=")
        if not sep:
            raise Failure(EXIT_USAGE, f"--conf {setting!r}: want KEY=VALUE")
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    if not any(c.startswith("spark.sql.shuffle.partitions=") for c in args.conf):
        # Spark's 200 is for clusters; a few per core, and adaptive execution merges small ones.
        parallelism = spark.sparkContext.defaultParallelism
        spark.conf.set("spark.sql.shuffle.partitions", str(max(4 * parallelism, 8)))
    # ANSI mode would fail casts instead of giving the nulls the checks above look for.
    spark.conf.set("spark.sql.ansi.enabled", "false")
    return spark


def run(args):
    files = expand(args.source)
    target = Target(args) if args.table is not None else None
    try:
        spark = spark_session(args)
        parts = [read_file(spark, f, args.delimiter, args.multiline) for f in files]
        rows = parts[0]
        for part in parts[1:]:
            rows = rows.unionByName(part)
        bad = rows.filter("problem IS NOT NULL").select("file", "raw_c", "problem").limit(1)
        for row in bad.collect():
            raise Failure(EXIT_DATA, f"{row['file']}: a row of custId {row['raw_c']!r}: "
                          f"{row['problem']}")
        result = aggregate(rows.select("c", "d", "p", "u")).cache()
        if target is None:
            customers = write_csv(result, args.output)
            where = args.output
        else:
            customers = target.load(result)
            where = f"{target.qualified} in {target.shown}"
        print(f"custagg_spark: {customers} customers -> {where}", file=sys.stderr)
    finally:
        if target is not None:
            target.close()


def main(argv=None):
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        run(args)
        return 0
    except Failure as e:
        print(f"custagg_spark: {e}", file=sys.stderr)
        return e.code
    except Exception as e:  # Spark's and the driver's errors: one line, no traceback
        name = type(e).__name__
        if "SparkUpgrade" in name or "FAILFAST" in str(e) or "Malformed" in str(e):
            print(f"custagg_spark: bad input: {one_line(e)[:500]}", file=sys.stderr)
            return EXIT_DATA
        print(f"custagg_spark: {name}: {one_line(e)[:500]}", file=sys.stderr)
        return EXIT_RUNTIME


if __name__ == "__main__":
    sys.exit(main())
