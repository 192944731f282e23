//! The source file, memory-mapped where possible and read in pieces where not, and cut into
//! chunks that begin and end at record boundaries.
//!
//! Record boundaries are found by quote parity: with RFC 4180 quoting, a line feed ends a record
//! exactly when an even number of quote bytes stands before it. So each chunk runs from the end of
//! the previous one for `chunk_size` bytes, whose quotes are counted, and the cut is then moved
//! forward to the first line feed at even parity. That is right even when a quoted field holds a
//! line break across a cut, costs one SIMD count per chunk, and needs no speculation. Chunks are
//! planned lazily, just ahead of the workers, so planning overlaps parsing and touches each page
//! only while it is about to be parsed. A quote byte inside an unquoted field breaks the parity; the parser reports such
//! a row as a bad row that cannot be skipped (see `parse`), because what follows it is ambiguous.
//!
//! Memory maps live in this module only. Where mapping is impossible (a pipe, a FIFO), the file
//! is read sequentially into owned chunks with the same boundary rule.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use memmap2::{Mmap, UncheckedAdvice};

use crate::error::{Error, Result};

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
            Body::Stream(file) => Some(StreamChunks {
                source: self,
                file,
                buf: Vec::new(),
                offset: 0,
                line: 1,
                chunk_size: chunk_size.max(1),
                eof: false,
            }),
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
    /// goes once both are done (else one page a chunk would stay: 19 MB over 10 GB). Pages are
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

const PAGE: usize = 4096;

/// Gives back the whole pages from `start` to `end` (page-aligned) of `map`.
fn dont_need(map: &Mmap, start: usize, end: usize) {
    if start < end {
        // SAFETY: the map is read-only and backed by a file, so MADV_DONTNEED drops only the
        // process's references to page-cache pages: a later read faults them in again with the
        // same contents. No Rust reference observes a change.
        let _ =
            unsafe { map.unchecked_advise_range(UncheckedAdvice::DontNeed, start, end - start) };
    }
}

/// The ranges of a file that are done with, as they come in any order.
#[derive(Default)]
struct DoneBytes {
    /// The file's length.
    len: usize,
    /// Every byte below this is done.
    below: usize,
    /// Done ranges above `below`, end by start.
    above: BTreeMap<usize, usize>,
    /// Pages (by their first byte) that hold a border between two ranges and reach beyond `below`.
    waiting: Vec<usize>,
}

impl DoneBytes {
    fn new(len: usize) -> Self {
        DoneBytes {
            len,
            ..DoneBytes::default()
        }
    }

    /// Marks `range` done; returns the pages that hold a border between two ranges and are now
    /// done whole.
    fn mark(&mut self, range: Range<usize>) -> Vec<usize> {
        self.above.insert(range.start, range.end);
        while let Some(end) = self.above.remove(&self.below) {
            if !self.below.is_multiple_of(PAGE) {
                self.waiting.push(self.below / PAGE * PAGE);
            }
            self.below = end;
        }
        let (below, all) = (self.below, self.below == self.len);
        let (mut done, waiting): (Vec<usize>, Vec<usize>) = self
            .waiting
            .iter()
            .partition(|&&page| page + PAGE <= below || all);
        self.waiting = waiting;
        done.dedup(); // small ranges: several borders on one page
        done
    }
}

/// Chunks of a mapped file at record boundaries, planned one at a time just ahead of the workers.
///
/// Planning a chunk counts its quotes (to know the parity at the nominal cut) and, unless
/// [`MappedChunks::unnumbered`], its line feeds (for line numbers) with SIMD byte counting, on
/// pages the workers are about to read anyway.
pub struct MappedChunks<'a> {
    data: &'a [u8],
    pos: usize,
    /// Line number of `pos`; `None` when chunks are not numbered.
    line: Option<u64>,
    chunk_size: usize,
}

impl<'a> MappedChunks<'a> {
    /// Chunks of about `chunk_size` bytes of `data[start..]`. `start` must itself be a record
    /// boundary outside quotes (the end of the header), and `start_line` its line number.
    pub fn new(data: &'a [u8], start: usize, start_line: u64, chunk_size: usize) -> Self {
        MappedChunks {
            data,
            pos: start.min(data.len()),
            line: Some(start_line),
            chunk_size: chunk_size.max(1),
        }
    }

    /// Like [`MappedChunks::new`], but without counting line feeds: every chunk's `first_line`
    /// is 0, so the line numbers a parser gives bad rows count from the chunk's start. The
    /// pipeline numbers the few bad rows from their offsets at the end instead
    /// ([`crate::rejects::BadRows::number_lines`]), which spares a pass over the whole file.
    pub fn unnumbered(data: &'a [u8], start: usize, chunk_size: usize) -> Self {
        MappedChunks {
            line: None,
            ..MappedChunks::new(data, start, 0, chunk_size)
        }
    }
}

