//! What a file holds, told from its first bytes, and the decompression of gzip and zstd: each
//! file a stream, decoded by the crates of those formats (flate2 on zlib-rs, zstd).
//!
//! A decoder's error is turned into one that names the compressed byte the decoder had read up
//! to, so that a truncated or corrupt file is reported with where it went wrong.

use std::io::{self, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// What a file holds, by its magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Delimited text.
    Text,
    /// gzip (RFC 1952), one member or several.
    Gzip,
    /// Zstandard, one frame or several.
    Zstd,
    /// Apache Parquet.
    Parquet,
}

impl Format {
    /// The format whose magic `prefix` (the file's first up to 4 bytes) starts with; text for
    /// anything else.
    pub fn of(prefix: &[u8]) -> Format {
        match prefix {
            [0x1f, 0x8b, ..] => Format::Gzip,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Format::Zstd,
            [b'P', b'A', b'R', b'1', ..] => Format::Parquet,
            _ => Format::Text,
        }
    }

    /// Its name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Gzip => "gzip",
            Format::Zstd => "zstd",
            Format::Parquet => "Parquet",
        }
    }
}

/// The text that `raw`, a stream of `format`, holds. Parquet cannot be read as a stream.
pub(super) fn decoder<'r>(
    format: Format,
    raw: Box<dyn Read + Send + 'r>,
) -> Result<Box<dyn Read + Send + 'r>, String> {
    let read = Arc::new(ReadSoFar::default());
    let counted = Counted {
        inner: raw,
        read: read.clone(),
    };
    Ok(match format {
        Format::Text => Box::new(counted),
        Format::Gzip => Box::new(Decoded {
            inner: flate2::read::MultiGzDecoder::new(counted),
            format,
            read,
        }),
        Format::Zstd => {
            let inner = zstd::stream::read::Decoder::new(counted)
                .map_err(|e| format!("cannot start the zstd decoder: {e}"))?;
            Box::new(Decoded {
                inner,
                format,
                read,
            })
        }
        Format::Parquet => {
            return Err(
                "is a Parquet file, which is read by row groups and needs a file that \
                        can be read at any offset: save it to a file and give that"
                    .into(),
            );
        }
    })
}

/// What a decoder has read of the compressed file.
#[derive(Default)]
struct ReadSoFar {
    bytes: AtomicU64,
    /// Reading the file itself failed (an I/O error, passed on as it is).
    failed: AtomicBool,
}

/// A reader that counts the bytes read through it.
struct Counted<R> {
    inner: R,
    read: Arc<ReadSoFar>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|_| {
            self.read.failed.store(true, Ordering::Relaxed);
        })?;
        self.read.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A decoder whose data errors name the compressed byte it had read up to.
struct Decoded<D> {
    inner: D,
    format: Format,
    read: Arc<ReadSoFar>,
}

impl<D: Read> Read for Decoded<D> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            if self.read.failed.load(Ordering::Relaxed) {
                return e;
            }
            let at = self.read.bytes.load(Ordering::Relaxed);
            let what = match e.kind() {
                io::ErrorKind::UnexpectedEof => "truncated",
                _ => "corrupt",
            };
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{what} {} data: {e} (at compressed byte {at}, as far as the decoder had read)",
                    self.format.name()
                ),
            )
        })
    }
}
