//! What a run leaves on disk while it works, named so that a later run can find it: the spill
//! directory `custagg-<pid>-*` and the unfinished `.custagg-<pid>-*` file beside an output. A run
//! killed with `kill -9` cannot clean up; the next run removes the entries whose process is gone.

use std::path::Path;

/// This run's name prefix for its temporary entries of the kind `prefix` names: `<prefix><pid>-`,
/// the form [`remove_dead_runs`] finds again when the run is killed.
pub fn run_prefix(prefix: &str) -> String {
    format!("{prefix}{}-", std::process::id())
}

/// Removes the entries `<prefix><pid>-*` under `parent` — directories when `dirs`, else files —
/// whose process is gone (a run killed before it could clean up). Best effort: what cannot be
/// removed stays.
pub fn remove_dead_runs(parent: &Path, prefix: &str, dirs: bool) {
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(prefix))
            .and_then(|n| n.split_once('-'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok())
        else {
            continue;
        };
        let alive = Path::new("/proc").join(pid.to_string()).exists();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if alive || kind.is_dir() != dirs || kind.is_symlink() {
            continue;
        }
        log::info!(
            "removing {}, left by a run that was killed",
            entry.path().display()
        );
        let _ = if dirs {
            std::fs::remove_dir_all(entry.path())
        } else {
            std::fs::remove_file(entry.path())
        };
    }
}
