//! The chunks of a mapped file, planned lazily just ahead of the workers.

use super::ChunkSpec;
use super::boundary::{count_newlines, find_boundary};

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
    /// pipeline numbers the few bad rows from their offsets at the end instead, in one pass up
    /// to the last of them, which spares a pass over the whole file.
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
