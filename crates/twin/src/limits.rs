//! Kinesis' per-shard throughput limits, so that throttling happens locally as it does in AWS.
//!
//! - **Writes** ([`WriteLimits`], applied by [`Stream::limit_writes`](crate::stream::Stream)):
//!   each shard takes 1,000 records and 1 MiB (partition keys included) per second, PutRecord and
//!   PutRecords together. A record over either limit is refused with
//!   `ProvisionedThroughputExceededException`; in a PutRecords call the others are still written.
//! - **Reads** ([`ReadLimits`], asked by each reader through its [`ReadThrottle`] before every
//!   read): each shard serves five GetRecords calls and 2 MiB per second, shared by every
//!   polling reader (the four delivery streams, and the consumer's mapping when it does not use
//!   enhanced fan-out); an enhanced fan-out consumer has its own 2 MiB per second per shard and
//!   no call limit. A reader over the limit waits, as a reader backs off after
//!   `ProvisionedThroughputExceededException`.
//!
//! AWS's numbers (checked in AWS's documentation):
//! - "Each shard can support writes up to 1,000 records per second, up to a maximum data write
//!   total of 1 MiB per second" (Kinesis API reference, PutRecords,
//!   <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_PutRecords.html>); "Each shard
//!   can support up to 1,000 records per second for writes, up to a maximum total data write rate
//!   of 1 MB per second (including partition keys)" (Kinesis developer guide, quotas and limits).
//! - "Each shard supports up to five read transactions per second, or five GetRecords calls per
//!   second for each shard. Each shard supports a maximum read rate of 2 MiB per second. [...] If a
//!   call to GetRecords returns 10 MiB of data, then subsequent calls that are made within the next
//!   5 seconds result in an error." (AWS Knowledge Center, "How do I detect and troubleshoot
//!   ReadProvisionedThroughputExceeded exceptions in Kinesis Data Streams?",
//!   <https://repost.aws/knowledge-center/kinesis-readprovisionedthroughputexceeded>).
//! - Firehose reads through the shared limit: "Each call from any Kinesis Firehose delivery stream
//!   or other consumer application counts against the overall throttling limit for the shard"
//!   (Firehose developer guide, "Writing to Amazon Kinesis Firehose Using Kinesis Streams").
//! - Lambda: "For standard iterators, Lambda polls each shard [...] The event source mapping shares
//!   read throughput with other consumers of the shard"; with enhanced fan-out, "Stream consumers
//!   get a dedicated connection to each shard that doesn't impact other applications reading from
//!   the stream" (Lambda developer guide, "Using AWS Lambda with Amazon Kinesis").
//!
//! AWS does not document how it measures "per second". The twin uses token buckets holding one
//! second's worth, refilled continuously (a burst of a full second's worth, then the rate), except
//! for read bytes: a read cannot know its size in advance, so each read's bytes are paid for at
//! 2 MiB/s after it, and the shard's next read waits until they are (a 10 MiB read blocks the next
//! one for exactly 5 s, as quoted above). Time comes from a [`Clock`], so tests run on a clock they
//! move by hand.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Records one shard takes per second (PutRecord and PutRecords together).
pub const WRITE_RECORDS_PER_SECOND: u64 = 1_000;
/// Bytes one shard takes per second, partition keys and data together (1 MiB).
pub const WRITE_BYTES_PER_SECOND: u64 = 1024 * 1024;
/// GetRecords calls one shard serves per second, shared by all polling readers.
pub const READ_CALLS_PER_SECOND: u64 = 5;
/// Bytes one shard serves per second to its polling readers together, and again to each
/// enhanced fan-out consumer (2 MiB).
pub const READ_BYTES_PER_SECOND: u64 = 2 * 1024 * 1024;

/// The time the limiters go by.
pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    /// Time since a fixed origin of this clock.
    fn now(&self) -> Duration;
    /// Waits until `duration` of this clock's time has passed.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// Real time, through `tokio::time`.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    origin: tokio::time::Instant,
}

impl SystemClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        SystemClock {
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// Units are kept in billionths, so that refilling by the nanosecond is exact.
const SCALE: i128 = 1_000_000_000;

/// A token bucket in exact integer arithmetic. Its level may go below zero (a debt) when a
/// caller takes more than it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Bucket {
    /// Units added per second.
    per_second: i128,
    /// The most it holds, in billionths of a unit.
    capacity: i128,
    /// What it holds, in billionths of a unit.
    level: i128,
    /// When `level` was last brought up to date.
    updated: Duration,
}

