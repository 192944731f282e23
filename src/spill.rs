//! Spill files: the run's own directory, and byte streams that live in memory while they fit the
//! budget and in a file beyond it.
//!
//! The directory is `custagg-<pid>-XXXXXX` under `--spill-dir`, removed when the run ends, on
//! success and on error alike. A [`Spill`] holds whole encoded records (or rows); a file holds the
//! concatenation of the blocks written to it, so reading it back yields whole records again.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The per-run spill directory; deleted with everything in it when dropped.
pub struct SpillDir {
    dir: tempfile::TempDir,
}

impl SpillDir {
    /// Creates a fresh directory under `parent`, first removing the directories that killed runs
    /// left there (named after a process id that no longer runs).
    pub fn create(parent: &Path) -> Result<SpillDir> {
        remove_dead_runs(parent, "custagg-", true);
        let dir = tempfile::Builder::new()
            .prefix(&run_prefix("custagg-"))
            .tempdir_in(parent)
            .map_err(|e| {
                Error::io(
                    parent,
                    "cannot create the spill directory (set --spill-dir to a writable directory)",
                    e,
                )
            })?;
        Ok(SpillDir { dir })
    }

    /// Where the directory is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// This run's name prefix for its temporary entries of the kind `prefix` names: `<prefix><pid>-`,
/// the form [`remove_dead_runs`] finds again when the run is killed.
pub(crate) fn run_prefix(prefix: &str) -> String {
    format!("{prefix}{}-", std::process::id())
}

/// Removes the entries `<prefix><pid>-*` under `parent` — directories when `dirs`, else files —
/// whose process is gone (a run killed before it could clean up). Best effort: what cannot be
/// removed stays.
pub(crate) fn remove_dead_runs(parent: &Path, prefix: &str, dirs: bool) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if alive || kind.is_dir() != dirs || kind.is_symlink() {
            continue;
        }
        log::info!(
            "removing {}, left by a run that was killed",
            entry.path().display()
        );
        let _ = if dirs {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
    }
}

/// Blocks of bytes, some kept in memory and the rest appended to one spill file.
#[derive(Default)]
pub struct Spill {
    blocks: Vec<Vec<u8>>,
    memory_bytes: usize,
    /// The spill file; opened for each write, so thousands of partitions need no thousands of
    /// open descriptors.
    file: Option<PathBuf>,
    file_bytes: u64,
}

impl Spill {
    /// Keeps `block` in memory.
    pub fn keep(&mut self, block: Vec<u8>) {
        self.memory_bytes += block.len();
        self.blocks.push(block);
    }

    /// Bytes held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }

    /// Bytes written to the spill file.
    pub fn file_bytes(&self) -> u64 {
        self.file_bytes
    }

    /// Appends `block` to the spill file `dir/name`, creating it on first use.
    pub fn write(&mut self, dir: &SpillDir, name: &str, block: &[u8]) -> Result<()> {
        let path = self.file.get_or_insert_with(|| dir.path().join(name));
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&*path)
            .map_err(|e| Error::io(&*path, "cannot open a spill file", e))?;
        file.write_all(block).map_err(|e| {
            Error::io(
                &*path,
                "cannot write to the spill file (is the disk under --spill-dir full?)",
                e,
            )
        })?;
        self.file_bytes += block.len() as u64;
        Ok(())
    }

    /// Moves every block held in memory to the spill file; returns the bytes freed.
    pub fn spill_memory(&mut self, dir: &SpillDir, name: &str) -> Result<usize> {
        for block in std::mem::take(&mut self.blocks) {
            self.write(dir, name, &block)?;
        }
        Ok(std::mem::take(&mut self.memory_bytes))
    }

    /// All bytes: the memory blocks and, last, the spill file read back in one block (the file is
    /// deleted once read).
    pub fn into_blocks(self) -> Result<Vec<Vec<u8>>> {
        let mut blocks = self.blocks;
        if let Some(path) = self.file {
            let bytes = std::fs::read(&path)
                .map_err(|e| Error::io(&path, "cannot read back a spill file", e))?;
            let _ = std::fs::remove_file(&path);
            blocks.push(bytes);
        }
        Ok(blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_back_memory_first_then_file() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SpillDir::create(parent.path()).unwrap();
        let mut spill = Spill::default();
        spill.keep(b"ab".to_vec());
        spill.write(&dir, "p0", b"cd").unwrap();
        spill.keep(b"ef".to_vec());
        assert_eq!(spill.spill_memory(&dir, "p0").unwrap(), 4);
        spill.keep(b"gh".to_vec());
        assert_eq!(spill.file_bytes(), 6);
        let blocks = spill.into_blocks().unwrap();
        assert_eq!(blocks, vec![b"gh".to_vec(), b"cdabef".to_vec()]);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "file removed"
        );
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(!path.exists());
    }

    #[test]
    fn directories_of_dead_runs_are_removed_and_live_ones_kept() {
        let parent = tempfile::tempdir().unwrap();
        // Process ids above the kernel's pid_max (4194304 at most) never run.
        let dead = parent.path().join("custagg-4194399-abc");
        let live = parent
            .path()
            .join(format!("custagg-{}-xyz", std::process::id()));
        let other = parent.path().join("custagg-notapid");
        for d in [&dead, &live, &other] {
            std::fs::create_dir(d).unwrap();
        }
        std::fs::write(dead.join("partition-00001"), b"x").unwrap();
        let dir = SpillDir::create(parent.path()).unwrap();
        assert!(!dead.exists());
        assert!(live.exists() && other.exists());
        drop(dir);
    }
}
