//! The chunks of a source that cannot be mapped (a pipe, a FIFO), read front to back into owned
//! buffers with the same boundary rule.

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;

use super::boundary::{count_newlines, last_boundary};
use super::{Chunk, Source};
use crate::error::{Error, Result};

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

impl<'s> StreamChunks<'s> {
    /// Chunks of about `chunk_size` bytes of `file`, the body of `source`.
    pub(super) fn new(source: &'s Source, file: &'s File, chunk_size: usize) -> Self {
        StreamChunks {
            source,
            file,
            buf: Vec::new(),
            offset: 0,
            line: 1,
            chunk_size: chunk_size.max(1),
            eof: false,
        }
    }

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