impl Bucket {
    /// A full bucket of `capacity` units, refilled at `per_second`.
    fn full(per_second: u64, capacity: u64, now: Duration) -> Bucket {
        Bucket {
            per_second: i128::from(per_second),
            capacity: i128::from(capacity) * SCALE,
            level: i128::from(capacity) * SCALE,
            updated: now,
        }
    }

    /// Adds what the time since the last update brought.
    fn refill(&mut self, now: Duration) {
        if now > self.updated {
            let nanos = (now - self.updated).as_nanos() as i128;
            self.level = (self.level + nanos * self.per_second).min(self.capacity);
            self.updated = now;
        }
    }

    /// How long until it holds `units` (zero if it does).
    fn wait_for(&self, units: u64) -> Duration {
        let missing = i128::from(units) * SCALE - self.level;
        if missing <= 0 {
            return Duration::ZERO;
        }
        // Rounded up, so that after this wait the level is there.
        let nanos = (missing + self.per_second - 1) / self.per_second;
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// Takes `units` (the level may go below zero).
    fn take(&mut self, units: u64) {
        self.level -= i128::from(units) * SCALE;
    }
}

/// One shard's write allowance.
#[derive(Debug)]
struct WriteShard {
    records: Bucket,
    bytes: Bucket,
}

/// Kinesis' per-shard write limits for one stream (see the [module](self) documentation).
pub struct WriteLimits {
    clock: Arc<dyn Clock>,
    shards: Mutex<Vec<WriteShard>>,
}

impl WriteLimits {
    /// AWS's limits for `shard_count` shards, each starting with a full second's allowance.
    pub fn new(shard_count: u32, clock: Arc<dyn Clock>) -> WriteLimits {
        let now = clock.now();
        let shards = (0..shard_count)
            .map(|_| WriteShard {
                records: Bucket::full(WRITE_RECORDS_PER_SECOND, WRITE_RECORDS_PER_SECOND, now),
                bytes: Bucket::full(WRITE_BYTES_PER_SECOND, WRITE_BYTES_PER_SECOND, now),
            })
            .collect();
        WriteLimits {
            clock,
            shards: Mutex::new(shards),
        }
    }

    /// For each record, in order, `(shard, size)` with its size counted as Kinesis counts it
    /// (partition key and data): whether its shard takes it now. A record a shard takes uses up
    /// its share of that shard's allowance; a refused one uses nothing, so a smaller record
    /// after it can still fit, as PutRecords processes every record of a call.
    pub fn admit(&self, records: impl IntoIterator<Item = (u32, usize)>) -> Vec<bool> {
        let now = self.clock.now();
        let mut shards = self.shards.lock().expect("not poisoned");
        records
            .into_iter()
            .map(|(shard, size)| {
                let shard = &mut shards[shard as usize];
                shard.records.refill(now);
                shard.bytes.refill(now);
                let size = size as u64;
                let fits =
                    shard.records.wait_for(1).is_zero() && shard.bytes.wait_for(size).is_zero();
                if fits {
                    shard.records.take(1);
                    shard.bytes.take(size);
                }
                fits
            })
            .collect()
    }
}

/// One shard's read allowance.
#[derive(Debug)]
struct ReadShard {
    /// GetRecords calls of the polling readers together.
    calls: Bucket,
    /// Bytes of the polling readers together, paid after each read (never above zero).
    bytes: Bucket,
    /// Bytes of each enhanced fan-out consumer, by name, paid after each read.
    dedicated: HashMap<String, Bucket>,
}

/// Kinesis' per-shard read limits for one stream (see the [module](self) documentation).
pub struct ReadLimits {
    clock: Arc<dyn Clock>,
    shards: Mutex<Vec<ReadShard>>,
}

impl ReadLimits {
    /// AWS's limits for `shard_count` shards.
    pub fn new(shard_count: u32, clock: Arc<dyn Clock>) -> Arc<ReadLimits> {
        let now = clock.now();
        let shards = (0..shard_count)
            .map(|_| ReadShard {
                calls: Bucket::full(READ_CALLS_PER_SECOND, READ_CALLS_PER_SECOND, now),
                bytes: Bucket::full(READ_BYTES_PER_SECOND, 0, now),
                dedicated: HashMap::new(),
            })
            .collect();
        Arc::new(ReadLimits {
            clock,
            shards: Mutex::new(shards),
        })
    }

