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
//! Memory maps live in this module only. Where mapping is impossible (a pipe, a FIFO, standard
//! input) or the file is compressed, it is read sequentially into owned chunks with the same
//! boundary rule. What a file holds is told by its first bytes, never its name ([`Format`]).
//!
//! [`inputs`] expands the `--source` arguments into the run's inputs; [`boundary`] finds the
//! cuts, [`mapped`] plans a map's chunks, [`stream`] reads a stream's, [`decode`] decompresses
//! gzip and zstd, [`release`] gives the map's pages back once they are done; [`parquet`] reads
//! a Parquet file's footer, [`postgres`] a table or query of a PostgreSQL database.

mod boundary;
mod decode;
pub mod hash;
pub mod inputs;
mod mapped;
pub mod parquet;
pub mod postgres;
mod release;
mod stream;
#[cfg(test)]
mod tests;

pub use boundary::{count_newlines, find_boundary};
pub use decode::Format;
pub use inputs::{Input, expand};
pub use mapped::{MappedChunks, plan_chunks};
pub use stream::StreamChunks;

use std::borrow::Cow;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use memmap2::Mmap;

use crate::error::{Error, Result};
use release::{DoneBytes, PAGE, dont_need};

/// An open source file.
pub struct Source {
    path: PathBuf,
    /// What the file holds, when told from its first bytes at open (regular files); a stream's
    /// is told when it is read.
    format: Option<Format>,
    body: Body,
    /// What of a mapped file is done with (see [`Source::release`]).
    done: Mutex<DoneBytes>,
}

enum Body {
    /// A regular file, mapped read-only (the file kept for reads that must not touch the map).
    Mapped(Mmap, File),
    /// A regular file of zero bytes (which cannot be mapped).
    Empty,
    /// Anything that cannot be mapped, or is not plain text: read front to back.
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
    /// Opens `path`, mapping it when it is a regular file of plain text.
    pub fn open(path: &Path) -> Result<Source> {
        let file =
            File::open(path).map_err(|e| Error::io(path, "cannot open the source file", e))?;
        Source::from_file(file, path.into())
    }

    /// Standard input, shown as `<stdin>`: mapped when it is a regular file, else a stream.
    pub fn stdin() -> Result<Source> {
        let shown = PathBuf::from("<stdin>");
        let file = File::open("/dev/stdin")
            .map_err(|e| Error::io(&shown, "cannot open standard input", e))?;
        Source::from_file(file, shown)
    }

    /// A source of `file`, opened from `path`.
    fn from_file(file: File, path: PathBuf) -> Result<Source> {
        let meta = file
            .metadata()
            .map_err(|e| Error::io(&path, "cannot read the source file's metadata", e))?;
        if meta.is_dir() {
            return Err(Error::Input {
                path,
                message: "is a directory, not a file".into(),
            });
        }
        let mut format = None;
        if meta.is_file() {
            let mut magic = [0; 4];
            // `pread`, so that a stream of the file still starts at its first byte.
            let n = std::os::unix::fs::FileExt::read_at(&file, &mut magic, 0)
                .map_err(|e| Error::io(&path, "cannot read the source file", e))?;
            format = Some(Format::of(&magic[..n]));
        }
        let body = if meta.is_file() && meta.len() == 0 {
            Body::Empty
        } else if meta.is_file() && format == Some(Format::Text) {
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
            path,
            format,
            body,
            done: Mutex::new(DoneBytes::new(len)),
        })
    }

    /// What the file holds, when known before reading it (a regular file's first bytes).
    pub fn format(&self) -> Option<Format> {
        self.format
    }

    /// The file itself, for readers that seek (Parquet).
    pub fn file(&self) -> Option<&File> {
        match &self.body {
            Body::Mapped(_, file) | Body::Stream(file) => Some(file),
            Body::Empty => None,
        }
    }

    /// The size in bytes of the file as it is stored, when it is a regular file (compressed
    /// or not).
    pub fn stored_len(&self) -> Option<u64> {
        match &self.body {
            Body::Stream(file) if self.format.is_some() => file.metadata().ok().map(|m| m.len()),
            _ => self.len(),
        }
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

    /// A sequential reader of chunks of the text a source that is not mapped holds: the file
    /// itself, or what its gzip or zstd data decompresses to (told from its first bytes).
    /// `None` for a mapped file; an error for a Parquet file, which is not read as a stream.
    pub fn stream(&self, chunk_size: usize) -> Result<Option<StreamChunks<'_>>> {
        let Body::Stream(file) = &self.body else {
            return Ok(None);
        };
        let mut file = file;
        let mut magic = [0; 4];
        let n = match self.format {
            Some(_) => 0, // a regular file: read from its start
            None => read_prefix(&mut file, &mut magic)
                .map_err(|e| Error::io(&self.path, "cannot read the source file", e))?,
        };
        let format = self.format.unwrap_or_else(|| Format::of(&magic[..n]));
        let raw: Box<dyn Read + Send + '_> =
            Box::new(io::Cursor::new(magic[..n].to_vec()).chain(file));
        let reader = decode::decoder(format, raw).map_err(|message| Error::Input {
            path: self.path.clone(),
            message,
        })?;
        Ok(Some(StreamChunks::new(&self.path, reader, chunk_size)))
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

/// Reads up to `buf.len()` bytes from the start of `reader`, fewer only at its end.
fn read_prefix(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
