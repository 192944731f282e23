//! Spill files: the run's own directory, and byte streams that live in memory while they fit the
//! budget and in a file beyond it.
//!
//! The directory is `custagg-<pid>-XXXXXX` under `--spill-dir`, removed when the run ends, on
//! success and on error alike. A [`Spill`] holds whole encoded records (or rows). The partitions
//! of a run spill into a few shared files, one per writing thread (up to [`LANES`]), each block
//! appended at a place reserved for it: a file written front to back costs the kernel a third of
//! what appending to a file per partition does (which also opened the partition's file for every
//! block), and threads that do not share a file do not wait on its lock. A partition keeps the
//! places of its blocks and reads them back together, so it gets whole records again. The CSV
//! sink keeps the reduced runs that wait for their turn or for the merge in the same files.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::leftovers::{remove_dead_runs, run_prefix};

/// The per-run spill directory; deleted with everything in it when dropped.
pub struct SpillDir {
    dir: tempfile::TempDir,
    /// The files partitions spill to, one per lane, each created at its lane's first spill.
    lanes: [OnceLock<BlockFile>; LANES],
}

/// Files of spilled partition blocks: threads take lanes in turn as they first spill.
const LANES: usize = 8;

static NEXT_LANE: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static LANE: usize = NEXT_LANE.fetch_add(1, Ordering::Relaxed) % LANES;
}

/// Where a spilled piece is: its lane's file, its offset there and its length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Extent {
    lane: usize,
    at: u64,
    len: u64,
}

impl Extent {
    /// The bytes `range` of this piece.
    pub(crate) fn slice(self, range: std::ops::Range<usize>) -> Extent {
        assert!(range.start <= range.end && range.end as u64 <= self.len);
        Extent {
            lane: self.lane,
            at: self.at + range.start as u64,
            len: range.len() as u64,
        }
    }
}

/// A lane's file of spilled partition blocks, and where the next block goes.
struct BlockFile {
    file: File,
    end: AtomicU64,
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
        Ok(SpillDir {
            dir,
            lanes: Default::default(),
        })
    }

    /// Where the directory is.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Bytes written to the spill files so far.
    pub fn written_bytes(&self) -> u64 {
        let ends = self.lanes.iter().filter_map(OnceLock::get);
        ends.map(|lane| lane.end.load(Ordering::Relaxed)).sum()
    }

    /// The file of spilled partition blocks of `lane`.
    fn lane_path(&self, lane: usize) -> PathBuf {
        self.dir.path().join(format!("partitions-{lane}"))
    }

    /// Writes `blocks` one after the other into the calling thread's lane; returns where.
    /// `action` is what an error says could not be done.
    pub(crate) fn append(&self, blocks: &[&[u8]], action: &'static str) -> Result<Extent> {
        let lane = LANE.with(|lane| *lane);
        let file = match self.lanes[lane].get() {
            Some(file) => file,
            None => {
                // Threads of one lane that spill first at the same moment open the same file (it
                // is never truncated); one of them is kept.
                let path = self.lane_path(lane);
                let file = File::options()
                    .create(true)
                    .truncate(false) // another thread of the lane may have written already
                    .read(true)
                    .write(true)
                    .open(&path)
                    .map_err(|e| Error::io(&path, "cannot create a spill file", e))?;
                let _ = self.lanes[lane].set(BlockFile {
                    file,
                    end: AtomicU64::new(0),
                });
                self.lanes[lane].get().expect("set above")
            }
        };
        let len: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let start = file.end.fetch_add(len, Ordering::Relaxed);
        let mut at = start;
        for block in blocks {
            file.file
                .write_all_at(block, at)
                .map_err(|e| Error::io(self.lane_path(lane), action, e))?;
            at += block.len() as u64;
        }
        Ok(Extent {
            lane,
            at: start,
            len,
        })
    }

    /// The bytes of `extent`, read back.
    pub(crate) fn read(&self, extent: Extent) -> Result<Vec<u8>> {
        let mut buf = vec![0; extent.len as usize];
        self.read_into(extent, &mut buf)?;
        Ok(buf)
    }

    /// Reads the bytes of `extent` into `buf`, which is as long.
    fn read_into(&self, extent: Extent, buf: &mut [u8]) -> Result<()> {
        debug_assert_eq!(buf.len() as u64, extent.len);
        let file = self.lanes[extent.lane]
            .get()
            .expect("the extent was written");
        file.file.read_exact_at(buf, extent.at).map_err(|e| {
            Error::io(
                self.lane_path(extent.lane),
                "cannot read back the spill file",
                e,
            )
        })
    }
}

