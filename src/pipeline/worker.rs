//! One worker's side of the read phase: good rows into its partition buffers, bad rows to the
//! collector.

use crate::error::{BadRow, Error};
use crate::parse::{Record, RowSink};
use crate::partition::PartitionWriter;
use crate::rejects::{BadRows, offset_cutoff};

/// One worker's side of the parse: good rows into its partition buffers, bad rows to the collector.
pub(super) struct Worker<'s, 'd> {
    pub writer: PartitionWriter<'s, 'd>,
    bad_rows: &'s BadRows,
    /// The input whose rows come now.
    pub input: u32,
    pub good: u64,
    pub error: Option<Error>,
    /// Drop each row once parsed (see [`Config::parse_only`]).
    parse_only: bool,
}

impl<'s, 'd> Worker<'s, 'd> {
    /// A worker that writes good rows with `writer` and sends bad ones to `bad_rows`.
    pub(super) fn new(
        writer: PartitionWriter<'s, 'd>,
        bad_rows: &'s BadRows,
        parse_only: bool,
    ) -> Self {
        Worker {
            writer,
            bad_rows,
            input: 0,
            good: 0,
            error: None,
            parse_only,
        }
    }
}

impl Worker<'_, '_> {
    /// The position (see [`crate::rejects::position`]) past which rows need not be read.
    pub(super) fn cutoff(&self) -> u64 {
        self.bad_rows.cutoff()
    }
}

impl RowSink for Worker<'_, '_> {
    fn record(&mut self, record: &Record<'_>) {
        self.good += 1;
        if self.parse_only {
            std::hint::black_box(record);
            return;
        }
        if self.error.is_none()
            && let Err(e) = self.writer.push(record)
        {
            self.error = Some(e);
        }
    }

    fn bad_row(&mut self, row: BadRow) {
        self.bad_rows.push(row);
    }

    fn stop_after(&self) -> u64 {
        if self.error.is_some() {
            0
        } else {
            offset_cutoff(self.bad_rows.cutoff(), self.input)
        }
    }
}
