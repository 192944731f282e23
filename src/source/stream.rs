//! The chunks of a source that is not mapped (a pipe, a FIFO, a compressed file, a COPY from
//! PostgreSQL), read front to back into owned buffers with the same boundary rule.

use std::borrow::Cow;
use std::io::{self, Read};
use std::path::Path;

use super::Chunk;
use super::boundary::{count_newlines, last_boundary};
use crate::error::{Error, Result};

/// Chunks of a source that is not mapped, read front to back.
pub struct StreamChunks<'s> {
    /// The source, for messages.
    path: &'s Path,
    reader: Box<dyn Read + Send + 's>,
    /// Bytes read but not yet handed out; they start at a record boundary outside quotes.
    buf: Vec<u8>,
    offset: u64,
    line: u64,
    chunk_size: usize,
    eof: bool,
}

impl<'s> StreamChunks<'s> {
    /// Chunks of about `chunk_size` bytes of the text `reader` gives; `path` names it.
    pub fn new(path: &'s Path, reader: Box<dyn Read + Send + 's>, chunk_size: usize) -> Self {
        StreamChunks {
            path,
            reader,
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
            if !self.eof && self.buf.len() < want {
                self.fill(want)?;
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

impl StreamChunks<'_> {
    /// Reads until `buf` holds `want` bytes or the stream ends. The buffer is grown once, not
    /// per read: a reader may give a few bytes at a time (a COPY gives a row per message).
    fn fill(&mut self, want: usize) -> Result<()> {
        let mut filled = self.buf.len();
        self.buf.resize(want, 0);
        let mut result = Ok(());
        while filled < want {
            match read_some(&mut self.reader, &mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => filled += n,
                Err(e) => {
                    result = Err(read_error(self.path, e));
                    break;
                }
            }
        }
        self.buf.truncate(filled);
        result
    }
}

/// One read, again when interrupted.
fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// A failed read: bad data (a truncated or corrupt compressed file) is bad input, exit 3; the
/// rest is the system's.
fn read_error(path: &Path, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::InvalidData {
        Error::Input {
            path: path.into(),
            message: e.to_string(),
        }
    } else {
        Error::io(path, "cannot read the source file", e)
    }
}
