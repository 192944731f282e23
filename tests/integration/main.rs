//! Integration tests: one test binary, the real `custagg` binary, and a reference implementation
//! that checks the engine on random inputs.

mod alert;
mod cli;
mod engine;
mod faults;
mod incremental;
mod input_forms;
mod inputs;
mod pg;
mod postgres;
mod reference;
mod spark;
mod tls;
mod util;
