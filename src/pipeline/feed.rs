//! The feed: the work of the read phase, in input order — chunks of mapped files and Parquet
//! row groups handed out by the calling thread, and chunks of streams (pipes, standard input,
//! gzip and zstd files, PostgreSQL sources) read and decompressed by decoder threads of their
//! own, one stream each at a time, so that several files decompress in parallel.

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use crossbeam_channel::Sender;

use super::failure::Failure;
use super::inputs::Opened;
use crate::config::Config;
use crate::error::Result;
use crate::parse::{Header, read_header};
use crate::source::{Chunk, MappedChunks, StreamChunks};

/// One piece of work for a read worker.
pub(super) enum Work<'s> {
    /// A chunk of the text of input `input`.
    Text { input: u32, chunk: Chunk<'s> },
    /// Row group `group` of the Parquet file that is input `input`.
    RowGroup { input: u32, group: usize },
}

/// A stream whose first chunk was read before the read phase (to sample its customers).
pub(super) struct Started<'s> {
    /// Which input.
    pub input: usize,
    /// The data of the first chunk, after the header.
    pub first: Option<Chunk<'static>>,
    rest: StreamChunks<'s>,
}

/// Reads the header of the text stream that `rest` reads, records it in `header`, and returns
/// the first chunk's data after it.
fn start<'s>(
    rest: &mut StreamChunks<'s>,
    opened: &Opened,
    config: &Config,
    header: &OnceLock<Header>,
) -> Result<Option<Chunk<'static>>> {
    let first = rest.next_chunk()?;
    let first_bytes = first.as_ref().map_or(&[][..], |c| &c.data[..]);
    let read = read_header(opened.path(), first_bytes, opened.delimiter(config))?;
    let first = first.map(|chunk| Chunk {
        data: Cow::Owned(chunk.data[read.data_start..].to_vec()),
        offset: read.data_start as u64,
        first_line: read.data_line,
        is_last: chunk.is_last,
    });
    let _ = header.set(read);
    Ok(first)
}

/// Opens the stream of input `input` (a file or standard input, not a PostgreSQL source) and
/// reads its first chunk; `None` for inputs of other kinds.
pub(super) fn start_stream<'s>(
    inputs: &'s [Opened],
    input: usize,
    config: &Config,
) -> Result<Option<Started<'s>>> {
    let Opened::Stream { source, header } = &inputs[input] else {
        return Ok(None);
    };
    let mut rest = source.stream(config.chunk_size)?.expect("not mapped");
    let first = start(&mut rest, &inputs[input], config, header)?;
    Ok(Some(Started { input, first, rest }))
}

/// What feeds the read workers.
pub(super) struct Feeder<'r, 's> {
    pub inputs: &'s [Opened],
    pub config: &'r Config,
    pub failure: &'r Failure,
    /// A stream started ahead of the read phase.
    pub started: Mutex<Option<Started<'s>>>,
    /// Bytes of the inputs read (a text's bytes, a Parquet file's size).
    pub bytes: AtomicU64,
}

