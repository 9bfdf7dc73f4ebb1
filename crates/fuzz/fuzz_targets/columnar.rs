#![no_main]
//! See `orderflow_fuzz::columnar::check`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| orderflow_fuzz::columnar::check(data));
