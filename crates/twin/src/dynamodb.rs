//! DynamoDB for the twin: a dynalite server persisted under the data folder (started and stopped
//! by the twin), or any endpoint the user names (DynamoDB Local, a real table).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

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
