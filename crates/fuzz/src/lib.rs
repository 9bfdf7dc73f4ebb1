//! The invariants the fuzz targets check, one module per target (`fuzz_targets/*.rs` only call
//! `check`). Each `check` panics with a message naming the broken invariant; libFuzzer reports
//! the panic as a crash and keeps the input under `crates/fuzz/artifacts/<target>/`.
//!
//! | target | input | invariants |
//! |---|---|---|
//! | `parse_order` | arbitrary bytes | [`parse_order::check`] |
//! | `consumer` | [`frame::records`]: one Kinesis record each, in a valid event | [`consumer::check`] |
//! | `transformers` | [`frame::records`]: one Firehose record each, run through all four transformers | [`transformers::check`] |
//! | `api` | [`frame::split_control`]: route, key, content type, sink; then the body | [`api::check`] |
//! | `columnar` | [`frame::split_control`]: the table; then the rows | [`columnar::check`] |
//!
//! `cargo xtask fuzz` writes the seed corpora (in [`frame`]'s format) and runs the targets.

pub mod api;
pub mod columnar;
pub mod consumer;
pub use orderflow_fuzz_frame as frame;
pub mod parse_order;
pub mod transformers;

use std::cell::RefCell;
use std::future::Future;

thread_local! {
    /// One runtime per fuzzing thread, reused by every execution. Its clock is paused: a sleep
    /// (the consumer's backoff, a deadline) completes at once by advancing the clock, so retries
    /// until a deadline cost no wall time.
    static RUNTIME: RefCell<tokio::runtime::Runtime> = RefCell::new(
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a current-thread runtime builds"),
    );
}

/// Runs `future` to completion on this thread's paused-clock runtime.
fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|runtime| runtime.borrow().block_on(future))
}
