//! Files that appear whole or not at all: written to a temporary file beside the target,
//! synced to disk, and renamed over it only when complete (the directory synced after), so a
//! failed run — or a power cut at any moment — never leaves a half-written file.
//!
//! The temporary file is `.custagg-<pid>-XXXXXX`; one left by a run that was killed (`kill -9`,
//! a crash, a power cut) is removed by the next run that writes into the same directory.
//!
//! A target that is a symbolic link to a file is replaced where the link points, and the link
//! stays. A target that is not a file at all — a pipe, a terminal, `/dev/stdout`, `/dev/null` —
//! is written directly, as the bytes come: there is nothing there to replace.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::{Error, Result};

/// A file being written; it replaces its target on [`AtomicFile::commit`] and vanishes if dropped.
pub struct AtomicFile {
    file: Target,
    /// The path as given, for messages.
    target: PathBuf,
    what: &'static str,
}

enum Target {
    /// A temporary file to be renamed over `to`.
    Temporary { temp: NamedTempFile, to: PathBuf },
    /// A pipe or a device, written as it goes.
    Stream(File),
}

impl AtomicFile {
    /// Starts writing `target`; `what` names the file in errors ("the output file").
    pub fn create(target: &Path, what: &'static str) -> Result<AtomicFile> {
        let file = match std::fs::metadata(target) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::io(
                    target,
                    what,
                    std::io::Error::from(std::io::ErrorKind::IsADirectory),
                ));
            }
            // /dev/stdout and the like are what they point at, even when that is a file.
            Ok(meta)
                if !meta.is_file() || target.starts_with("/dev") || target.starts_with("/proc") =>
            {
                let stream = std::fs::OpenOptions::new()
                    .write(true)
                    .open(target)
                    .map_err(|e| Error::io(target, what, e))?;
                Target::Stream(stream)
            }
            Ok(_) => {
                // A link to a file: replace the file, keep the link.
                let to = std::fs::canonicalize(target).map_err(|e| Error::io(target, what, e))?;
                Target::Temporary {
                    temp: temporary_beside(&to)?,
                    to,
                }
            }
            Err(_) => Target::Temporary {
                temp: temporary_beside(target)?,
                to: target.into(),
            },
        };
        Ok(AtomicFile {
            file,
            target: target.into(),
            what,
        })
    }

    /// Runs `write` on the file, reporting a failure as an error on `what`.
    pub fn write_with<T>(
        &mut self,
        write: impl FnOnce(&mut File) -> std::io::Result<T>,
    ) -> Result<T> {
        let file = match &mut self.file {
            Target::Temporary { temp, .. } => temp.as_file_mut(),
            Target::Stream(file) => file,
        };
        write(file).map_err(|e| Error::io(&self.target, self.what, e))
    }

    /// Moves the finished file over its target.
    pub fn commit(self) -> Result<()> {
        match self.file {
            Target::Temporary { mut temp, to } => {
                // On disk before the rename, and the rename on disk before the run reports
                // success: after a power cut the target is the old file or the whole new one.
                let file = temp.as_file_mut();
                file.flush()
                    .and_then(|()| file.sync_all())
                    .map_err(|e| Error::io(&self.target, self.what, e))?;
                temp.persist(&to).map_err(|e| {
                    Error::io(
                        &self.target,
                        "cannot move the finished file into place",
                        e.error,
                    )
                })?;
                sync_directory_of(&to)
                    .map_err(|e| Error::io(&self.target, "cannot sync the file's directory", e))?;
            }
            Target::Stream(mut file) => file
                .flush()
                .map_err(|e| Error::io(&self.target, self.what, e))?,
        }
        Ok(())
    }
}

/// Flushes the directory entry of `path` (a rename into it) to disk.
fn sync_directory_of(path: &Path) -> std::io::Result<()> {
    File::open(parent_of(path))?.sync_all()
}

/// The directory `path` is in: `.` for a bare file name.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A temporary file in the directory of `target`, after removing those of dead runs there.
fn temporary_beside(target: &Path) -> Result<NamedTempFile> {
    let parent = parent_of(target);
    crate::leftovers::remove_dead_runs(parent, ".custagg-", false);
    tempfile::Builder::new()
        .prefix(&crate::leftovers::run_prefix(".custagg-"))
        // An ordinary file: 0666 less the umask, like any file a command writes.
        .permissions(std::fs::Permissions::from_mode(0o666))
        .tempfile_in(parent)
        .map_err(|e| Error::io(parent, "cannot create a file in this directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appears_only_on_commit_with_ordinary_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.csv");
        let mut file = AtomicFile::create(&target, "cannot write").unwrap();
        file.write_with(|f| f.write_all(b"abc")).unwrap();
        assert!(!target.exists());
        file.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"abc");
        let mode = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(mode & 0o644, 0o644, "{mode:o}");

        let dropped = AtomicFile::create(&dir.path().join("never.csv"), "x").unwrap();
        drop(dropped);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporary_files_of_killed_runs_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // Process ids above the kernel's pid_max (4194304 at most) never run.
        let dead = dir.path().join(".custagg-4194399-abc");
        let live = dir
            .path()
            .join(format!(".custagg-{}-xyz", std::process::id()));
        let other = dir.path().join(".custagg-notapid");
        let dead_dir = dir.path().join(".custagg-4194399-dir");
        for f in [&dead, &live, &other] {
            std::fs::write(f, b"partial").unwrap();
        }
        std::fs::create_dir(&dead_dir).unwrap();
        let file = AtomicFile::create(&dir.path().join("out.csv"), "x").unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists() && dead_dir.exists());
        drop(file);
    }
}
