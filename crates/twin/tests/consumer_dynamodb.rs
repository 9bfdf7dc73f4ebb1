//! The consumer against a real DynamoDB API (the twin's dynalite, in memory), directly and through
//! a fault-injecting proxy (throttling, 500s), and replays that must never overwrite a newer
//! version. (The consumer's own tests need no server; these live beside the twin's stand-ins.)

mod support;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, TimeZone, Utc};
use orderflow_consumer::{WritePolicy, handle_batch};
use orderflow_domain::{GeneratorConfig, Order, OrderGenerator, Provenance, order_item};
use orderflow_twin::dynamodb::{Dynalite, client, ensure_table};
use support::dynamodb_faults::{
    FaultProxy, Faults, RecordSpec, kinesis_event, scan_all, sequence_number,
};
use tokio::time::Instant;

const TABLE: &str = "orders-test";

fn orders(count: usize, seed: u64, customers: u32) -> Vec<Order<'static>> {
    let now = Utc.with_ymd_and_hms(2024, 6, 8, 12, 0, 0).unwrap();
    let mut generator = OrderGenerator::new(GeneratorConfig {
        seed,
        customers,
        days: 10,
        now,
    });
    (0..count).map(|_| generator.next_order()).collect()
}

fn arrival(n: usize) -> f64 {
    1_717_848_000.0 + n as f64 * 0.25
}

fn arrival_time(n: usize) -> DateTime<Utc> {
    DateTime::from_timestamp_millis((arrival(n) * 1000.0) as i64).unwrap()
}

fn specs(orders: &[Order<'_>]) -> Vec<RecordSpec> {
    orders
        .iter()
        .enumerate()
        .map(|(n, order)| RecordSpec {
            data: order.to_json(),
            sequence_number: sequence_number(n),
            arrival_seconds: arrival(n),
        })
        .collect()
}

fn soon(seconds: u64) -> Instant {
    Instant::now() + Duration::from_secs(seconds)
}

#[tokio::test]
async fn a_thousand_records_land_with_exact_values_and_types() {
    let dynalite = Dynalite::in_memory().await.unwrap();
    let db = client(&dynalite.endpoint);
    ensure_table(&db, TABLE).await.unwrap();
    let orders = orders(1_000, 1, 1_000_000);
    let event = kinesis_event(&specs(&orders));

    let (response, summary) =
        handle_batch(&event, &db, TABLE, &WritePolicy::default(), soon(60)).await;

    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        (
            summary.records,
            summary.written,
            summary.invalid,
            summary.failed
        ),
        (1_000, 1_000, 0, 0)
    );
    let stored = scan_all(&db, TABLE).await;
    assert_eq!(stored.len(), 1_000);
    for (n, order) in orders.iter().enumerate() {
        let seq = sequence_number(n);
        let expected = order_item(
            order,
            &Provenance {
                ingested_at: arrival_time(n),
                source_sequence_number: &seq,
            },
        );
        let key = (order.customer_id.to_string(), order.order_id.to_string());
        assert_eq!(stored[&key], expected, "item {n}");
    }
    // Spot-check the types DynamoDB holds, not only equality with our own mapping.
    let item = stored.values().next().unwrap();
    assert!(matches!(
        item["purchase_details"].as_m().unwrap()["amount"],
        AttributeValue::N(_)
    ));
    assert!(matches!(item["product_details"], AttributeValue::L(_)));
    assert!(
        item["ingested_at"]
            .as_s()
            .unwrap()
            .starts_with("2024-06-08T12:")
    );
}

#[tokio::test]
async fn duplicate_keys_collapse_to_the_highest_sequence_number() {
    let dynalite = Dynalite::in_memory().await.unwrap();
    let db = client(&dynalite.endpoint);
    ensure_table(&db, TABLE).await.unwrap();
    let mut base = orders(1, 2, 10).remove(0);
    let mut records = Vec::new();
    // Sequence numbers deliberately out of order in the batch: 10, 30 (paid), 20.
    for (n, status) in [(10, "pending"), (30, "paid"), (20, "shipped")] {
        base.status = status.parse().unwrap();
        records.push(RecordSpec {
            data: base.to_json(),
            sequence_number: sequence_number(n),
            arrival_seconds: arrival(n),
        });
    }
    let event = kinesis_event(&records);

    let (response, summary) =
        handle_batch(&event, &db, TABLE, &WritePolicy::default(), soon(30)).await;

    assert!(response.batch_item_failures.is_empty());
    assert_eq!((summary.written, summary.collapsed), (1, 2));
    let stored = scan_all(&db, TABLE).await;
    let item = stored.values().next().unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(item["status"].as_s().unwrap(), "paid");
    assert_eq!(
        item["source_sequence_number"].as_s().unwrap(),
        &sequence_number(30)
    );
}

