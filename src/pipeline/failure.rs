//! The first error of a phase's threads, kept so that the others stop early and the run
//! reports the one that decided it.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};

/// The first error of a phase's threads; the others see that one happened and stop early.
#[derive(Default)]
pub(super) struct Failure {
    happened: AtomicBool,
    first: Mutex<Option<Error>>,
}

impl Failure {
    /// Records `error`, unless an earlier one was.
    pub(super) fn set(&self, error: Error) {
        self.happened.store(true, Ordering::Relaxed);
        self.first
            .lock()
            .expect("no panics while locked")
            .get_or_insert(error);
    }

    pub(super) fn happened(&self) -> bool {
        self.happened.load(Ordering::Relaxed)
    }

    /// The first error, if any (taken: the next check is `Ok`).
    pub(super) fn check(&self) -> Result<()> {
        match self.first.lock().expect("no panics while locked").take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}
