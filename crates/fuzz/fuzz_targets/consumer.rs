#![no_main]
//! See `orderflow_fuzz::consumer::check`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| orderflow_fuzz::consumer::check(data));
