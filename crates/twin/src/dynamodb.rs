//! DynamoDB for the twin: a dynalite server persisted under the data folder (started and stopped
//! by the twin), or any endpoint the user names (DynamoDB Local, a real table).

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType, Select,
    TableStatus,
};
use orderflow_domain::{PARTITION_KEY, SORT_KEY};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::health::{DYNAMODB, Health};

/// The environment variable naming a `node_modules` folder that holds dynalite.
pub const NODE_MODULES_ENV: &str = "ORDERFLOW_NODE_MODULES";

/// Starts dynalite on the loopback port given (0: a free one), its LevelDB files under `path`
/// (empty: in memory), prints `{"port": N}` when
/// listening, and exits when its parent (the twin) is gone, even after `kill -9`.
const LAUNCHER: &str = r#"
const [modules, path, port] = process.argv.slice(1);
const dynalite = require(require('path').join(modules, 'dynalite'));
const server = dynalite({ path: path || undefined, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
server.on('error', (error) => { process.stderr.write(String(error) + '\n'); process.exit(1); });
server.listen(Number(port), '127.0.0.1', () => {
  process.stdout.write(JSON.stringify({ port: server.address().port }) + '\n');
});
const parent = process.ppid;
setInterval(() => { if (process.ppid !== parent) process.exit(0); }, 250);
// The twin stops its writers before dynalite, and LevelDB has handed every write to the OS:
// exit at once instead of waiting for idle keep-alive connections to close.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => {});
"#;

/// Lines of dynalite's standard error kept for the message when it dies.
const STDERR_TAIL_LINES: usize = 5;

/// A running dynalite.
pub struct Dynalite {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Dynalite {
    /// Starts dynalite with its LevelDB files under `path`, on a free port.
    pub async fn start(path: &Path) -> Result<Self> {
        let modules = find_node_modules()?;
        std::fs::create_dir_all(path)?;
        // A twin killed with -9 leaves a dynalite that exits within 250 ms; the LevelDB lock may
        // be held until then.
        let mut last_error = None;
        for _ in 0..20 {
            match Self::try_start(&modules, Some(path), 0).await {
                Ok(dynalite) => return Ok(dynalite),
                Err(error) => {
                    last_error = Some(error);
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        }
        Err(last_error.expect("tried"))
    }

    /// Starts dynalite in memory (nothing on disk, gone when it stops), on a free port: for tests,
    /// benchmarks and the smoke test.
    pub async fn in_memory() -> Result<Self> {
        Self::try_start(&find_node_modules()?, None, 0).await
    }

    async fn try_start(modules: &Path, path: Option<&Path>, port: u16) -> Result<Self> {
        let mut child = Command::new("node")
            .arg("-e")
            .arg(LAUNCHER)
            .arg(modules)
            .arg(path.map_or_else(Default::default, Path::as_os_str))
            .arg(port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("starting dynalite with `node` (is Node.js 20+ installed?)")?;
        // Standard error is read all along (a full pipe would block dynalite); its last lines
        // say why it died.
        let stderr = Arc::new(Mutex::new(VecDeque::new()));
        let reader = {
            let (pipe, tail) = (child.stderr.take().expect("piped"), stderr.clone());
            tokio::spawn(async move {
                let mut lines = BufReader::new(pipe).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let mut tail = tail.lock().expect("not poisoned");
                    if tail.len() == STDERR_TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            })
        };
        let stdout = child.stdout.take().expect("piped");
        let mut lines = BufReader::new(stdout).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line()).await;
        let port = match line {
            Ok(Ok(Some(line))) => serde_json::from_str::<serde_json::Value>(&line)
                .ok()
                .and_then(|v| v["port"].as_u64())
                .and_then(|port| u16::try_from(port).ok()),
            _ => None,
        };
        let Some(port) = port else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            let _ = reader.await;
            bail!("dynalite did not start: {}", tail_text(&stderr));
        };
        Ok(Dynalite {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            stderr,
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

fn tail_text(stderr: &Mutex<VecDeque<String>>) -> String {
    let tail = stderr.lock().expect("not poisoned");
    tail.iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" | ")
}

/// How soon a dead dynalite is started again, and between failed starts.
const RESTART_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause before a restart: one that dies again within [`STABLE_AFTER`] of its
/// restart (a full disk, say) waits twice as long each time, up to this.
const MAX_RESTART_PAUSE: Duration = Duration::from_secs(5);
/// How long a restarted dynalite must live for the pause to start again from
/// [`RESTART_PAUSE`].
const STABLE_AFTER: Duration = Duration::from_secs(10);

/// dynalite under a supervisor: if it dies, the error is logged once with its cause (exit status
/// and its last words on standard error), the `dynamodb` component shows `restarting` in
/// [`Health`], and it is started again on the same data folder and the same port (so every
/// client keeps its endpoint), within a few hundred milliseconds; then `up`, one restart
/// counted. Writes in flight meanwhile fail with a refused connection, which the consumer hands
/// back to be retried ([`orderflow_consumer::WritePolicy::unreachable_rounds`]).
pub struct SupervisedDynalite {
    /// `http://127.0.0.1:PORT`, the same across restarts.
    pub endpoint: String,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl SupervisedDynalite {
    /// Starts dynalite on `path` and watches it.
    pub async fn start(path: &Path, health: Health) -> Result<Self> {
        let modules = find_node_modules()?;
        let dynalite = Dynalite::start(path).await?;
        let endpoint = dynalite.endpoint.clone();
        health.up(DYNAMODB);
        let stop = CancellationToken::new();
        let task = tokio::spawn(watch(
            dynalite,
            modules,
            path.to_owned(),
            health,
            stop.clone(),
        ));
        Ok(SupervisedDynalite {
            endpoint,
            stop,
            task,
        })
    }

    /// Stops dynalite (and its supervisor) and waits for it to exit.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn watch(
    mut dynalite: Dynalite,
    modules: PathBuf,
    path: PathBuf,
    health: Health,
    stop: CancellationToken,
) {
    let mut pause = RESTART_PAUSE;
    // When the last restart happened, if one did.
    let mut restarted: Option<Instant> = None;
    loop {
        let exit = tokio::select! {
            () = stop.cancelled() => None,
            exit = dynalite.child.wait() => Some(exit),
        };
        let Some(exit) = exit else {
            dynalite.stop().await;
            health.down(DYNAMODB, None);
            return;
        };
        let status = exit.map_or_else(|error| error.to_string(), |status| status.to_string());
        let last_words = tail_text(&dynalite.stderr);
        let cause = if last_words.is_empty() {
            format!("dynalite exited ({status})")
        } else {
            format!("dynalite exited ({status}): {last_words}")
        };
        pause = if restarted.is_some_and(|at| at.elapsed() < STABLE_AFTER) {
            (pause * 2).min(MAX_RESTART_PAUSE)
        } else {
            RESTART_PAUSE
        };
        tracing::error!(cause = %cause, port = dynalite.port, pause_ms = pause.as_millis() as u64, "DynamoDB (dynalite) died; starting it again on the same data folder and port");
        health.restarting(DYNAMODB, &cause);
        let died = Instant::now();
        let port = dynalite.port;
        dynalite = loop {
            let started = tokio::select! {
                () = stop.cancelled() => None,
                () = tokio::time::sleep(pause) => Some(Dynalite::try_start(&modules, Some(&path), port).await),
            };
            match started {
                None => {
                    health.down(DYNAMODB, Some(&cause));
                    return;
                }
                Some(Ok(dynalite)) => break dynalite,
                Some(Err(error)) => {
                    health.restarting(DYNAMODB, &format!("{cause}; starting it again: {error:#}"));
                }
            }
        };
        tracing::info!(
            after_ms = died.elapsed().as_millis() as u64,
            "DynamoDB (dynalite) is up again"
        );
        health.up(DYNAMODB);
        restarted = Some(Instant::now());
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

/// How long [`ensure_table`] waits for a new table to become `ACTIVE`.
const TABLE_ACTIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Creates the orders table (`docs/design.md` section 3 key schema) unless it exists, and returns
/// once it is `ACTIVE`. dynalite, like DynamoDB, answers `CreateTable` while the table is still
/// `CREATING` and refuses items for it until then (`ResourceNotFoundException`), which the
/// consumer would report as failed records.
pub async fn ensure_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
    if table_status(client, table).await.is_none() {
        create_table(client, table).await?;
    }
    let deadline = Instant::now() + TABLE_ACTIVE_TIMEOUT;
    loop {
        match table_status(client, table).await {
            Some(TableStatus::Active) => return Ok(()),
            status if Instant::now() >= deadline => bail!(
                "the DynamoDB table {table} is not ACTIVE {TABLE_ACTIVE_TIMEOUT:?} after it was \
                 created (status: {status:?})"
            ),
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

/// The table's status, or `None` when it cannot be described (missing, or DynamoDB unreachable).
async fn table_status(client: &aws_sdk_dynamodb::Client, table: &str) -> Option<TableStatus> {
    client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .ok()?
        .table?
        .table_status
}

/// `CreateTable` for the orders table.
async fn create_table(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<()> {
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
