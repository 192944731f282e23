//! Test helpers: a private directory per test, running the real binary, and the sample file.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A directory of the test's own, removed at the end.
pub struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            dir: tempfile::Builder::new()
                .prefix("custagg-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    /// A FIFO called `name` that a thread of its own fills with `contents` once it is opened
    /// (made anew if it exists).
    pub fn fifo(&self, name: &str, contents: Vec<u8>) -> PathBuf {
        let path = self.path(name);
        let _ = std::fs::remove_file(&path);
        let status = Command::new("mkfifo").arg(&path).status().unwrap();
        assert!(status.success(), "mkfifo");
        let writer = path.clone();
        std::thread::spawn(move || std::fs::write(writer, contents).unwrap());
        path
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap()
    }
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The `custagg` binary, with none of its environment variables leaking in from the test's.
pub fn custagg() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_custagg"));
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("CUSTAGG_") || name.starts_with("PG") || name == "DATABASE_URL" {
            cmd.env_remove(&*name);
        }
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// Runs the binary with `args` and collects what it did.
pub fn run<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> Run {
    let out = custagg().args(args).output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The original sample, `../shared/data/transaction.csv`. `None` (and a note) when it is absent;
/// when `CUSTAGG_SAMPLE` is set (as `.ci/run` does) it must exist.
pub fn sample() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CUSTAGG_SAMPLE") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "CUSTAGG_SAMPLE={} is not a file",
            path.display()
        );
        return Some(path);
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/transaction.csv");
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: the sample {} is absent (set CUSTAGG_SAMPLE to require it)",
            path.display()
        );
        None
    }
}