#[tokio::test]
async fn invalid_records_are_skipped_and_counted_never_failed() {
    let dynalite = Dynalite::in_memory().await.unwrap();
    let db = client(&dynalite.endpoint);
    ensure_table(&db, TABLE).await.unwrap();
    let good = orders(3, 3, 100);
    let legacy = String::from_utf8(good[2].to_json())
        .unwrap()
        .replace("purchase_details", "purchaise_details");
    let mut bad_amount: serde_json::Value = serde_json::from_slice(&good[1].to_json()).unwrap();
    bad_amount["purchase_details"]["amount"] = serde_json::json!(1.234);
    let records = vec![
        RecordSpec {
            data: b"{not json".to_vec(),
            sequence_number: sequence_number(1),
            arrival_seconds: arrival(1),
        },
        RecordSpec {
            data: good[0].to_json(),
            sequence_number: sequence_number(2),
            arrival_seconds: arrival(2),
        },
        RecordSpec {
            data: bad_amount.to_string().into_bytes(),
            sequence_number: sequence_number(3),
            arrival_seconds: arrival(3),
        },
        RecordSpec {
            data: vec![0xff, 0x00, 0x12],
            sequence_number: sequence_number(4),
            arrival_seconds: arrival(4),
        },
        RecordSpec {
            data: legacy.into_bytes(),
            sequence_number: sequence_number(5),
            arrival_seconds: arrival(5),
        },
    ];
    let event = kinesis_event(&records);

    let (response, summary) =
        handle_batch(&event, &db, TABLE, &WritePolicy::default(), soon(30)).await;

    assert!(
        response.batch_item_failures.is_empty(),
        "invalid records are never retried"
    );
    assert_eq!(
        (
            summary.records,
            summary.written,
            summary.invalid,
            summary.failed
        ),
        (5, 2, 3, 0)
    );
    let stored = scan_all(&db, TABLE).await;
    let keys: HashSet<_> = stored.keys().map(|(_, order)| order.clone()).collect();
    assert_eq!(
        keys,
        HashSet::from([good[0].order_id.to_string(), good[2].order_id.to_string()])
    );
}

#[tokio::test]
async fn throttling_and_errors_are_retried_until_everything_lands() {
    let dynalite = Dynalite::in_memory().await.unwrap();
    let proxy = FaultProxy::start(
        &dynalite.endpoint,
        Faults {
            throttle_every: Some(3),
            error_every: Some(5),
            ..Faults::default()
        },
    )
    .await;
    let db = client(&proxy.endpoint);
    ensure_table(&db, TABLE).await.unwrap();
    let orders = orders(500, 4, 1_000_000);
    let event = kinesis_event(&specs(&orders));

    let (response, summary) =
        handle_batch(&event, &db, TABLE, &WritePolicy::default(), soon(120)).await;

    assert!(
        response.batch_item_failures.is_empty(),
        "{:?}",
        response.batch_item_failures
    );
    assert_eq!(summary.written, 500);
    let counts = &proxy.counts;
    use std::sync::atomic::Ordering::SeqCst;
    assert!(counts.throttled.load(SeqCst) > 0, "throttling was injected");
    assert!(counts.errors.load(SeqCst) > 0, "500s were injected");
    assert!(
        counts.throttled.load(SeqCst) + counts.errors.load(SeqCst) >= 200,
        "a third of the first attempts and more were refused"
    );
    assert_eq!(
        scan_all(&client(&dynalite.endpoint), TABLE).await.len(),
        500
    );
}

/// Issue 14, item 1: with nothing listening at the endpoint (DynamoDB down), the SDK's connection
/// error is classified as unreachable and the invocation gives every record back after a few
/// rounds instead of retrying until its deadline (an hour here).
#[tokio::test]
async fn a_refused_connection_gives_the_batch_back_at_once() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let orders = orders(20, 9, 5);
    let event = kinesis_event(&specs(&orders));
    let writes = orderflow_consumer::plan_batch(&event.records).writes;
    assert_eq!(writes.len(), orders.len());
    let policy = WritePolicy::default();
    let report =
        orderflow_consumer::write_all(&client(&endpoint), TABLE, writes, &policy, soon(3600)).await;
    assert!(report.unreachable, "{:?}", report.last_error);
    assert_eq!(report.failed.len(), orders.len());
    assert_eq!(
        report.calls,
        orders.len() * policy.unreachable_rounds as usize
    );
    // The handler reports all of them for the mapping to retry.
    let (response, summary) =
        handle_batch(&event, &client(&endpoint), TABLE, &policy, soon(3600)).await;
    assert_eq!(summary.failed, orders.len());
    assert_eq!(response.batch_item_failures.len(), orders.len());
}

