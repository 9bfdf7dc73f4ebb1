#![no_main]
//! `parse_order` on arbitrary bytes: `orderflow_fuzz::parse_order::check`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| orderflow_fuzz::parse_order::check(data));
