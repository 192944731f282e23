//! Fault points for reliability tests: with `CUSTAGG_PAUSE_AT=<point>` in the environment, the
//! run stops at that point, says so on stderr, and waits to be killed — so `scripts/faults.sh`
//! can `kill -9` it at a known moment — or, with `CUSTAGG_PAUSE_FOR=<seconds>` too, goes on
//! after that long (to stop the database under it, say). Without the variables this costs one
//! cached lookup.
//!
//! Points: `reading`, `spilling`, `reducing`, `copy`, `before-swap`, `after-swap`.

use std::sync::OnceLock;

struct Pause {
    at: String,
    seconds: Option<u64>,
    done: std::sync::atomic::AtomicBool,
}

fn pause() -> Option<&'static Pause> {
    static PAUSE: OnceLock<Option<Pause>> = OnceLock::new();
    PAUSE
        .get_or_init(|| {
            Some(Pause {
                at: std::env::var("CUSTAGG_PAUSE_AT").ok()?,
                seconds: std::env::var("CUSTAGG_PAUSE_FOR")
                    .ok()
                    .and_then(|s| s.parse().ok()),
                done: Default::default(),
            })
        })
        .as_ref()
}

/// Pauses here (once per run) if the environment asks for this point.
pub fn point(name: &str) {
    let Some(pause) = pause() else { return };
    if pause.at != name || pause.done.swap(true, std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    eprintln!("custagg: paused at {name} (pid {})", std::process::id());
    match pause.seconds {
        Some(seconds) => std::thread::sleep(std::time::Duration::from_secs(seconds)),
        None => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
    }
}
