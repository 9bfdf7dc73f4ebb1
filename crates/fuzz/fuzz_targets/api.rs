#![no_main]
//! See `orderflow_fuzz::api::check`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| orderflow_fuzz::api::check(data));
