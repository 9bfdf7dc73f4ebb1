//! Issue 14, items 1 and 2: the twin supervises dynalite and says honestly what each part is
//! doing. A dynalite killed mid-run is started again on the same data folder and port, shown as
//! restarting and then up in the status with its cause, and nothing acknowledged is lost or sent
//! to the failure store; Ctrl-C does not wait for a consumer invocation stuck in a write loop, and
//! that invocation's batch is delivered again at the next start.
//!
//! The time bounds below are guards against a hang (a loaded machine is slow), not speed targets;
//! the times measured are printed.

mod support;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use orderflow_domain::{GeneratorConfig, Order, OrderGenerator};
use orderflow_twin::dynamodb::Dynalite;
use orderflow_twin::health::{DYNAMODB, State};
use support::dynamodb_faults::{FaultProxy, Faults};
use support::{TwinProcess, processes_mentioning, settings_file, temp_dir};

/// Sends `orders` to the batch route, 100 a request; every one must be acknowledged.
async fn send(twin: &TwinProcess, orders: &[Order<'_>]) {
    let http = reqwest::Client::new();
    for chunk in orders.chunks(100) {
        let body: Vec<serde_json::Value> = chunk
            .iter()
            .map(|order| serde_json::from_slice(&order.to_json()).unwrap())
            .collect();
        let response = http
            .post(format!("{}/v1/orders/batch", twin.endpoints.api))
            .header("x-api-key", &twin.api_key)
            .json(&serde_json::json!({ "orders": body }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

fn orders(seed: u64, count: usize) -> Vec<Order<'static>> {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(seed));
    (0..count).map(|_| generator.next_order()).collect()
}

fn distinct(orders: &[Order<'_>]) -> usize {
    orders
        .iter()
        .map(|o| (o.customer_id.to_string(), o.order_id.to_string()))
        .collect::<HashSet<_>>()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_dynalite_is_restarted_and_nothing_is_lost() {
    let dir = temp_dir("supervision");
    let data = dir.join("data");
    let settings = settings_file(&dir, |s| {
        s["consumer"]["batch_size"] = 100.into();
    });
    let twin = TwinProcess::start(&data, &settings, &["--no-limits"]);
    let first = orders(31, 300);
    send(&twin, &first).await;
    let status = twin
        .wait_until(Duration::from_secs(120), |s| {
            s.dynamodb_items == Some(distinct(&first) as u64)
        })
        .await;
    let dynamodb = &status.components[DYNAMODB];
    assert_eq!((dynamodb.state, dynamodb.restarts), (State::Up, 0));
    assert!(status.running);
    assert!(
        status
            .components
            .keys()
            .any(|name| name.starts_with("consumer mapping")),
        "{:?}",
        status.components.keys()
    );

    // kill -9 the twin's dynalite, and keep sending: the API does not need DynamoDB.
    let dynalites = processes_mentioning(&data.join("dynamodb"));
    assert_eq!(dynalites.len(), 1, "{dynalites:?}");
    let pid = dynalites[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let killed = Instant::now();
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap()
            .success()
    );
    let second = orders(32, 300);
    send(&twin, &second).await;

    // Restarted: up again with one restart and the cause; every order lands, none fails.
    let mut all = first.clone();
    all.extend(second.iter().cloned());
    let status = loop {
        let status = twin.status().await;
        let dynamodb = &status.components[DYNAMODB];
        if dynamodb.state == State::Up && dynamodb.restarts == 1 {
            println!(
                "dynalite up again {} ms after the kill (seen by polling)",
                killed.elapsed().as_millis()
            );
            break status;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "dynalite was not restarted:\n{}",
            status.to_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let cause = status.components[DYNAMODB].last_error.clone().unwrap();
    assert!(cause.contains("dynalite exited"), "{cause}");
    assert!(cause.contains("signal: 9"), "{cause}");
    assert_ne!(
        processes_mentioning(&data.join("dynamodb")),
        dynalites,
        "a new dynalite process"
    );
    let status = twin
        .wait_until(Duration::from_secs(120), |s| {
            s.dynamodb_items == Some(distinct(&all) as u64)
        })
        .await;
    assert_eq!(status.failed_batches, 0, "{}", status.to_text());
    let text = status.to_text();
    assert!(text.contains("restarted 1 times"), "{text}");

    let stopping = Instant::now();
    assert!(twin.interrupt().success());
    println!("stopped {} ms after Ctrl-C", stopping.elapsed().as_millis());
    assert!(processes_mentioning(&data.join("dynamodb")).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_abandons_a_stuck_invocation_which_is_delivered_again() {
    // Every put of one customer is throttled: the consumer's write loop keeps retrying it until
    // the function's timeout (60 s, as deployed).
    let dynalite = Dynalite::in_memory().await.unwrap();
    let proxy = FaultProxy::start(
        &dynalite.endpoint,
        Faults {
            poison_customers: HashSet::from(["stuck-customer".to_owned()]),
            ..Faults::default()
        },
    )
    .await;
    let dir = temp_dir("stuck");
    let data = dir.join("data");
    let settings = settings_file(&dir, |s| {
        s["consumer"]["timeout_seconds"] = 60.into();
    });
    let twin = TwinProcess::start(
        &data,
        &settings,
        &["--no-limits", "--dynamodb-endpoint", &proxy.endpoint],
    );
    let mut batch = orders(33, 50);
    batch[10].customer_id = "stuck-customer".into();
    send(&twin, &batch).await;
    let started = Instant::now();
    while proxy
        .counts
        .poison_refusals
        .load(std::sync::atomic::Ordering::SeqCst)
        < 3
    {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the consumer never tried the stuck customer"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let stopping = Instant::now();
    assert!(twin.interrupt().success());
    let stopped_after = stopping.elapsed();
    println!("stopped {} ms after Ctrl-C", stopped_after.as_millis());
    assert!(
        stopped_after < Duration::from_secs(30),
        "Ctrl-C waited for the invocation ({stopped_after:?})"
    );
    // The abandoned batch is not checkpointed, and nothing went to the failure store.
    let status = support::stopped_status(&data, None);
    let lag: u64 = status.shards.iter().map(|s| s.lag["consumer"]).sum();
    assert!(lag > 0, "{}", status.to_text());
    assert_eq!(status.failed_batches, 0);
    assert!(!status.running);
    assert!(
        status
            .to_text()
            .contains("components: the twin is not running")
    );

    // Started again against DynamoDB without the fault: the batch is delivered again, and all
    // of it lands, the stuck customer's order too.
    let twin = TwinProcess::start(
        &data,
        &settings,
        &["--no-limits", "--dynamodb-endpoint", &dynalite.endpoint],
    );
    let status = twin
        .wait_until(Duration::from_secs(120), |s| {
            s.dynamodb_items == Some(distinct(&batch) as u64)
        })
        .await;
    assert_eq!(status.failed_batches, 0);
    assert!(twin.interrupt().success());
}