/// Blocks of bytes, some kept in memory and the rest in the run's spill files.
#[derive(Default)]
pub struct Spill {
    blocks: Vec<Vec<u8>>,
    memory_bytes: usize,
    /// Where the spilled bytes are, in the order written.
    extents: Vec<Extent>,
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

    /// Moves the blocks held in memory, and then `block`, to a spill file of `dir`, in one
    /// place; returns the bytes freed from memory.
    pub fn spill(&mut self, dir: &SpillDir, block: &[u8]) -> Result<usize> {
        let held = std::mem::take(&mut self.blocks);
        let all: Vec<&[u8]> = held
            .iter()
            .map(Vec::as_slice)
            .chain(std::iter::once(block))
            .collect();
        let new = dir.append(
            &all,
            "cannot write to the spill file (is the disk under --spill-dir full?)",
        )?;
        match self.extents.last_mut() {
            Some(last) if last.lane == new.lane && last.at + last.len == new.at => {
                last.len += new.len;
            }
            _ => self.extents.push(new),
        }
        self.file_bytes += new.len;
        Ok(std::mem::take(&mut self.memory_bytes))
    }

    /// All bytes: the memory blocks and, last, what was spilled, read back into one block.
    pub fn into_blocks(self, dir: &SpillDir) -> Result<Vec<Vec<u8>>> {
        let mut blocks = self.blocks;
        if self.file_bytes > 0 {
            let mut bytes = vec![0; self.file_bytes as usize];
            let mut filled = 0;
            for extent in self.extents {
                let len = extent.len as usize;
                dir.read_into(extent, &mut bytes[filled..filled + len])?;
                filled += len;
            }
            blocks.push(bytes);
        }
        Ok(blocks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_come_back_memory_first_then_what_was_spilled() {
        let parent = tempfile::tempdir().unwrap();
        let dir = SpillDir::create(parent.path()).unwrap();
        let (mut a, mut b) = (Spill::default(), Spill::default());
        a.keep(b"ab".to_vec());
        assert_eq!(a.spill(&dir, b"cd").unwrap(), 2);
        b.keep(b"12".to_vec());
        assert_eq!(b.spill(&dir, b"34").unwrap(), 2); // between a's two places in the file
        a.keep(b"ef".to_vec());
        assert_eq!(a.spill(&dir, b"gh").unwrap(), 2);
        // From another thread: another lane (unless eight threads took lanes in between).
        std::thread::scope(|s| {
            s.spawn(|| {
                b.keep(b"56".to_vec());
                assert_eq!(b.spill(&dir, b"78").unwrap(), 2);
            });
        });
        a.keep(b"ij".to_vec());
        assert_eq!((a.memory_bytes(), a.file_bytes()), (2, 8));
        assert_eq!(
            a.into_blocks(&dir).unwrap(),
            vec![b"ij".to_vec(), b"abcdefgh".to_vec()]
        );
        assert_eq!(b.into_blocks(&dir).unwrap(), vec![b"12345678".to_vec()]);
        assert_eq!(
            Spill::default().into_blocks(&dir).unwrap(),
            Vec::<Vec<u8>>::new()
        );
        let path = dir.path().to_path_buf();
        drop(dir);
        assert!(
            !path.exists(),
            "the directory and its spill file are removed"
        );
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
