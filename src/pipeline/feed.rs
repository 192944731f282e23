//! The feed: chunks of the data after the header, in file order — slices of a mapped file, or
//! owned chunks read from a stream.

use std::borrow::Cow;

use crate::config::Config;
use crate::error::Result;
use crate::parse::{Header, read_header};
use crate::source::{Chunk, MappedChunks, Source, StreamChunks};

/// Chunks of the data after the header, in file order.
pub(super) enum Feed<'s> {
    Mapped {
        bytes: &'s [u8],
        specs: MappedChunks<'s>,
    },
    Stream {
        first: Option<Chunk<'static>>,
        rest: StreamChunks<'s>,
    },
}

impl<'s> Feed<'s> {
    /// Bytes of the source read so far (all of a mapped file's).
    pub(super) fn bytes_read(&self) -> u64 {
        match self {
            Feed::Mapped { bytes, .. } => bytes.len() as u64,
            Feed::Stream { rest, .. } => rest.offset(),
        }
    }

    pub(super) fn next_chunk(&mut self) -> Result<Option<Chunk<'s>>> {
        match self {
            Feed::Mapped { bytes, specs } => Ok(specs.next().map(|spec| Chunk {
                offset: spec.range.start as u64,
                first_line: spec.first_line,
                is_last: spec.range.end == bytes.len(),
                data: Cow::Borrowed(&bytes[spec.range]),
            })),
            Feed::Stream { first, rest } => match first.take() {
                Some(chunk) => Ok(Some(chunk)),
                None => rest.next_chunk(),
            },
        }
    }
}

/// Reads the header and prepares the chunks after it.
pub(super) fn open_feed<'s>(source: &'s Source, config: &Config) -> Result<(Header, Feed<'s>)> {
    if let Some(bytes) = source.bytes() {
        let header = read_header(source.path(), bytes, config.delimiter)?;
        source.release(0..header.data_start);
        let specs = MappedChunks::unnumbered(bytes, header.data_start, config.chunk_size);
        return Ok((header, Feed::Mapped { bytes, specs }));
    }
    let mut rest = source.stream(config.chunk_size).expect("not mapped");
    let first = rest.next_chunk()?;
    let first_bytes = first.as_ref().map_or(&[][..], |c| &c.data[..]);
    let header = read_header(source.path(), first_bytes, config.delimiter)?;
    let first = first.map(|chunk| Chunk {
        data: Cow::Owned(chunk.data[header.data_start..].to_vec()),
        offset: header.data_start as u64,
        first_line: header.data_line,
        is_last: chunk.is_last,
    });
    Ok((header, Feed::Stream { first, rest }))
}
