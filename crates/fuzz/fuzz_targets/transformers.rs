#![no_main]
//! See `orderflow_fuzz::transformers::check`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| orderflow_fuzz::transformers::check(data));
