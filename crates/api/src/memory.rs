//! An in-memory [`RecordSink`] with optional fault injection, for tests and benchmarks of
//! everything that talks to the API (the producer, the API itself). It keeps every record it
//! accepted, in order, and can refuse some the way Kinesis does (throttled entries in a
//! PutRecords answer, or a whole call throttled with `Retry-After`).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{RecordEntry, RecordResult, RecordSink, SinkError, THROUGHPUT_EXCEEDED};

/// Faults to inject.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryFaults {
    /// Every n-th call is refused whole: `429` with this `Retry-After`.
    pub throttle_every: Option<(u64, Duration)>,
    /// In every n-th call, every other entry fails with `ProvisionedThroughputExceededException`
    /// (the API answers `207`).
    pub partial_every: Option<u64>,
}

/// Accepted records, in arrival order, with their sequence numbers.
#[derive(Debug, Default)]
pub struct MemorySink {
    faults: MemoryFaults,
    calls: AtomicU64,
    records: Mutex<Vec<RecordEntry>>,
    /// Records taken out by [`MemorySink::take_records`]; sequence numbers keep counting.
    taken: AtomicU64,
}

impl MemorySink {
    /// A sink that injects `faults`.
    pub fn new(faults: MemoryFaults) -> Self {
        MemorySink {
            faults,
            ..MemorySink::default()
        }
    }

    /// Every record accepted so far.
    pub fn records(&self) -> Vec<RecordEntry> {
        self.records.lock().expect("not poisoned").clone()
    }

    /// Every record accepted since the last call, taken out of the sink (a long-lived sink,
    /// such as a fuzz target's, stays small).
    pub fn take_records(&self) -> Vec<RecordEntry> {
        let mut records = self.records.lock().expect("not poisoned");
        self.taken.fetch_add(records.len() as u64, Ordering::SeqCst);
        std::mem::take(&mut *records)
    }

    /// How many `put_records` calls were made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }
}

impl RecordSink for MemorySink {
    async fn put_records(&self, entries: Vec<RecordEntry>) -> Result<Vec<RecordResult>, SinkError> {
        let call = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((every, retry_after)) = self.faults.throttle_every
            && call.is_multiple_of(every)
        {
            return Err(SinkError::Throttled {
                message: "injected".into(),
                retry_after: Some(retry_after),
            });
        }
        let partial = self
            .faults
            .partial_every
            .is_some_and(|every| call.is_multiple_of(every));
        let mut records = self.records.lock().expect("not poisoned");
        let results = entries
            .into_iter()
            .enumerate()
            .map(|(index, entry)| {
                if partial && index % 2 == 1 {
                    return RecordResult::Failed {
                        error_code: THROUGHPUT_EXCEEDED.into(),
                        error_message: "Rate exceeded for shard shardId-000000000000".into(),
                    };
                }
                records.push(entry);
                RecordResult::Written {
                    shard_id: "shardId-000000000000".into(),
                    sequence_number: format!(
                        "{:056}",
                        self.taken.load(Ordering::SeqCst) + records.len() as u64
                    ),
                }
            })
            .collect();
        Ok(results)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str) -> RecordEntry {
        RecordEntry {
            partition_key: key.to_owned(),
            data: b"{}".to_vec(),
        }
    }

    fn sequence_numbers(results: &[RecordResult]) -> Vec<&str> {
        results
            .iter()
            .map(|result| match result {
                RecordResult::Written {
                    sequence_number, ..
                } => sequence_number.trim_start_matches('0'),
                RecordResult::Failed { .. } => panic!("no faults injected"),
            })
            .collect()
    }

    #[tokio::test]
    async fn taking_the_records_empties_the_sink_and_sequence_numbers_go_on() {
        let sink = MemorySink::default();
        let first = sink
            .put_records(vec![entry("a"), entry("b")])
            .await
            .unwrap();
        assert_eq!(sequence_numbers(&first), ["1", "2"]);
        assert_eq!(sink.take_records(), [entry("a"), entry("b")]);
        assert!(sink.records().is_empty());
        let next = sink.put_records(vec![entry("c")]).await.unwrap();
        assert_eq!(sequence_numbers(&next), ["3"]);
        assert_eq!(sink.take_records(), [entry("c")]);
    }
}