#[tokio::test]
async fn when_time_runs_out_exactly_the_unwritten_records_are_reported() {
    let dynalite = Dynalite::in_memory().await.unwrap();
    let orders = orders(200, 5, 40);
    let poisoned: HashSet<String> = orders
        .iter()
        .take(30)
        .map(|o| o.customer_id.to_string())
        .collect();
    let proxy = FaultProxy::start(
        &dynalite.endpoint,
        Faults {
            throttle_every: Some(4),
            poison_customers: poisoned.clone(),
            ..Faults::default()
        },
    )
    .await;
    let db = client(&proxy.endpoint);
    ensure_table(&db, TABLE).await.unwrap();
    let event = kinesis_event(&specs(&orders));
    // Sequence numbers of every record whose customer can never be written.
    let expected: HashSet<String> = orders
        .iter()
        .enumerate()
        .filter(|(_, o)| poisoned.contains(&*o.customer_id))
        .map(|(n, _)| sequence_number(n))
        .collect();
    assert!(expected.len() < orders.len());

    let policy = WritePolicy {
        max_backoff: Duration::from_millis(200),
        ..WritePolicy::default()
    };
    // The poisoned customers never succeed, so the deadline always runs out; it is long enough
    // for every other record to be written on a loaded machine (3 s flaked under load).
    let (response, summary) = handle_batch(&event, &db, TABLE, &policy, soon(10)).await;

    let reported: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone().unwrap())
        .collect();
    assert_eq!(reported.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(
        reported.len(),
        expected.len(),
        "each failed record is reported once"
    );
    let mut sorted = reported.clone();
    sorted.sort();
    assert_eq!(reported, sorted, "reported in sequence order");
    assert_eq!(summary.written + summary.failed, orders.len());
    let stored = scan_all(&client(&dynalite.endpoint), TABLE).await;
    let stored_keys: HashMap<_, _> = stored.keys().map(|k| (k.clone(), ())).collect();
    for order in &orders {
        let key = (order.customer_id.to_string(), order.order_id.to_string());
        assert_eq!(
            stored_keys.contains_key(&key),
            !poisoned.contains(&*order.customer_id)
        );
    }
}

/// A retried, bisected or redriven batch can carry an older version of an order than the one
/// already stored; it must never replace it (issue 11, item 2). Equal sequence numbers rewrite
/// the identical item (idempotent re-delivery), and sequence numbers compare as numbers, not as
/// text ("1000" is newer than "999").
#[tokio::test]
async fn a_replayed_older_record_never_overwrites_a_newer_version() {
    let dynalite = Dynalite::in_memory().await.unwrap();
    let db = client(&dynalite.endpoint);
    ensure_table(&db, TABLE).await.unwrap();
    let order = orders(1, 9, 10).remove(0);
    let with_status = |status: &str| {
        let mut value: serde_json::Value = serde_json::from_slice(&order.to_json()).unwrap();
        value["status"] = serde_json::Value::from(status);
        serde_json::to_vec(&value).unwrap()
    };
    let put = |status: &str, sequence_number: &str| {
        kinesis_event(&[RecordSpec {
            data: with_status(status),
            sequence_number: sequence_number.to_owned(),
            arrival_seconds: arrival(0),
        }])
    };
    let stored = |db: aws_sdk_dynamodb::Client| async move {
        let items = scan_all(&db, TABLE).await;
        assert_eq!(items.len(), 1);
        let item = items.into_values().next().unwrap();
        (
            item["status"].as_s().unwrap().clone(),
            item["source_sequence_number"].as_s().unwrap().clone(),
        )
    };
    let policy = WritePolicy::default();

    // The newer version lands first (seq 1000), then the replay of the older one (seq 999).
    let (response, summary) =
        handle_batch(&put("shipped", "1000"), &db, TABLE, &policy, soon(30)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(summary.written, 1);
    let (response, summary) =
        handle_batch(&put("pending", "999"), &db, TABLE, &policy, soon(30)).await;
    assert!(
        response.batch_item_failures.is_empty(),
        "a superseded record is not a failure"
    );
    assert_eq!((summary.written, summary.superseded), (0, 1));
    assert_eq!(stored(db.clone()).await, ("shipped".into(), "1000".into()));

    // The same record again: written again, identical.
    let (_, summary) = handle_batch(&put("shipped", "1000"), &db, TABLE, &policy, soon(30)).await;
    assert_eq!((summary.written, summary.superseded), (1, 0));
    assert_eq!(stored(db.clone()).await, ("shipped".into(), "1000".into()));

    // A newer record with more digits wins.
    let (_, summary) =
        handle_batch(&put("delivered", "10001"), &db, TABLE, &policy, soon(30)).await;
    assert_eq!(summary.written, 1);
    assert_eq!(
        stored(db.clone()).await,
        ("delivered".into(), "10001".into())
    );

    // A whole replayed batch in which one customer's older and newer records both appear (the
    // batch collapses to the newest), against a store that already holds a newer one.
    let event = kinesis_event(&[
        RecordSpec {
            data: with_status("paid"),
            sequence_number: "9998".into(),
            arrival_seconds: arrival(1),
        },
        RecordSpec {
            data: with_status("confirmed"),
            sequence_number: "9999".into(),
            arrival_seconds: arrival(2),
        },
    ]);
    let (response, summary) = handle_batch(&event, &db, TABLE, &policy, soon(30)).await;
    assert!(response.batch_item_failures.is_empty());
    assert_eq!(
        (summary.written, summary.superseded, summary.collapsed),
        (0, 1, 1)
    );
    assert_eq!(stored(db).await, ("delivered".into(), "10001".into()));
}
