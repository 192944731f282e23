//! Progress bars on stderr (indicatif), for a person watching a terminal: bytes read of the total
//! with MB/s and ETA, then partitions reduced, then rows written or the load's steps.

use std::time::Duration;

use custagg::progress::{Phase, Progress};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// One bar, restyled for each phase.
pub struct Bars {
    bar: ProgressBar,
}

impl Bars {
    /// Bars drawn on stderr.
    pub fn new() -> Self {
        Bars {
            bar: ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
        }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("a valid template")
        .progress_chars("=> ")
}

impl Progress for Bars {
    fn start(&self, phase: Phase, total: Option<u64>) {
        self.bar.reset();
        self.bar.set_position(0);
        self.bar.set_message("");
        match (phase, total) {
            (Phase::Read, Some(total)) => {
                self.bar.set_length(total);
                self.bar.set_style(style(
                    "{prefix:>6} [{bar:32}] {binary_bytes}/{binary_total_bytes} \
                     {binary_bytes_per_sec} ETA {eta}",
                ));
            }
            (Phase::Read, None) => {
                self.bar.unset_length();
                self.bar.set_style(style(
                    "{prefix:>6} {spinner} {binary_bytes} {binary_bytes_per_sec}",
                ));
            }
            (Phase::Reduce, total) => {
                self.bar.set_length(total.unwrap_or(0));
                self.bar.set_style(style(
                    "{prefix:>6} [{bar:32}] {pos}/{len} partitions, ETA {eta}",
                ));
            }
            (Phase::Write, Some(total)) => {
                self.bar.set_length(total);
                self.bar
                    .set_style(style("{prefix:>6} [{bar:32}] {human_pos}/{human_len} rows"));
            }
            (Phase::Write, None) => {
                self.bar.unset_length();
                self.bar
                    .set_style(style("{prefix:>6} {spinner} {msg} ({elapsed})"));
            }
        }
        self.bar.set_prefix(match phase {
            Phase::Read => "read",
            Phase::Reduce => "reduce",
            Phase::Write => "write",
        });
        self.bar.enable_steady_tick(Duration::from_millis(120));
    }

    fn advance(&self, amount: u64) {
        self.bar.inc(amount);
    }

    fn step(&self, what: &str) {
        self.bar.set_message(what.to_string());
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
