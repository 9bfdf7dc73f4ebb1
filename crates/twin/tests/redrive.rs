//! Issue 14, item 4: `orderflow redrive` sends the failure store's batches through the consumer
//! again once the fault is gone, deletes each batch only after its records landed, and leaves the
//! table's error output of orders that are still invalid where it was.

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use orderflow_domain::{GeneratorConfig, OrderGenerator};
use orderflow_twin::dynamodb::Dynalite;
use support::dynamodb_faults::{FaultProxy, Faults};
use support::{TwinProcess, settings_file, temp_dir};

fn redrive(data: &std::path::Path) -> (bool, serde_json::Value) {
    let output = Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .arg("--data-dir")
        .arg(data)
        .args(["redrive", "--json"])
        .output()
        .unwrap();
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&output.stderr)));
    (output.status.success(), report)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_redriven_once_the_fault_is_gone() {
    let dynalite = Dynalite::in_memory().await.unwrap();
    let proxy = FaultProxy::start(
        &dynalite.endpoint,
        Faults {
            poison_customers: HashSet::from(["poison-customer".to_owned()]),
            ..Faults::default()
        },
    )
    .await;
    let dir = temp_dir("redrive");
    let data = dir.join("data");
    let settings = settings_file(&dir, |s| {
        // As in poison.rs: the poison record is bisected down to itself, then fails for good.
        s["consumer"]["batch_size"] = 100.into();
        s["consumer"]["timeout_seconds"] = 2.into();
        s["consumer"]["maximum_retry_attempts"] = 2.into();
        s["consumer"]["bisect_batch_on_function_error"] = true.into();
    });
    let twin = TwinProcess::start(
        &data,
        &settings,
        &["--no-limits", "--dynamodb-endpoint", &proxy.endpoint],
    );
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(51));
    let mut orders: Vec<_> = (0..40).map(|_| generator.next_order()).collect();
    orders[7].customer_id = "poison-customer".into();
    let mut bodies: Vec<serde_json::Value> = orders
        .iter()
        .map(|order| serde_json::from_slice(&order.to_json()).unwrap())
        .collect();
    // One order no transformer takes: it ends in each table's error output.
    bodies.push(serde_json::json!({
        "customer_id": "c-bad", "order_id": "o-bad", "order_date": "2024-02-30T10:00:00Z",
        "status": "paid",
        "shipping_address": {"street": "s", "city": "c", "state": "t", "zip": "z", "country": "k"},
        "purchase_details": {"payment_type": "cash", "amount": 1.5, "currency": "EUR", "instalments": 1},
        "product_details": [{"product_id": "p", "name": "n", "quantity": 1, "item_details": {"color": "c", "size": "s"}}]
    }));
    let response = reqwest::Client::new()
        .post(format!("{}/v1/orders/batch", twin.endpoints.api))
        .header("x-api-key", &twin.api_key)
        .json(&serde_json::json!({ "orders": bodies }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let status = twin
        .wait_until(Duration::from_secs(120), |s| s.failed_batches > 0)
        .await;
    assert_eq!((status.failed_batches, status.failed_records), (1, 1));
    let errors_before = status.error_records.clone();
    assert_eq!(errors_before.len(), 4, "{errors_before:?}");
    // While the fault lasts, a redrive keeps the batch (exit 1).
    let (ok, report) = redrive(&data);
    assert!(!ok);
    assert_eq!(report["batches"], 0);
    assert!(twin.interrupt().success());

    // The fault is gone: the same data folder against DynamoDB directly.
    let twin = TwinProcess::start(
        &data,
        &settings,
        &["--no-limits", "--dynamodb-endpoint", &dynalite.endpoint],
    );
    let (ok, report) = redrive(&data);
    // The invalid order fails again in each table's error output; the batch is redriven.
    assert!(!ok, "{report}");
    assert_eq!(report["batches"], 1, "{report}");
    assert_eq!(report["batch_records"], 1);
    assert_eq!(report["error_records"], 0);
    assert_eq!(report["error_records_failed_again"], 4);
    let status = twin.status().await;
    assert_eq!((status.failed_batches, status.failed_records), (0, 0));
    assert_eq!(
        status.error_records, errors_before,
        "the invalid order stays"
    );
    let distinct: HashSet<_> = orders
        .iter()
        .map(|o| (o.customer_id.to_string(), o.order_id.to_string()))
        .collect();
    assert_eq!(status.dynamodb_items, Some(distinct.len() as u64));
    let items = support::scan_all(&twin.dynamodb(), &twin.endpoints.table).await;
    assert!(
        items
            .iter()
            .any(|item| item["customer_id"].as_s().unwrap() == "poison-customer")
    );
    assert!(twin.interrupt().success());
}
