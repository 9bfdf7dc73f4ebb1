//! Issue 11, item 5: Kinesis' write limits reach the producer as they do in AWS. One shard takes
//! 1,000 records a second; more arrive, so batches come back `207` with the records over the
//! limit failed (`ProvisionedThroughputExceededException`), the producer re-sends exactly those
//! after a backoff, and every order lands in the stream once, in DynamoDB and in Parquet, the
//! readers reading within the shard's read limits.

mod support;

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orderflow_domain::parse_order;
use orderflow_producer::{Stats, Workload, WorkloadConfig};
use orderflow_twin::limits::Clock;
use orderflow_twin::settings::PipelineSettings;
use orderflow_twin::twin::{Twin, TwinOptions};
use tokio_util::sync::CancellationToken;

const ORDERS: u64 = 3_000;

fn workload() -> WorkloadConfig {
    support::workload(5_000_011, 1_000, 0.0)
}

/// Kinesis' clock in this test: it stands still until the test starts it, then runs in real time.
/// While it stands still a shard gets no new allowance, so every record after its first second's
/// worth is refused, however slowly this machine sends (a debug build validates a batch of 500
/// orders in seconds).
#[derive(Debug, Default)]
struct HeldClock {
    started: Mutex<Option<tokio::time::Instant>>,
}

impl HeldClock {
    fn start(&self) {
        self.started
            .lock()
            .unwrap()
            .get_or_insert_with(tokio::time::Instant::now);
    }
}

impl Clock for HeldClock {
    fn now(&self) -> Duration {
        self.started
            .lock()
            .unwrap()
            .map_or(Duration::ZERO, |started| started.elapsed())
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// `(customer_id, order_id)` of an order's JSON.
fn key(json: &[u8]) -> (String, String) {
    let order = parse_order(json).expect("a valid order");
    (order.customer_id.to_string(), order.order_id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_orders_are_re_sent_by_the_producer_and_land_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = PipelineSettings::built_in();
    settings.stream.shard_count = 1;
    let clock = Arc::new(HeldClock::default());
    let twin = Twin::start(TwinOptions {
        data_dir: dir.path().to_owned(),
        settings,
        port: 0,
        api_key: None,
        dynamodb_endpoint: None,
        buffering_interval: Some(Duration::from_secs(1)),
        limits: Some(clock.clone()),
    })
    .await
    .unwrap();

    // 3,000 orders in batches of 500, four in flight, as fast as the API answers. Kinesis' clock
    // starts once the producer re-sends refused orders: until then the shard took exactly its
    // first second's worth.
    let config = twin.producer_config(workload(), ORDERS, 500, 4);
    let stats = Arc::new(Stats::default());
    let started = Instant::now();
    let producer = tokio::spawn({
        let stats = stats.clone();
        async move { orderflow_producer::run(&config, stats, CancellationToken::new()).await }
    });
    while stats.summary(Duration::ZERO, false, None).retried == 0 {
        assert!(
            !producer.is_finished(),
            "the producer finished without a re-send"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let held = twin.stream().read(0, 0, usize::MAX, usize::MAX).unwrap();
    let held_bytes: usize = held
        .iter()
        .map(|r| r.partition_key.len() + r.data.len())
        .sum();
    clock.start();
    assert_eq!(
        held.len(),
        1000,
        "records the shard took while Kinesis' clock stood still ({held_bytes} bytes)"
    );
    let summary = producer.await.unwrap();
    let sending = started.elapsed();
    let report = summary.to_text();
    eprintln!("[{:>5.1} s] sent\n{report}", sending.as_secs_f64());
    assert_eq!(summary.accepted, ORDERS, "{report}");
    assert_eq!((summary.rejected, summary.gave_up), (0, 0), "{report}");
    assert!(summary.success(), "{report}");
    // The retry path ran: orders over the shard's limit were answered as failed and re-sent.
    assert!(summary.retried > 0, "nothing was throttled:\n{report}");
    // Then 1,000 records a second: the other 2,000 took 2 s at least.
    assert!(
        sending >= Duration::from_secs(2),
        "3,000 records in {sending:?}: the shard's limit was not enforced\n{report}"
    );

    // Every order is in the stream exactly once: a throttled record was not written, and its
    // re-send was written once.
    let mut expected: HashMap<(String, String), u32> = HashMap::new();
    let mut orders = Workload::new(&workload());
    for _ in 0..ORDERS {
        *expected.entry(key(&orders.next_order().body)).or_default() += 1;
    }
    assert_eq!(expected.len() as u64, ORDERS, "the workload repeats no key");
    let stored = twin.stream().read(0, 0, usize::MAX, usize::MAX).unwrap();
    let mut found: HashMap<(String, String), u32> = HashMap::new();
    for record in &stored {
        *found.entry(key(&record.data)).or_default() += 1;
    }
    assert_eq!(stored.len() as u64, ORDERS, "records in the stream");
    assert_eq!(found, expected, "each order once");

    // And the consumer wrote each of them to DynamoDB.
    twin.wait_for(Duration::from_secs(120), |lag| lag["consumer"] == 0)
        .await
        .unwrap();
    let items = orderflow_twin::dynamodb::count_items(twin.dynamodb(), &twin.endpoints.table)
        .await
        .unwrap();
    assert_eq!(items, ORDERS);
    eprintln!("[{:>5.1} s] in DynamoDB", started.elapsed().as_secs_f64());
    // The four delivery streams, sharing the shard's five reads and 2 MiB a second, deliver
    // every order too.
    twin.flush_deliveries();
    twin.wait_for(Duration::from_secs(120), |lag| {
        lag.values().all(|&l| l == 0)
    })
    .await
    .unwrap();
    let projection_years = PipelineSettings::built_in()
        .athena
        .partition_projection_years;
    let context =
        orderflow_twin::analytics::session(twin.bucket().root(), ".parquet", projection_years)
            .await
            .unwrap();
    let rows = orderflow_twin::analytics::run(&context, "SELECT COUNT(*) AS n FROM orders")
        .await
        .unwrap()
        .to_json()
        .unwrap();
    assert_eq!(rows[0]["n"], ORDERS.to_string());
    eprintln!("[{:>5.1} s] in Parquet", started.elapsed().as_secs_f64());
    twin.shutdown().await.unwrap();
}