impl<'s> Feeder<'_, 's> {
    /// The bytes read, once the read phase is over (the feeder is done with the inputs).
    pub(super) fn bytes_read(self) -> u64 {
        self.bytes.into_inner()
    }

    /// Sends all work of every input to `sender`: streams from decoder threads, the rest from
    /// this one; returns once all is sent or the run has failed.
    pub(super) fn feed(&self, sender: &Sender<Work<'s>>) {
        let streams: Vec<usize> = (0..self.inputs.len())
            .filter(|&i| {
                matches!(
                    self.inputs[i],
                    Opened::Stream { .. } | Opened::Postgres { .. }
                )
            })
            .collect();
        let next = AtomicUsize::new(0);
        std::thread::scope(|scope| {
            for _ in 0..self.config.threads.min(streams.len()) {
                scope.spawn(|| {
                    loop {
                        let k = next.fetch_add(1, Ordering::Relaxed);
                        if k >= streams.len() || self.failure.happened() {
                            break;
                        }
                        if let Err(e) = self.decode(streams[k], sender) {
                            self.failure.set(e);
                        }
                    }
                });
            }
            for (input, opened) in self.inputs.iter().enumerate() {
                if !self.hand_out(input, opened, sender) {
                    break;
                }
            }
        });
    }

    /// Sends the chunks of a mapped file or the row groups of a Parquet file; false once the
    /// workers are gone or the run failed.
    fn hand_out(&self, input: usize, opened: &'s Opened, sender: &Sender<Work<'s>>) -> bool {
        let input_id = input as u32;
        match opened {
            Opened::Mapped { source, header } => {
                let bytes = source.bytes().expect("mapped");
                self.bytes.fetch_add(bytes.len() as u64, Ordering::Relaxed);
                let specs =
                    MappedChunks::unnumbered(bytes, header.data_start, self.config.chunk_size);
                for spec in specs {
                    let chunk = Chunk {
                        offset: spec.range.start as u64,
                        first_line: spec.first_line,
                        is_last: spec.range.end == bytes.len(),
                        data: Cow::Borrowed(&bytes[spec.range]),
                    };
                    if !self.send(
                        sender,
                        Work::Text {
                            input: input_id,
                            chunk,
                        },
                    ) {
                        return false;
                    }
                }
            }
            Opened::Parquet { source, file } => {
                let size = source.stored_len().unwrap_or(0);
                self.bytes.fetch_add(size, Ordering::Relaxed);
                for group in 0..file.row_groups() {
                    if !self.send(
                        sender,
                        Work::RowGroup {
                            input: input_id,
                            group,
                        },
                    ) {
                        return false;
                    }
                }
            }
            Opened::Stream { .. } | Opened::Postgres { .. } => {}
        }
        true
    }

    /// Reads and decompresses the stream of input `input`, sending its chunks.
    fn decode(&self, input: usize, sender: &Sender<Work<'s>>) -> Result<()> {
        let opened = &self.inputs[input];
        match opened {
            Opened::Stream { .. } => {
                // Taken only by the thread of its own input, under one lock: were it taken and
                // put back, the thread of its input could find the slot empty in between, open
                // the stream again and read it from wherever the first reader had left it.
                let taken = (self.started.lock().expect("no panics while locked"))
                    .take_if(|started| started.input == input);
                let started = match taken {
                    Some(started) => started,
                    None => start_stream(self.inputs, input, self.config)?.expect("a stream"),
                };
                self.send_stream(input, started.first, started.rest, sender)
            }
            Opened::Postgres {
                source,
                client,
                header,
                ..
            } => {
                let mut client = client
                    .lock()
                    .expect("no panics while locked")
                    .take()
                    .expect("each source is read once");
                source.read(&mut client, |reader| {
                    let mut rest = StreamChunks::new(opened.path(), reader, self.config.chunk_size);
                    let first = start(&mut rest, opened, self.config, header)?;
                    self.send_stream(input, first, rest, sender)
                })
            }
            Opened::Mapped { .. } | Opened::Parquet { .. } => Ok(()),
        }
    }

    fn send_stream(
        &self,
        input: usize,
        first: Option<Chunk<'static>>,
        mut rest: StreamChunks<'_>,
        sender: &Sender<Work<'s>>,
    ) -> Result<()> {
        let input_id = input as u32;
        let mut next = first;
        while let Some(chunk) = next {
            if !self.send(
                sender,
                Work::Text {
                    input: input_id,
                    chunk,
                },
            ) {
                break;
            }
            next = rest.next_chunk()?;
        }
        self.bytes.fetch_add(rest.offset(), Ordering::Relaxed);
        Ok(())
    }

    /// Sends `work` unless the run has failed; false when it was not sent.
    fn send(&self, sender: &Sender<Work<'s>>, work: Work<'s>) -> bool {
        !self.failure.happened() && sender.send(work).is_ok()
    }
}
