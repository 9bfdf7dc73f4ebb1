//! Test support: the real `orderflow` binary as a child process, test settings, and readers of
//! what it wrote.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use orderflow_twin::status::Status;
use orderflow_twin::twin::{Endpoints, STATUS_ROUTE, endpoints_file};

pub mod dynamodb_faults;

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A fixed workload: `customers` customers, orders over the 30 days before 2024-06-08, a share
/// `invalid_ratio` of them invalid; the same orders on every run.
pub fn workload(
    seed: u64,
    customers: u32,
    invalid_ratio: f64,
) -> orderflow_producer::WorkloadConfig {
    orderflow_producer::WorkloadConfig {
        seed,
        customers,
        days: 30,
        until: chrono::DateTime::parse_from_rfc3339("2024-06-08T00:00:00Z")
            .unwrap()
            .to_utc(),
        invalid_ratio,
    }
}

/// A fresh, empty temporary folder, removed with everything in it when dropped (also when the
/// test fails).
pub struct TestDir(tempfile::TempDir);

impl std::ops::Deref for TestDir {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.0.path()
    }
}

impl AsRef<Path> for TestDir {
    fn as_ref(&self) -> &Path {
        self.0.path()
    }
}

/// A fresh, empty folder named after `name` in the system's temporary folder.
pub fn temp_dir(name: &str) -> TestDir {
    TestDir(
        tempfile::Builder::new()
            .prefix(&format!("orderflow-{name}-"))
            .tempdir()
            .unwrap(),
    )
}

/// Writes `tofu/pipeline.json` with `tweak` applied into `dir`; returns its path. Tests use a
/// short Firehose buffering interval so that they need not wait 60 s per delivery.
pub fn settings_file(dir: &Path, tweak: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut settings: serde_json::Value =
        serde_json::from_str(orderflow_twin::settings::PIPELINE_JSON).unwrap();
    settings["delivery"]["buffering_interval_seconds"] = 1.into();
    tweak(&mut settings);
    let path = dir.join("pipeline.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&settings).unwrap()).unwrap();
    path
}

/// `orderflow up` running as a child process.
pub struct TwinProcess {
    child: Option<Child>,
    /// Its data folder.
    pub data_dir: PathBuf,
    /// Where it listens.
    pub endpoints: Endpoints,
    /// The API key.
    pub api_key: String,
}

impl TwinProcess {
    /// Starts `orderflow up --port 0` on `data_dir` with `settings` and `extra` arguments; returns
    /// once it has written its endpoints.
    pub fn start(data_dir: &Path, settings: &Path, extra: &[&str]) -> TwinProcess {
        let _ = std::fs::remove_file(endpoints_file(data_dir));
        let child = Command::new(env!("CARGO_BIN_EXE_orderflow"))
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--settings")
            .arg(settings)
            .args(["up", "--port", "0"])
            .args(extra)
            .env("ORDERFLOW_NODE_MODULES", repo_root().join("node_modules"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the orderflow binary starts");
        let pid = child.id();
        let started = Instant::now();
        let endpoints = loop {
            if let Ok(text) = std::fs::read(endpoints_file(data_dir))
                && let Ok(endpoints) = serde_json::from_slice::<Endpoints>(&text)
                && endpoints.pid == pid
            {
                break endpoints;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the twin did not start within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let api_key = std::fs::read_to_string(data_dir.join("api-key"))
            .unwrap()
            .trim()
            .to_owned();
        TwinProcess {
            child: Some(child),
            data_dir: data_dir.to_owned(),
            endpoints,
            api_key,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Ctrl-C: the graceful stop; returns the exit status.
    pub fn interrupt(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    /// `kill -9`: no chance to save anything.
    pub fn kill9(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The running twin's status.
    pub async fn status(&self) -> Status {
        reqwest::get(format!("{}{STATUS_ROUTE}", self.endpoints.api))
            .await
            .unwrap()
            .error_for_status()
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits until every reader of the stream has processed every record and `done` holds.
    pub async fn wait_until(&self, timeout: Duration, done: impl Fn(&Status) -> bool) -> Status {
        let started = Instant::now();
        loop {
            let status = self.status().await;
            if status.caught_up() && done(&status) {
                return status;
            }
            assert!(
                started.elapsed() < timeout,
                "the twin did not catch up within {timeout:?}:\n{}",
                status.to_text()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// A DynamoDB client for the twin's endpoint.
    pub fn dynamodb(&self) -> aws_sdk_dynamodb::Client {
        orderflow_twin::dynamodb::client(&self.endpoints.dynamodb)
    }
}

impl Drop for TwinProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `orderflow query --format json` on `data_dir`; the rows as JSON objects.
pub fn query_json(
    data_dir: &Path,
    sql_file: &Path,
) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let output = Command::new(env!("CARGO_BIN_EXE_orderflow"))
        .arg("--data-dir")
        .arg(data_dir)
        .args(["query", "--format", "json"])
        .arg(sql_file)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "query {} failed: {}",
        sql_file.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
    rows.into_iter()
        .map(|row| match row {
            serde_json::Value::Object(map) => map,
            other => panic!("not a row: {other}"),
        })
        .collect()
}

/// Every file under `dir` (recursively) whose name ends with `suffix`.
pub fn files_under(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(files_under(&path, suffix));
        } else if path.to_string_lossy().ends_with(suffix) {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// All items of a DynamoDB table (paginated Scan).
pub async fn scan_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> Vec<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    dynamodb_faults::scan_all(client, table)
        .await
        .into_values()
        .collect()
}

/// Processes whose command line mentions `path` (the dynalite of a data folder).
pub fn processes_mentioning(path: &Path) -> Vec<PathBuf> {
    let needle = path.to_string_lossy().into_owned();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|proc| {
            std::fs::read(proc.join("cmdline"))
                .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains(&needle))
        })
        .collect()
}

/// `orderflow status --json` on a stopped twin's data folder (with `settings`, if given).
pub fn stopped_status(data_dir: &Path, settings: Option<&Path>) -> Status {
    let mut command = Command::new(env!("CARGO_BIN_EXE_orderflow"));
    command.arg("--data-dir").arg(data_dir);
    if let Some(settings) = settings {
        command.arg("--settings").arg(settings);
    }
    let output = command.args(["status", "--json"]).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
