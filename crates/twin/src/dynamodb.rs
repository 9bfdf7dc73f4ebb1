//! DynamoDB for the twin: a dynalite server persisted under the data folder (started and stopped
//! by the twin), or any endpoint the user names (DynamoDB Local, a real table).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Select,
};
use orderflow_domain::{PARTITION_KEY, SORT_KEY};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The environment variable naming a `node_modules` folder that holds dynalite.
pub const NODE_MODULES_ENV: &str = "ORDERFLOW_NODE_MODULES";

/// Starts dynalite on a free loopback port, prints `{"port": N}` when listening, and exits when
/// its parent (the twin) is gone, even after `kill -9`.
const LAUNCHER: &str = r#"
const [modules, path] = process.argv.slice(1);
const dynalite = require(require('path').join(modules, 'dynalite'));
const server = dynalite({ path, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 250);
// The twin stops its writers before dynalite, and LevelDB has handed every write to the OS:
// exit at once instead of waiting for idle keep-alive connections to close.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => {});
"#;

/// A running dynalite.
pub struct Dynalite {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

impl Dynalite {
    /// Starts dynalite with its LevelDB files under `path`.
    pub async fn start(path: &Path) -> Result<Self> {
        let modules = find_node_modules()?;
        std::fs::create_dir_all(path)?;
        // A twin killed with -9 leaves a dynalite that exits within 250 ms; the LevelDB lock may
        // be held until then.
        let mut last_error = None;
        for _ in 0..20 {
            match Self::try_start(&modules, path).await {
                Ok(dynalite) => return Ok(dynalite),
                Err(error) => {
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        Err(last_error.expect("tried"))
    }

    async fn try_start(modules: &Path, path: &Path) -> Result<Self> {
        let mut child = Command::new("node")
            .arg("-e")
            .arg(LAUNCHER)
            .arg(modules)
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting dynalite with `node` (is Node.js 20+ installed?)")?;
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        let port = match line {
            Ok(Ok(Some(line))) => serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["port"].as_u64()),
            _ => None,
        };
        let Some(port) = port else {
            let _ = child.start_kill();
            let output = child.wait_with_output().await?;
            bail!(
                "dynalite did not start: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            );
        };
        Ok(Dynalite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        })
    }

    /// Stops dynalite and waits for it to exit.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// The `node_modules` folder holding dynalite: `$ORDERFLOW_NODE_MODULES`, else the nearest
/// `node_modules` above the working directory, else the repository's.
pub fn find_node_modules() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(NODE_MODULES_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join("dynalite").exists() {
            return Ok(dir);
        }
        bail!("{NODE_MODULES_ENV}={} holds no dynalite", dir.display());
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(cwd) = std::env::current_dir() {
        candidates.extend(cwd.ancestors().map(|dir| dir.join("node_modules")));
    }
    candidates.push(PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../node_modules"
    )));
    candidates
        .into_iter()
        .find(|dir| dir.join("dynalite/package.json").exists())
        .context(
            "dynalite is not installed: run `npm ci` in the repository (or set ORDERFLOW_NODE_MODULES), \
             or pass --dynamodb-endpoint",
        )
}

/// A DynamoDB client for a local endpoint (static test credentials, us-east-1).
pub fn client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    // The consumer's settings (no SDK retries: its write loop retries).
    let config = orderflow_consumer::client_config(aws_sdk_dynamodb::Config::builder())
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new(
            "twin",
            "twin",
            None,
            None,
            "orderflow-twin",
        ))
        .endpoint_url(endpoint)
        .build();
    aws_sdk_dynamodb::Client::from_conf(config)
}

/// Creates the orders table (`docs/design.md` section 3 key schema) unless it exists.
pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return Ok(());
    }
    let key = |name: &str, kind: KeyType| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .expect("complete")
    };
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .expect("complete")
    };
    client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PARTITION_KEY, KeyType::Hash))
        .key_schema(key(SORT_KEY, KeyType::Range))
        .attribute_definitions(attribute(PARTITION_KEY))
        .attribute_definitions(attribute(SORT_KEY))
        .send()
        .await
        .map_err(|e| anyhow::anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string()))
        .with_context(|| format!("creating the DynamoDB table {table}"))?;
    Ok(())
}