impl Iterator for MappedChunks<'_> {
    type Item = ChunkSpec;

    fn next(&mut self) -> Option<ChunkSpec> {
        let (data, begin) = (self.data, self.pos);
        if begin >= data.len() {
            return None;
        }
        let nominal = begin.saturating_add(self.chunk_size).min(data.len());
        let end = if nominal == data.len() {
            nominal
        } else {
            let quotes = bytecount::count(&data[begin..nominal], b'"');
            find_boundary(data, nominal, quotes % 2 == 1).unwrap_or(data.len())
        };
        let spec = ChunkSpec {
            range: begin..end,
            first_line: self.line.unwrap_or(0),
        };
        if let Some(line) = &mut self.line {
            *line += count_newlines(&data[begin..end]);
        }
        self.pos = end;
        Some(spec)
    }
}

/// All chunks of `data[start..]` at once (see [`MappedChunks`]).
pub fn plan_chunks(
    data: &[u8],
    start: usize,
    start_line: u64,
    chunk_size: usize,
) -> Vec<ChunkSpec> {
    MappedChunks::new(data, start, start_line, chunk_size).collect()
}

/// The position just after the first line feed at or after `from` that stands outside quotes,
/// given whether `from` itself is inside a quoted field.
pub fn find_boundary(data: &[u8], from: usize, in_quotes: bool) -> Option<usize> {
    let mut pos = from;
    let mut in_quotes = in_quotes;
    loop {
        if in_quotes {
            pos += memchr::memchr(b'"', &data[pos..])? + 1;
            in_quotes = false;
        } else {
            let i = memchr::memchr2(b'"', b'\n', &data[pos..])?;
            let byte = data[pos + i];
            pos += i + 1;
            if byte == b'\n' {
                return Some(pos);
            }
            in_quotes = true;
        }
    }
}

/// Counts line feeds (SIMD).
pub fn count_newlines(bytes: &[u8]) -> u64 {
    bytecount::count(bytes, b'\n') as u64
}

/// Chunks of a source that cannot be mapped, read front to back.
pub struct StreamChunks<'s> {
    source: &'s Source,
    file: &'s File,
    /// Bytes read but not yet handed out; they start at a record boundary outside quotes.
    buf: Vec<u8>,
    offset: u64,
    line: u64,
    chunk_size: usize,
    eof: bool,
}

impl StreamChunks<'_> {
    /// Bytes of the stream handed out in chunks so far (the header's included).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next chunk, or `None` at the end of the file.
    pub fn next_chunk(&mut self) -> Result<Option<Chunk<'static>>> {
        let mut want = self.chunk_size;
        loop {
            while !self.eof && self.buf.len() < want {
                let old = self.buf.len();
                self.buf.resize(want, 0);
                let n = (&mut &*self.file)
                    .read(&mut self.buf[old..])
                    .map_err(|e| Error::io(self.source.path(), "cannot read the source file", e))?;
                self.buf.truncate(old + n);
                self.eof = n == 0;
            }
            if self.buf.is_empty() {
                return Ok(None);
            }
            let cut = if self.eof {
                Some(self.buf.len())
            } else {
                last_boundary(&self.buf)
            };
            match cut {
                Some(cut) => {
                    let rest = self.buf.split_off(cut);
                    let data = std::mem::replace(&mut self.buf, rest);
                    let chunk = Chunk {
                        offset: self.offset,
                        first_line: self.line,
                        is_last: self.eof && self.buf.is_empty(),
                        data: Cow::Owned(data),
                    };
                    self.offset += chunk.data.len() as u64;
                    self.line += count_newlines(&chunk.data);
                    return Ok(Some(chunk));
                }
                // One record longer than the buffer: read more before cutting.
                None => want = self.buf.len() * 2,
            }
        }
    }
}