    /// Takes a read of `shard` for `throughput` if it may read now; otherwise how long to wait.
    fn try_read(&self, shard: u32, throughput: &Throughput) -> Result<(), Duration> {
        let now = self.clock.now();
        let mut shards = self.shards.lock().expect("not poisoned");
        let shard = &mut shards[shard as usize];
        match throughput {
            Throughput::Shared => {
                shard.calls.refill(now);
                shard.bytes.refill(now);
                let wait = shard.calls.wait_for(1).max(shard.bytes.wait_for(0));
                if wait.is_zero() {
                    shard.calls.take(1);
                    Ok(())
                } else {
                    Err(wait)
                }
            }
            Throughput::EnhancedFanOut(consumer) => {
                let bytes = shard
                    .dedicated
                    .entry(consumer.clone())
                    .or_insert_with(|| Bucket::full(READ_BYTES_PER_SECOND, 0, now));
                bytes.refill(now);
                let wait = bytes.wait_for(0);
                if wait.is_zero() { Ok(()) } else { Err(wait) }
            }
        }
    }

    /// Counts `bytes` read from `shard` against `throughput`.
    fn charge(&self, shard: u32, throughput: &Throughput, bytes: u64) {
        let now = self.clock.now();
        let mut shards = self.shards.lock().expect("not poisoned");
        let shard = &mut shards[shard as usize];
        let bucket = match throughput {
            Throughput::Shared => &mut shard.bytes,
            Throughput::EnhancedFanOut(consumer) => shard
                .dedicated
                .entry(consumer.clone())
                .or_insert_with(|| Bucket::full(READ_BYTES_PER_SECOND, 0, now)),
        };
        bucket.refill(now);
        bucket.take(bytes);
    }
}

/// Which read throughput a reader uses.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Throughput {
    /// GetRecords polling: the shard's calls and bytes shared with every other polling reader.
    Shared,
    /// An enhanced fan-out consumer of this name: its own bytes per shard, no call limit.
    EnhancedFanOut(String),
}

/// What one reader asks before and after each read of a shard; cheap to clone.
#[derive(Clone)]
pub struct ReadThrottle {
    limits: Option<Arc<ReadLimits>>,
    throughput: Throughput,
}

impl ReadThrottle {
    /// No limits (`--no-limits`, and tests of other things).
    pub fn unlimited() -> ReadThrottle {
        ReadThrottle {
            limits: None,
            throughput: Throughput::Shared,
        }
    }

    /// A polling reader (GetRecords) sharing each shard's read throughput.
    pub fn shared(limits: &Arc<ReadLimits>) -> ReadThrottle {
        ReadThrottle {
            limits: Some(limits.clone()),
            throughput: Throughput::Shared,
        }
    }

    /// An enhanced fan-out consumer named `consumer`, with its own throughput per shard.
    pub fn enhanced_fan_out(limits: &Arc<ReadLimits>, consumer: &str) -> ReadThrottle {
        ReadThrottle {
            limits: Some(limits.clone()),
            throughput: Throughput::EnhancedFanOut(consumer.to_owned()),
        }
    }

    /// Waits until this reader may read `shard`, and counts the read (a GetRecords call) once it
    /// may: a reader over the limit backs off instead of failing.
    pub async fn before_read(&self, shard: u32) {
        let Some(limits) = &self.limits else {
            return;
        };
        while let Err(wait) = limits.try_read(shard, &self.throughput) {
            tracing::debug!(
                shard_id = %crate::stream::shard_id(shard),
                wait_ms = wait.as_millis() as u64,
                "read throughput exceeded; waiting"
            );
            limits.clock.sleep(wait).await;
        }
    }

    /// Counts `bytes` just read from `shard` (after [`before_read`](Self::before_read)).
    pub fn after_read(&self, shard: u32, bytes: usize) {
        if let Some(limits) = &self.limits {
            limits.charge(shard, &self.throughput, bytes as u64);
        }
    }
}

