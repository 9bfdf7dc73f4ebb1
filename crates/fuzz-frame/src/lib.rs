//! How a fuzz input is cut into the parts a target needs. Shared by the fuzz targets
//! (`crates/fuzz`) and by `cargo xtask fuzz`, which writes the seed corpora in this format.
//!
//! - [`split_control`]: one control byte, then the payload (the API and columnar targets).
//! - [`records`]: records separated by [`SEPARATOR`], each one control byte then its data (the
//!   consumer and transformer targets: one Kinesis or Firehose record each). The data is the
//!   record's bytes as they are, so libFuzzer mutates the order JSON itself, not an encoding of
//!   it, while the envelope around it stays valid.
//!
//! Std only, so xtask depends on it without the fuzz targets' dependencies.

/// Separates records in [`records`]; UTF-8 text never contains it, so an order's JSON never
/// needs escaping in a seed.
pub const SEPARATOR: u8 = 0xFF;

/// The most records read from one input: enough for duplicate keys and mixed outcomes, few
/// enough to keep an execution cheap.
pub const MAX_RECORDS: usize = 32;

/// One record of a multi-record input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Options for this record (what each bit means is up to the target).
    pub control: u8,
    /// The record's data.
    pub data: &'a [u8],
}

/// The first byte (0 for an empty input) and the rest.
pub fn split_control(input: &[u8]) -> (u8, &[u8]) {
    match input.split_first() {
        Some((control, rest)) => (*control, rest),
        None => (0, &[]),
    }
}

/// The records of `input` (at least one, at most [`MAX_RECORDS`]).
pub fn records(input: &[u8]) -> Vec<Record<'_>> {
    input
        .split(|byte| *byte == SEPARATOR)
        .take(MAX_RECORDS)
        .map(|chunk| {
            let (control, data) = split_control(chunk);
            Record { control, data }
        })
        .collect()
}

/// The input that [`records`] reads back as `records`.
///
/// # Panics
///
/// If a record's data contains [`SEPARATOR`].
pub fn encode(records: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (index, (control, data)) in records.iter().enumerate() {
        assert!(
            !data.contains(&SEPARATOR),
            "record data must not contain the separator byte"
        );
        if index > 0 {
            out.push(SEPARATOR);
        }
        out.push(*control);
        out.extend_from_slice(data);
    }
    out
}