/// The position after the last line feed outside quotes in `buf`, which starts outside quotes.
fn last_boundary(buf: &[u8]) -> Option<usize> {
    let total_quotes = bytecount::count(buf, b'"') as u64;
    let mut quotes_after = 0u64;
    let mut end = buf.len();
    while let Some(i) = memchr::memrchr2(b'"', b'\n', &buf[..end]) {
        if buf[i] == b'"' {
            quotes_after += 1;
        } else if (total_quotes - quotes_after).is_multiple_of(2) {
            return Some(i + 1);
        }
        end = i;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_is_given_back_once_all_its_ranges_are_done() {
        let mut draw = crate::generate::draws(0x2545_f491_4f6c_dd1d);
        let mut next = |n: u64| draw(n) as usize;
        for round in 0..200 {
            // Ranges of a few bytes to a few pages, done in a random order.
            let mut ranges = Vec::new();
            let mut at = 0;
            while at < 40_000 {
                let len = if round % 2 == 0 {
                    1 + next(9_000)
                } else {
                    1 + next(300)
                };
                ranges.push(at..at + len);
                at += len;
            }
            let len = at;
            let mut order: Vec<usize> = (0..ranges.len()).collect();
            for i in (1..order.len()).rev() {
                order.swap(i, next(i as u64 + 1));
            }
            let mut done = DoneBytes::new(len);
            let mut finished = vec![false; len];
            let mut given_back = vec![false; len.div_ceil(PAGE)];
            for &i in &order {
                let range = ranges[i].clone();
                finished[range.clone()].fill(true);
                // What `Source::release` gives back at once: the whole pages inside (and the
                // file's last page with the last range).
                let end = if range.end == len {
                    len.div_ceil(PAGE)
                } else {
                    range.end / PAGE
                };
                let first = range.start.div_ceil(PAGE);
                given_back[first..end.max(first)].fill(true);
                for page in done.mark(range) {
                    assert_eq!(page % PAGE, 0);
                    let bytes = page..(page + PAGE).min(len);
                    assert!(
                        finished[bytes].iter().all(|&f| f),
                        "page {page} given back early"
                    );
                    given_back[page / PAGE] = true;
                }
            }
            assert!(
                given_back.iter().all(|&g| g),
                "round {round}: a page stayed"
            );
            assert!(done.waiting.is_empty() && done.above.is_empty());
        }
    }

    /// Splits `data` with `plan_chunks` and checks that every cut is at a true record boundary.
    fn cuts(data: &[u8], chunk_size: usize) -> Vec<ChunkSpec> {
        let specs = plan_chunks(data, 0, 1, chunk_size);
        let mut expect = 0;
        for spec in &specs {
            assert_eq!(spec.range.start, expect, "chunks are contiguous");
            assert!(!spec.range.is_empty());
            expect = spec.range.end;
            let quotes_before = data[..spec.range.start]
                .iter()
                .filter(|&&b| b == b'"')
                .count();
            assert_eq!(
                quotes_before % 2,
                0,
                "cut at {} is inside quotes",
                spec.range.start
            );
            assert!(spec.range.start == 0 || data[spec.range.start - 1] == b'\n');
            let line = 1 + data[..spec.range.start]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            assert_eq!(spec.first_line, line);
        }
        assert_eq!(expect, data.len(), "chunks cover the input");
        specs
    }

    #[test]
    fn cuts_only_at_line_feeds_outside_quotes() {
        let data = b"a|b\n\"x\ny\"|z\n\"p\"\"\nq\"|r\nlast|row";
        for size in 1..data.len() + 2 {
            cuts(data, size);
        }
    }

    #[test]
    fn quoted_line_break_straddling_every_cut_position() {
        let mut data = Vec::new();
        for i in 0..50 {
            data.extend_from_slice(
                format!("c{i}|\"multi\nline\r\n\"\"field\"\"\n\"|{i}\n").as_bytes(),
            );
        }
        for size in [1, 2, 3, 5, 7, 11, 13, 64, 100, 1000] {
            let specs = cuts(&data, size);
            assert!(size > 100 || specs.len() > 1);
        }
    }

    #[test]
    fn no_final_newline_and_crlf() {
        let data = b"a|1\r\nb|2\r\nc|3";
        let specs = cuts(data, 4);
        assert_eq!(specs.last().unwrap().range.end, data.len());
    }

    #[test]
    fn one_huge_quoted_field_makes_one_chunk() {
        let mut data = b"\"".to_vec();
        data.extend(std::iter::repeat_n(b'\n', 1000));
        data.extend_from_slice(b"\"|x\ny|z\n");
        let specs = cuts(&data, 10);
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[1].first_line, 1002);
    }

    #[test]
    fn last_boundary_respects_quotes() {
        assert_eq!(last_boundary(b"a\nb\"\n\"c"), Some(2));
        assert_eq!(last_boundary(b"a\nb\n"), Some(4));
        assert_eq!(last_boundary(b"\"a\nb"), None);
        assert_eq!(last_boundary(b"abc"), None);
    }

    #[test]
    fn counts() {
        let data: Vec<u8> = (0..10_000).map(|i| [b'"', b'\n', b'x'][i % 3]).collect();
        assert_eq!(count_newlines(&data), 3333);
    }
}
