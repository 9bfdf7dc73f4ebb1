//! Upgrade safety of the data folder (issue 15, item 5): a folder written by an earlier twin
//! opens with this one, keeps everything it held, and takes new orders.
//!
//! `tests/fixtures/data-folder-format-1/` was written by the twin of commit 5be8350 (before the
//! folder carried its format), with `orderflow demo --orders 6 --batch-size 3 --seed 7
//! --buffering-interval-seconds 1`: 6 orders, 3 per shard, in DynamoDB and in Parquet
//! (6, 15, 6 and 6 rows). Never regenerate it: it stands for the users' folders of that version.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use orderflow_producer::{RetryPolicy, Route, RunConfig, Stats, Stop, WorkloadConfig};
use orderflow_twin::data_folder::{FORMAT, FORMAT_FILE, FormatMark};
use support::{TwinProcess, settings_file, temp_dir};
use tokio_util::sync::CancellationToken;

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_folder_of_the_first_twin_opens_keeps_its_data_and_takes_new_orders() {
    let dir = temp_dir("upgrade");
    let data = dir.join("data");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-folder-format-1"),
        &data,
    );
    assert!(
        !data.join(FORMAT_FILE).exists(),
        "the fixture predates the mark"
    );
    let settings = settings_file(&dir, |settings| {
        settings["delivery"]["buffering_interval_seconds"] = 1.into();
    });
    let twin = TwinProcess::start(&data, &settings, &[]);

    let rows = |status: &orderflow_twin::status::Status| {
        [
            "orders",
            "product_details",
            "purchase_details",
            "shipping_addresses",
        ]
        .map(|table| status.rows(table))
    };
    let before = twin
        .wait_until(Duration::from_secs(60), |status| {
            status.dynamodb_items == Some(6)
        })
        .await;
    assert_eq!(rows(&before), [6, 15, 6, 6], "{}", before.to_text());
    assert_eq!(
        before.shards.iter().map(|s| s.records).collect::<Vec<_>>(),
        [3, 3]
    );
    let mark: FormatMark =
        serde_json::from_slice(&std::fs::read(data.join(FORMAT_FILE)).unwrap()).unwrap();
    assert_eq!(mark.format, FORMAT);

    // New orders land beside the old ones.
    let config = RunConfig {
        endpoint: twin.endpoints.api.clone(),
        api_key: twin.api_key.clone(),
        stop: Stop::Count(4),
        rate: None,
        concurrency: 1,
        batch_size: 2,
        route: Route::V1,
        workload: WorkloadConfig {
            seed: 99,
            customers: 50,
            days: 1,
            until: DateTime::parse_from_rfc3339("2026-11-30T00:00:00Z")
                .unwrap()
                .to_utc(),
            invalid_ratio: 0.0,
        },
        request_timeout: Duration::from_secs(30),
        retry: RetryPolicy::default(),
    };
    let summary = orderflow_producer::run(
        &config,
        Arc::new(Stats::default()),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(summary.accepted, 4, "{}", summary.to_text());
    let after = twin
        .wait_until(Duration::from_secs(60), |status| {
            status.dynamodb_items == Some(10) && status.rows("orders") == 10
        })
        .await;
    assert_eq!(
        after.shards.iter().map(|s| s.records).sum::<u64>(),
        10,
        "{}",
        after.to_text()
    );
    assert!(twin.interrupt().success());
}

/// A folder marked by a newer twin is refused before anything in it changes, with a message
/// naming both versions, and the process exits with an error.
#[test]
fn a_folder_of_a_newer_twin_is_refused_untouched() {
    let dir = temp_dir("newer");
    let data = dir.join("data");
    copy_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/data-folder-format-1"),
        &data,
    );
    let mark = format!(
        r#"{{"format": {}, "written_by": "orderflow 99.0.0"}}"#,
        FORMAT + 1
    );
    std::fs::write(data.join(FORMAT_FILE), &mark).unwrap();
    let listing = |dir: &Path| {
        let mut files: Vec<_> = walk(dir)
            .into_iter()
            .map(|path| (path.clone(), std::fs::read(&path).unwrap()))
            .collect();
        files.sort();
        files
    };
    let before = listing(&data);
    for args in [&["up", "--port", "0"][..], &["status"][..]] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains("orderflow 99.0.0"), "{args:?}: {stderr}");
        assert!(
            stderr.contains(&orderflow_twin::data_folder::this_version()),
            "{args:?}: {stderr}"
        );
    }
    assert!(listing(&data) == before, "the folder was changed");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