/// How often the status may count the items while the consumer is writing.
pub const RECOUNT_INTERVAL: Duration = Duration::from_secs(1);

/// The item count the status shows, without a full `Scan` per status request: a count is reused
/// while the consumer's checkpoints have not moved since it started (then it is exact), and,
/// while the consumer is writing, for [`RECOUNT_INTERVAL`] after it was taken. One count runs at
/// a time; concurrent requests wait for it and share it. So a polling console costs at most
/// one `Scan` a second, and none while the pipeline is idle.
#[derive(Debug, Default)]
pub struct ItemCounter {
    last: tokio::sync::Mutex<Option<Counted>>,
}

#[derive(Debug)]
struct Counted {
    checkpoints: Vec<u64>,
    items: u64,
    at: Instant,
}

impl ItemCounter {
    /// The item count, given the consumer's `checkpoints` read before this call; `count` counts
    /// when the last count cannot be reused.
    pub async fn items<F: Future<Output = Result<u64>>>(
        &self,
        checkpoints: Vec<u64>,
        count: impl FnOnce() -> F,
    ) -> Result<u64> {
        self.items_at(Instant::now(), checkpoints, count).await
    }

    /// [`items`](Self::items) at the time `now`.
    async fn items_at<F: Future<Output = Result<u64>>>(
        &self,
        now: Instant,
        checkpoints: Vec<u64>,
        count: impl FnOnce() -> F,
    ) -> Result<u64> {
        let mut last = self.last.lock().await;
        if let Some(counted) = &*last
            && (counted.checkpoints == checkpoints
                || now.saturating_duration_since(counted.at) < RECOUNT_INTERVAL)
        {
            return Ok(counted.items);
        }
        let items = count().await?;
        *last = Some(Counted {
            checkpoints,
            items,
            at: now,
        });
        Ok(items)
    }
}

/// The number of items in the table (a paginated `Scan` with `Select=COUNT`).
pub async fn count_items(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<u64> {
    let mut count = 0u64;
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .select(Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|e| {
                anyhow::anyhow!(aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string())
            })
            .context("counting the DynamoDB items")?;
        count += page.count() as u64;
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(count),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Issue 11, item 10: the status no longer scans the table per request. An idle consumer
    /// (same checkpoints) reuses the exact count; a moving one recounts at most once per
    /// [`RECOUNT_INTERVAL`]; after it settles, the next status counts again, so the count
    /// catches up with the last write.
    #[tokio::test]
    async fn the_status_counts_items_once_per_checkpoint_move_and_interval() {
        let counter = ItemCounter::default();
        let scans = AtomicU64::new(0);
        let table = AtomicU64::new(10);
        let count = || async {
            scans.fetch_add(1, Ordering::SeqCst);
            Ok(table.load(Ordering::SeqCst))
        };
        let start = Instant::now();
        let at = |seconds: u64| start + RECOUNT_INTERVAL * u32::try_from(seconds).unwrap();
        let items = async |now, checkpoints: [u64; 2]| {
            counter
                .items_at(now, checkpoints.to_vec(), count)
                .await
                .unwrap()
        };
        assert_eq!(items(at(0), [5, 5]).await, 10);
        for _ in 0..100 {
            assert_eq!(items(at(50), [5, 5]).await, 10);
        }
        assert_eq!(scans.load(Ordering::SeqCst), 1, "idle: one scan in all");

        // The consumer writes: within the interval after a count, that count is shown.
        table.store(12, Ordering::SeqCst);
        assert_eq!(
            counter.items_at(at(50), vec![6, 5], count).await.unwrap(),
            12
        );
        assert_eq!(
            scans.load(Ordering::SeqCst),
            2,
            "moved and the last count is old"
        );
        table.store(13, Ordering::SeqCst);
        assert_eq!(items(at(50), [7, 5]).await, 12);
        assert_eq!(
            scans.load(Ordering::SeqCst),
            2,
            "moved, but counted within the interval"
        );

        // It settles: the first status after the interval counts again, and that count is then
        // reused for as long as nothing moves.
        assert_eq!(items(at(51), [8, 5]).await, 13);
        assert_eq!(items(at(90), [8, 5]).await, 13);
        assert_eq!(scans.load(Ordering::SeqCst), 3);
    }
}
