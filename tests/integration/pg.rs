//! A throwaway PostgreSQL server for the tests, started once per test binary.
//!
//! `initdb` and `pg_ctl` come from PATH, `pg_config --bindir`, or `/usr/lib/postgresql/*/bin`.
//! The cluster lives in a temporary directory, listens on 127.0.0.1 at a free port (and a socket
//! in that directory), runs as the `postgres` OS user when the tests run as root (PostgreSQL
//! refuses root), and is stopped and deleted by a watchdog when the test process ends, however
//! it ends. With `DATABASE_URL` set, the tests use that server instead.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// Runs custagg from `source` into `database`.`table` of the shared server, with extra flags.
pub fn load(source: &Path, database: &str, table: &str, extra: &[&str]) -> crate::util::Run {
    let mut args = vec![
        "--source",
        source.to_str().unwrap(),
        "--db-url",
        server().url(),
        "--database",
        database,
        "--table",
        table,
    ];
    args.extend_from_slice(extra);
    crate::util::run(&args)
}

/// A server the tests can use.
pub struct Server {
    /// Connection string of the server's `postgres` database.
    url: String,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The shared server, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server { url },
        _ => start(),
    })
}

impl Server {
    /// The connection string, for `--db-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A fresh database name for one test (not created: custagg creates it).
    pub fn database(&self, test: &str) -> String {
        format!("t_{test}_{}", std::process::id())
    }

    /// A client connected to `database`.
    pub fn client(&self, database: &str) -> postgres::Client {
        let mut config: postgres::Config = self.url.parse().unwrap();
        config.dbname(database);
        config.connect(postgres::NoTls).unwrap()
    }

    /// Whether `database` exists.
    pub fn database_exists(&self, database: &str) -> bool {
        self.client("postgres")
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
                &[&database],
            )
            .unwrap()
            .get(0)
    }
}

fn bindir() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file());
    if let Some(dir) = on_path {
        // /usr/local/bin may hold links to the real directory, which also has psql and friends.
        let initdb = std::fs::canonicalize(dir.join("initdb")).unwrap();
        return initdb.parent().unwrap().to_path_buf();
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if dir.join("initdb").is_file() {
            return dir;
        }
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    versions.retain(|dir| dir.join("initdb").is_file());
    versions.sort_by_key(|dir| {
        let version = dir.parent().and_then(Path::file_name).unwrap_or_default();
        version.to_string_lossy().parse::<u32>().unwrap_or(0)
    });
    versions.pop().expect(
        "no PostgreSQL server binaries (initdb, pg_ctl): install the Debian package \
         postgresql, or set DATABASE_URL to a server",
    )
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root.
fn pg_command(bin: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(bin);
        cmd
    } else {
        Command::new(bin)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> Server {
    let bin = bindir();
    let as_root = std::fs::metadata("/proc/self").unwrap().uid() == 0;
    let dir = tempfile::Builder::new()
        .prefix("custagg-pg-")
        .tempdir()
        .unwrap()
        .keep();
    if as_root {
        let id = |flag: &str| -> u32 {
            let out = Command::new("id")
                .args([flag, "postgres"])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "the tests run as root and need the postgres OS user"
            );
            String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
        };
        std::os::unix::fs::chown(&dir, Some(id("-u")), Some(id("-g"))).unwrap();
    }
    let data = dir.join("data");
    let status = pg_command(&bin.join("initdb"), as_root)
        .arg("-D")
        .arg(&data)
        .args([
            "--auth=trust",
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "initdb failed");
    let port = free_port();
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} -c fsync=off \
         -c full_page_writes=off -c synchronous_commit=off -c max_connections=50",
        dir.display()
    );
    let status = pg_command(&bin.join("pg_ctl"), as_root)
        .arg("-D")
        .arg(&data)
        .args(["-o", &options, "-l"])
        .arg(dir.join("server.log"))
        .args(["-w", "start"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "pg_ctl start failed; see {}/server.log",
        dir.display()
    );

    // Stop and delete the cluster when this process ends, however it ends.
    let stop = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 0.5; done; {runuser} '{pg_ctl}' -D '{data}' -m immediate stop; rm -rf '{dir}'",
        pid = std::process::id(),
        runuser = if as_root {
            "runuser -u postgres --"
        } else {
            ""
        },
        pg_ctl = bin.join("pg_ctl").display(),
        data = data.display(),
        dir = dir.display(),
    );
    // The watchdog must outlive this process, so it is never waited for.
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &stop])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();

    Server {
        url: format!("postgresql://postgres@127.0.0.1:{port}/postgres"),
    }
}
