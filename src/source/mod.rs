//! The source file, memory-mapped where possible and read in pieces where not, and cut into
//! chunks that begin and end at record boundaries.
//!
//! Record boundaries are found by quote parity: with RFC 4180 quoting, a line feed ends a record
//! exactly when an even number of quote bytes stands before it. So each chunk runs from the end of
//! the previous one for `chunk_size` bytes, whose quotes are counted, and the cut is then moved
//! forward to the first line feed at even parity. That is right even when a quoted field holds a
//! line break across a cut, costs one SIMD count per chunk, and needs no speculation. Chunks are
//! planned lazily, just ahead of the workers, so planning overlaps parsing and touches each page
//! only while it is about to be parsed. A quote byte inside an unquoted field breaks the parity;
//! the parser reports such a row as a bad row that cannot be skipped (see `parse`), because what
//! follows it is ambiguous.
//!
//! Memory maps live in this module only. Where mapping is impossible (a pipe, a FIFO), the file
//! is read sequentially into owned chunks with the same boundary rule. [`boundary`] finds the
//! cuts, [`mapped`] plans a map's chunks, [`stream`] reads a stream's, [`release`] gives the
//! map's pages back once they are done.

mod boundary;
mod mapped;
mod release;
mod stream;
#[cfg(test)]
mod tests;

pub use boundary::{count_newlines, find_boundary};
pub use mapped::{MappedChunks, plan_chunks};
pub use stream::StreamChunks;

use std::borrow::Cow;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use memmap2::Mmap;

use crate::error::{Error, Result};
use release::{DoneBytes, PAGE, dont_need};

/// An open source file.
pub struct Source {
    path: PathBuf,
    body: Body,
    /// What of a mapped file is done with (see [`Source::release`]).
    done: Mutex<DoneBytes>,
}

enum Body {
    /// A regular file, mapped read-only (the file kept for reads that must not touch the map).
    Mapped(Mmap, File),
    /// A regular file of zero bytes (which cannot be mapped).
    Empty,
    /// Anything that cannot be mapped: read front to back.
    Stream(File),
}

/// A piece of the source that begins at a record boundary and ends at one (or at the end).
pub struct Chunk<'a> {
    /// The bytes of the chunk.
    pub data: Cow<'a, [u8]>,
    /// Byte offset of `data[0]` in the file.
    pub offset: u64,
    /// Physical line number (1-based) of `data[0]`.
    pub first_line: u64,
    /// Whether the chunk ends at the end of the file (the only place a record may end without a
    /// line feed).
    pub is_last: bool,
}

/// Where a chunk of a mapped file lies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChunkSpec {
    /// Byte range in the file.
    pub range: Range<usize>,
    /// Physical line number (1-based) of the range's first byte.
    pub first_line: u64,
}

impl Source {
    /// Opens `path`, mapping it when it is a regular file.
    pub fn open(path: &Path) -> Result<Source> {
        let file =
            File::open(path).map_err(|e| Error::io(path, "cannot open the source file", e))?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(path, "cannot read the source file's metadata", e))?;
        if meta.is_dir() {
            return Err(Error::Input {
                path: path.into(),
                message: "is a directory, not a file".into(),
            });
        }
        let body = if meta.is_file() && meta.len() == 0 {
            Body::Empty
        } else if meta.is_file() {
            // SAFETY: the map is read-only and private to this process. Another process that
            // truncates or rewrites the file while we run breaks the assumption that mapped bytes
            // do not change; like ripgrep, we accept that risk for regular files, and a file
            // changing under a batch run is an error of its own anyway.
            match unsafe { Mmap::map(&file) } {
                Ok(map) => Body::Mapped(map, file),
                Err(_) => Body::Stream(file),
            }
        } else {
            Body::Stream(file)
        };
        let len = match &body {
            Body::Mapped(map, _) => map.len(),
            _ => 0,
        };
        Ok(Source {
            path: path.into(),
            body,
            done: Mutex::new(DoneBytes::new(len)),
        })
    }

    /// The path the source was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The size in bytes, when the source is a regular file.
    pub fn len(&self) -> Option<u64> {
        match &self.body {
            Body::Mapped(map, _) => Some(map.len() as u64),
            Body::Empty => Some(0),
            Body::Stream(_) => None,
        }
    }

    /// Whether the source is known to hold no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == Some(0)
    }

    /// All bytes of the file, when it is mapped (or empty).
    pub fn bytes(&self) -> Option<&[u8]> {
        match &self.body {
            Body::Mapped(map, _) => Some(map),
            Body::Empty => Some(&[]),
            Body::Stream(_) => None,
        }
    }

    /// A sequential reader of chunks, for a source that is not mapped.
    pub fn stream(&self, chunk_size: usize) -> Option<StreamChunks<'_>> {
        match &self.body {
            Body::Stream(file) => Some(StreamChunks::new(self, file, chunk_size)),
            _ => None,
        }
    }

    /// Reads the bytes at `offset` of a mapped file into `buf` without touching the map (so no
    /// page is charged to this process); returns how many were read, 0 for other sources.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        match &self.body {
            Body::Mapped(_, file) => std::os::unix::fs::FileExt::read_at(file, buf, offset),
            _ => Ok(0),
        }
    }

    /// Tells the kernel that the bytes of `range` — a chunk, or the header; each range once —
    /// are done with, so that their pages stop counting towards this process's memory. The
    /// whole pages inside the range go at once; a page it shares with the range before or after
    /// goes once both are done (else one page a chunk would stay). Pages are
    /// read again from the page cache if touched later.
    pub fn release(&self, range: Range<usize>) {
        let Body::Mapped(map, _) = &self.body else {
            return;
        };
        // The file's last page has no range after it.
        let end = if range.end == map.len() {
            range.end.next_multiple_of(PAGE)
        } else {
            range.end / PAGE * PAGE
        };
        dont_need(map, range.start.next_multiple_of(PAGE), end);
        let shared = self
            .done
            .lock()
            .expect("no panics while locked")
            .mark(range);
        for page in shared {
            dont_need(map, page, page + PAGE);
        }
    }
}
