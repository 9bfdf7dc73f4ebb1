//! A poison record: one order whose DynamoDB write always fails (the table never takes it) is
//! retried, bisected down to itself, and ends in the failure store; every other order is written,
//! and the records behind it wait no longer than the retry budget.

mod support;

use std::borrow::Cow;
use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine;
use orderflow_domain::{GeneratorConfig, OrderGenerator};
use orderflow_twin::dynamodb::Dynalite;
use support::dynamodb_faults::{self, FaultProxy, Faults};
use support::{TwinProcess, settings_file, temp_dir};

const POISON_CUSTOMER: &str = "poison-customer";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_ends_in_the_failure_store_and_blocks_nothing_else() {
    let dynalite = Dynalite::in_memory().await.unwrap();
    let proxy = FaultProxy::start(
        &dynalite.endpoint,
        Faults {
            poison_customers: HashSet::from([POISON_CUSTOMER.to_owned()]),
            ..Faults::default()
        },
    )
    .await;
    let dir = temp_dir("poison");
    // A 2 s Lambda timeout: the consumer gives up on the poison write at its deadline (short, so
    // the test is quick; long enough for the other 99 writes of a batch on a loaded machine).
    let settings = settings_file(&dir, |s| {
        s["consumer"]["batch_size"] = 100.into();
        s["consumer"]["timeout_seconds"] = 2.into();
        s["consumer"]["maximum_retry_attempts"] = 2.into();
        s["consumer"]["bisect_batch_on_function_error"] = true.into();
    });
    let twin = TwinProcess::start(
        &dir.join("data"),
        &settings,
        &["--dynamodb-endpoint", &proxy.endpoint],
    );

    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(7));
    let mut orders: Vec<_> = (0..300).map(|_| generator.next_order()).collect();
    orders[137].customer_id = Cow::Borrowed(POISON_CUSTOMER);
    let bodies: Vec<serde_json::Value> = orders
        .iter()
        .map(|order| serde_json::from_slice(&order.to_json()).unwrap())
        .collect();
    let http = reqwest::Client::new();
    let started = Instant::now();
    for chunk in bodies.chunks(100) {
        let response = http
            .post(format!("{}/v1/orders/batch", twin.endpoints.api))
            .header("x-api-key", &twin.api_key)
            .json(&serde_json::json!({ "orders": chunk }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    let status = twin
        .wait_until(Duration::from_secs(120), |status| status.failed_batches > 0)
        .await;
    let elapsed = started.elapsed();
    assert_eq!(status.failed_batches, 1, "{}", status.to_text());
    assert_eq!(status.failed_records, 1);

    // The failure store names the poison record and keeps its bytes.
    let failures = support::files_under(&dir.join("data/bucket/failures/consumer"), ".json");
    assert_eq!(failures.len(), 1);
    let document: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&failures[0]).unwrap()).unwrap();
    assert_eq!(
        document["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(document["KinesisBatchInfo"]["batchSize"], 1);
    let data = document[orderflow_twin::consumer::TWIN_RECORDS][0]["data"]
        .as_str()
        .unwrap();
    let stored = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    // The API stores each order exactly as it came in the batch (here re-encoded by serde_json).
    let stored: serde_json::Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored, bodies[137]);

    // Every other order is in DynamoDB; the poison one is not.
    let items = dynamodb_faults::scan_all(
        &orderflow_twin::dynamodb::client(&dynalite.endpoint),
        &twin.endpoints.table,
    )
    .await;
    let keys: HashSet<(String, String)> = items.into_keys().collect();
    let expected: HashSet<(String, String)> = orders
        .iter()
        .filter(|order| order.customer_id != POISON_CUSTOMER)
        .map(|order| (order.customer_id.to_string(), order.order_id.to_string()))
        .collect();
    assert_eq!(keys, expected);
    assert!(
        proxy
            .counts
            .poison_refusals
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    );

    // Bisecting 100 records to one takes 7 halvings, then 1 + 2 retries, each at most one timeout
    // (2 s) plus backoff: about 30 s. The bound is a guard against a shard held for good (a
    // retry loop without end), not a speed target.
    assert!(
        elapsed < Duration::from_secs(110),
        "the poison record held the shard for {elapsed:?}"
    );
    println!("poison record isolated and stored in {elapsed:?}");
    assert!(twin.interrupt().success());
}