/// A record's size as Kinesis counts it for throughput: partition key and data.
pub fn record_size(partition_key: &str, data: &[u8]) -> usize {
    partition_key.len() + data.len()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A clock that moves only when told to; its sleeps move it (and record how long they were).
    #[derive(Debug, Default)]
    pub(crate) struct ManualClock {
        now: Mutex<Duration>,
        pub(crate) slept: Mutex<Vec<Duration>>,
    }

    impl ManualClock {
        pub(crate) fn advance(&self, by: Duration) {
            *self.now.lock().unwrap() += by;
        }
    }

    impl Clock for ManualClock {
        fn now(&self) -> Duration {
            *self.now.lock().unwrap()
        }

        fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
            self.slept.lock().unwrap().push(duration);
            self.advance(duration);
            Box::pin(std::future::ready(()))
        }
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_shard_takes_a_thousand_records_a_second_then_one_a_millisecond() {
        let clock = Arc::new(ManualClock::default());
        let limits = WriteLimits::new(2, clock.clone());
        let admitted = limits.admit((0..1001).map(|_| (0, 10)));
        assert!(admitted[..1000].iter().all(|&ok| ok));
        assert!(!admitted[1000], "the 1,001st record in the same instant");
        // The other shard has its own allowance.
        assert_eq!(limits.admit([(1, 10)]), [true]);
        clock.advance(MS);
        assert_eq!(limits.admit([(0, 10), (0, 10)]), [true, false]);
        clock.advance(Duration::from_secs(5));
        // Refilled to one second's worth, not more.
        let admitted = limits.admit((0..1001).map(|_| (0, 10)));
        assert_eq!(admitted.iter().filter(|&&ok| ok).count(), 1000);
    }

    #[test]
    fn a_shard_takes_a_mebibyte_a_second_and_refused_records_use_nothing() {
        let clock = Arc::new(ManualClock::default());
        let limits = WriteLimits::new(1, clock.clone());
        let big = 600 * 1024;
        // The second 600 KiB record does not fit; the small one after it does.
        assert_eq!(
            limits.admit([(0, big), (0, big), (0, 1000)]),
            [true, false, true]
        );
        // 1 MiB - 600 KiB - 1,000 bytes are left: 424 KiB - 1,000 bytes.
        assert_eq!(limits.admit([(0, 424 * 1024 - 1000 + 1)]), [false]);
        assert_eq!(limits.admit([(0, 424 * 1024 - 1000)]), [true]);
        // A whole MiB needs a whole second after that.
        clock.advance(Duration::from_millis(999));
        assert_eq!(limits.admit([(0, 1024 * 1024)]), [false]);
        clock.advance(MS);
        assert_eq!(limits.admit([(0, 1024 * 1024)]), [true]);
    }

    /// A manual clock and two polling readers of `shards` shards sharing their throughput.
    fn two_polling_readers(shards: u32) -> (Arc<ManualClock>, ReadThrottle, ReadThrottle) {
        let clock = Arc::new(ManualClock::default());
        let limits = ReadLimits::new(shards, clock.clone());
        let (first, second) = (ReadThrottle::shared(&limits), ReadThrottle::shared(&limits));
        (clock, first, second)
    }

    #[tokio::test]
    async fn polling_readers_share_five_calls_a_second_and_wait_for_more() {
        let (clock, consumer, firehose) = two_polling_readers(2);
        for _ in 0..3 {
            consumer.before_read(0).await;
            firehose.before_read(0).await;
        }
        // Six calls on shard 0: the sixth waited 200 ms for the next call.
        assert_eq!(*clock.slept.lock().unwrap(), [Duration::from_millis(200)]);
        assert_eq!(clock.now(), Duration::from_millis(200));
        // Shard 1 is not affected.
        firehose.before_read(1).await;
        assert_eq!(clock.slept.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_ten_mebibyte_read_blocks_the_shard_for_five_seconds() {
        let (clock, consumer, firehose) = two_polling_readers(1);
        firehose.before_read(0).await;
        firehose.after_read(0, 10 * 1024 * 1024);
        // "subsequent calls that are made within the next 5 seconds result in an error"
        consumer.before_read(0).await;
        assert_eq!(*clock.slept.lock().unwrap(), [Duration::from_secs(5)]);
    }

    #[tokio::test]
    async fn an_enhanced_fan_out_consumer_has_its_own_throughput() {
        let clock = Arc::new(ManualClock::default());
        let limits = ReadLimits::new(1, clock.clone());
        let consumer = ReadThrottle::enhanced_fan_out(&limits, "consumer");
        let firehose = ReadThrottle::shared(&limits);
        // The polling readers use up the shard's calls and owe 4 MiB ...
        for _ in 0..5 {
            firehose.before_read(0).await;
        }
        firehose.after_read(0, 4 * 1024 * 1024);
        // ... and the consumer still reads at once, any number of calls, within its own 2 MiB/s.
        consumer.before_read(0).await;
        consumer.after_read(0, 1024 * 1024);
        assert!(clock.slept.lock().unwrap().is_empty());
        consumer.before_read(0).await;
        assert_eq!(*clock.slept.lock().unwrap(), [Duration::from_millis(500)]);
        // The shared readers wait for their own debt: 4 MiB at 2 MiB/s, from the start.
        firehose.before_read(0).await;
        assert_eq!(
            *clock.slept.lock().unwrap(),
            [Duration::from_millis(500), Duration::from_millis(1500)]
        );
    }

    #[tokio::test]
    async fn without_limits_nothing_waits() {
        let reader = ReadThrottle::unlimited();
        for _ in 0..100 {
            reader.before_read(0).await;
            reader.after_read(0, 100 * 1024 * 1024);
        }
    }
}
