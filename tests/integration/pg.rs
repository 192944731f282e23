//! A throwaway PostgreSQL server for the tests, started once per test binary.
//!
//! `initdb` and `pg_ctl` come from PATH, `pg_config --bindir`, or `/usr/lib/postgresql/*/bin`.
//! The cluster lives in a temporary directory, listens on 127.0.0.1 at a free port (and a socket
//! in that directory), runs as the `postgres` OS user when the tests run as root (PostgreSQL
//! refuses root), and is stopped and deleted by a watchdog when the test process ends, however
//! it ends. With `DATABASE_URL` set, the tests use that server instead.
//!
//! The server has TLS on, with a certificate for `localhost` signed by a certificate authority
//! made here ([`Tls`]); plain and TLS sessions are both let in, except to two databases:
//! [`TLS_ONLY`] (TLS sessions only) and [`TLS_CERT`] (TLS with a client certificate only).

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

/// The database that takes TLS sessions only (`hostssl` in pg_hba.conf, `hostnossl` rejected).
pub const TLS_ONLY: &str = "tls_only";
/// The database that takes TLS sessions with a client certificate only (`cert` authentication).
pub const TLS_CERT: &str = "tls_cert";

/// A server the tests can use.
pub struct Server {
    /// Connection string of the server's `postgres` database.
    url: String,
    /// The server's port; its TLS files and log, when the tests started it.
    own: Option<Own>,
}

/// What the tests know of a server they started themselves.
pub struct Own {
    pub port: u16,
    pub tls: Tls,
    pub log: PathBuf,
}

/// The TLS files of the tests' own server, all PEM.
pub struct Tls {
    /// The authority that signed the server's and the client's certificates.
    pub ca: PathBuf,
    /// Another authority, which signed nothing the server has.
    pub other_ca: PathBuf,
    /// A client certificate for the user `postgres`, and its key (mode 0600).
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The shared server, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(|| match std::env::var("DATABASE_URL") {
        Ok(url) if !url.is_empty() => Server { url, own: None },
        _ => start(),
    })
}

impl Server {
    /// The connection string, for `--db-url`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The port, TLS files and log of the tests' own server; `None` (and a note) for a server
    /// of `DATABASE_URL`, whose certificates the tests do not know.
    pub fn own(&self) -> Option<&Own> {
        if self.own.is_none() {
            eprintln!("note: DATABASE_URL names a server of its own; skipping the TLS test");
        }
        self.own.as_ref()
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
    let tls = make_certificates(&dir.join("tls"), as_root);
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
    // First match wins: the two TLS databases' rules before everyone else's.
    let hba = format!(
        "local all all trust\n\
         hostssl {TLS_ONLY} all 127.0.0.1/32 trust\n\
         hostnossl {TLS_ONLY} all 127.0.0.1/32 reject\n\
         hostssl {TLS_CERT} all 127.0.0.1/32 cert\n\
         host {TLS_CERT} all 127.0.0.1/32 reject\n\
         host all all 127.0.0.1/32 trust\n"
    );
    std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
    let port = free_port();
    let server_files = dir.join("tls");
    let options = format!(
        "-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={} -c fsync=off \
         -c full_page_writes=off -c synchronous_commit=off -c max_connections=50 \
         -c ssl=on -c ssl_cert_file={tls}/server.crt -c ssl_key_file={tls}/server.key \
         -c ssl_ca_file={tls}/ca.crt -c log_connections=on",
        dir.display(),
        tls = server_files.display(),
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
        own: Some(Own {
            port,
            tls,
            log: dir.join("server.log"),
        }),
    }
}

/// Makes the certificates in `dir`: an authority (`ca.crt`), the server's certificate for
/// `localhost` (`server.crt`, `server.key`, the postgres user's when we are root), a client
/// certificate for the user `postgres`, and an unrelated authority (`other-ca.crt`).
fn make_certificates(dir: &Path, as_root: bool) -> Tls {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    use rcgen::{ExtendedKeyUsagePurpose, KeyUsagePurpose};
    use std::os::unix::fs::PermissionsExt;

    std::fs::create_dir(dir).unwrap();
    let authority = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), Issuer::new(params, key))
    };
    let (ca_pem, ca) = authority("custagg tests CA");
    let (other_pem, _) = authority("custagg tests, another CA");
    let leaf = |names: Vec<String>, common: &str, usage: ExtendedKeyUsagePurpose| {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, common);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &ca).unwrap();
        (cert.pem(), key.serialize_pem())
    };
    let server = leaf(
        vec!["localhost".into()],
        "localhost",
        ExtendedKeyUsagePurpose::ServerAuth,
    );
    let client = leaf(vec![], "postgres", ExtendedKeyUsagePurpose::ClientAuth);
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    };
    let tls = Tls {
        ca: write("ca.crt", &ca_pem),
        other_ca: write("other-ca.crt", &other_pem),
        client_cert: write("client.crt", &client.0),
        client_key: write("client.key", &client.1),
    };
    for (name, text) in [("server.crt", &server.0), ("server.key", &server.1)] {
        let path = write(name, text);
        if as_root {
            let status = Command::new("chown")
                .arg("postgres:")
                .arg(&path)
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres {}", path.display());
        }
    }
    if as_root {
        // The server reads ca.crt too.
        std::fs::set_permissions(&tls.ca, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    tls
}
