//! Starting and stopping the whole twin: stream, API, DynamoDB, the consumer's event source
//! mapping, the four delivery streams and retention.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::Json;
use axum::extract::State;
use axum::routing::get;
use orderflow_api::ApiConfig;
use orderflow_domain::Table;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::consumer::{ConsumerFunction, MappingStats, ShardMapping};
use crate::delivery::{Delivery, Transformer, delivery_stream_name, reader_name};
use crate::dynamodb::{self, SupervisedDynalite};
use crate::health::Health;
use crate::ingestion_api;
use crate::limits::{Clock, ReadLimits, ReadThrottle, WriteLimits};
use crate::settings::PipelineSettings;
use crate::status::{self, BucketTally, Status};
use crate::storage::Bucket;
use crate::stream::Stream;

/// The environment name of the twin's resources (`orderflow-local-…`).
pub const ENVIRONMENT: &str = "local";
/// The admin route with the status.
pub const STATUS_ROUTE: &str = "/_twin/status";
/// The web console's address for a twin at `api` with `api_key` (the key in the fragment, which
/// browsers never send to a server).
pub fn console_url(api: &str, api_key: &str) -> String {
    format!("{api}/#key={api_key}")
}

/// The route a `POST` to which redrives every failure ([`crate::redrive`]); it needs the API key.
pub const REDRIVE_ROUTE: &str = "/_twin/redrive";

/// How to start the twin.
#[derive(Debug, Clone)]
pub struct TwinOptions {
    /// The data folder.
    pub data_dir: PathBuf,
    /// Pipeline settings.
    pub settings: PipelineSettings,
    /// API port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// The API key; by default one generated once and kept in the data folder.
    pub api_key: Option<String>,
    /// Use this DynamoDB endpoint instead of starting dynalite.
    pub dynamodb_endpoint: Option<String>,
    /// Overrides the settings' Firehose buffering interval.
    pub buffering_interval: Option<Duration>,
    /// Emulate Kinesis' per-shard throughput limits (writes throttled, readers waiting;
    /// [`crate::limits`]) on this clock: [`SystemClock`](crate::limits::SystemClock) normally,
    /// a test's own clock in tests. `None` (`--no-limits`) for benchmarks of the twin itself.
    pub limits: Option<Arc<dyn Clock>>,
}

/// Where a running twin can be reached (`DATA/twin.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoints {
    /// Process id.
    pub pid: u32,
    /// API base URL.
    pub api: String,
    /// DynamoDB endpoint.
    pub dynamodb: String,
    /// DynamoDB table.
    pub table: String,
    /// Kinesis stream name (every API route writes to it; the legacy route ignores the `StreamName` it is sent).
    pub stream: String,
}

/// The file a running twin describes itself in.
pub fn endpoints_file(data_dir: &Path) -> PathBuf {
    data_dir.join("twin.json")
}

/// The twin's Kinesis stream name.
pub fn stream_name() -> String {
    format!("{}-orders", resource_prefix())
}

/// Opens the data folder's stream (one process at a time: a running twin holds it).
pub fn open_stream(data_dir: &Path, settings: &PipelineSettings) -> Result<Stream> {
    Stream::open(
        &data_dir.join("stream.redb"),
        &stream_name(),
        settings.stream.shard_count,
    )
    .map_err(|error| match error {
        crate::stream::StreamError::Storage(redb::Error::DatabaseAlreadyOpen) => anyhow::anyhow!(
            "another twin is running on {} (stop it, or use --data-dir)",
            data_dir.display()
        ),
        other => anyhow::Error::from(other).context(format!(
            "opening the twin's stream in {}",
            data_dir.display()
        )),
    })
}

/// The names of the twin's resources, as OpenTofu names them in environment `local`.
pub fn resource_prefix() -> String {
    format!("orderflow-{ENVIRONMENT}")
}

struct Shared {
    stream: Stream,
    bucket: Bucket,
    /// Told of every object the twin writes; filled with the older ones on the first status.
    tally: Arc<BucketTally>,
    scanned: tokio::sync::OnceCell<()>,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    items: dynamodb::ItemCounter,
    health: Health,
    /// The consumer function and the delivery streams, for redrives.
    consumer: Arc<ConsumerFunction>,
    deliveries: Vec<Delivery>,
    api_key: String,
    /// One redrive at a time.
    redriving: tokio::sync::Mutex<()>,
}

impl Shared {
    async fn status(&self) -> Result<Status> {
        self.scanned
            .get_or_try_init(|| self.tally.scan(&self.bucket))
            .await?;
        // Items are counted after the checkpoints are read, so that a status showing the consumer
        // caught up also counts every item it wrote (counting first could miss the last batch).
        let checkpoints = (0..self.stream.shard_count())
            .map(|shard| self.stream.checkpoint(crate::consumer::READER, shard))
            .collect::<Result<Vec<_>, _>>()?;
        let mut status = status::from_counters(&self.stream, &self.tally, None)?;
        match self
            .items
            .items(checkpoints, || {
                dynamodb::count_items(&self.dynamodb, &self.table)
            })
            .await
        {
            Ok(items) => status.dynamodb_items = Some(items),
            Err(error) => status.dynamodb_error = Some(format!("{error:#}")),
        }
        status.running = true;
        status.components = self.health.snapshot();
        Ok(status)
    }
}

/// A running twin.
pub struct Twin {
    /// Endpoints, as written to `twin.json`.
    pub endpoints: Endpoints,
    /// The API key.
    pub api_key: String,
    /// The settings in force.
    pub settings: PipelineSettings,
    /// Consumer mapping counters.
    pub mapping_stats: Arc<MappingStats>,
    shared: Arc<Shared>,
    data_dir: PathBuf,
    shutdown: CancellationToken,
    api_shutdown: CancellationToken,
    api: JoinHandle<()>,
    workers: Vec<JoinHandle<()>>,
    flush: watch::Sender<u64>,
    dynalite: Option<SupervisedDynalite>,
}

impl Twin {
    /// Starts everything; returns once the API is listening.
    pub async fn start(options: TwinOptions) -> Result<Twin> {
        let data_dir = options.data_dir.clone();
        crate::data_folder::open(&data_dir)?;
        let settings = options.settings.clone();
        let prefix = resource_prefix();
        let lambdas = crate::settings::LambdaNames::built_in();
        let stream_name = stream_name();
        let table = format!("{prefix}-orders");
        let stream = open_stream(&data_dir, &settings)?;
        let tally = Arc::new(BucketTally::new(&settings.delivery.file_extension));
        let bucket = Bucket::local(&data_dir.join("bucket"))?.observed(tally.clone());
        let api_key = match options.api_key {
            Some(key) => key,
            None => api_key(&data_dir)?,
        };
        let health = Health::default();
        let (dynalite, dynamodb_endpoint) = match options.dynamodb_endpoint {
            Some(endpoint) => (None, endpoint),
            None => {
                let dynalite =
                    SupervisedDynalite::start(&data_dir.join("dynamodb"), health.clone()).await?;
                let endpoint = dynalite.endpoint.clone();
                (Some(dynalite), endpoint)
            }
        };
        let client = dynamodb::client(&dynamodb_endpoint);
        dynamodb::ensure_table(&client, &table).await?;

        let consumer_name = format!("{prefix}-{}", lambdas.consumer);
        // Kinesis' throughput limits: the stream refuses writes over them, each reader asks its
        // throttle before reading. The consumer reads through an enhanced fan-out consumer when
        // the settings say so (its own throughput), otherwise it shares with the delivery streams.
        let (consumer_reads, delivery_reads) = if let Some(clock) = options.limits {
            stream.limit_writes(WriteLimits::new(stream.shard_count(), clock.clone()));
            let reads = ReadLimits::new(stream.shard_count(), clock);
            let consumer = if settings.consumer.enhanced_fan_out {
                ReadThrottle::enhanced_fan_out(&reads, &consumer_name)
            } else {
                ReadThrottle::shared(&reads)
            };
            (consumer, ReadThrottle::shared(&reads))
        } else {
            (ReadThrottle::unlimited(), ReadThrottle::unlimited())
        };

        let shutdown = CancellationToken::new();
        let mut workers = Vec::new();
        let mapping_stats = Arc::new(MappingStats::default());
        let function = Arc::new(ConsumerFunction {
            client: client.clone(),
            table: table.clone(),
            policy: orderflow_consumer::WritePolicy::default(),
            timeout: Duration::from_secs(settings.consumer.timeout_seconds),
        });
        for shard in 0..stream.shard_count() {
            let mapping = ShardMapping {
                stream: stream.clone(),
                shard,
                settings: settings.consumer.clone(),
                function: function.clone(),
                function_name: consumer_name.clone(),
                bucket: bucket.clone(),
                stats: mapping_stats.clone(),
                reads: consumer_reads.clone(),
            };
            let name = format!("consumer mapping, {}", crate::stream::shard_id(shard));
            let stop = shutdown.clone();
            workers.push(tokio::spawn(supervise(
                name,
                health.clone(),
                shutdown.clone(),
                move || mapping.clone().run(stop.clone()),
            )));
        }
        // The delivery streams exist before the API takes anything: each starts at the stream's
        // tip when first created (Firehose reads a Kinesis source from `LATEST`), so on a fresh
        // data folder every acknowledged order reaches Parquet.
        for table in Table::ALL {
            let (stream, reader) = (stream.clone(), reader_name(table));
            tokio::task::spawn_blocking(move || stream.resume_or_start_at_tips(&reader))
                .await?
                .with_context(|| format!("creating the {} delivery stream", table.name()))?;
        }
        let (flush, flush_requests) = watch::channel(0u64);
        let buffering_interval = options
            .buffering_interval
            .unwrap_or_else(|| settings.buffering_interval());
        let mut deliveries = Vec::new();
        for table in Table::ALL {
            let delivery = Delivery {
                table,
                name: delivery_stream_name(&prefix, table),
                database: format!(
                    "{}{ENVIRONMENT}",
                    orderflow_domain::table_file().database_prefix
                ),
                stream: stream.clone(),
                bucket: bucket.clone(),
                transformer: format!("{prefix}-{}", lambdas.transformer(table)),
                transform: Transformer::lambda(table),
                settings: settings.delivery.clone(),
                buffering_interval,
                reads: delivery_reads.clone(),
            };
            deliveries.push(delivery.clone());
            let (stop, flush) = (shutdown.clone(), flush_requests.clone());
            workers.push(tokio::spawn(supervise(
                delivery.name.clone(),
                health.clone(),
                shutdown.clone(),
                move || delivery.clone().run(stop.clone(), flush.clone()),
            )));
        }
        let (trimmed, period, stop) = (
            stream.clone(),
            Duration::from_secs(u64::from(settings.stream.retention_hours) * 3600),
            shutdown.clone(),
        );
        workers.push(tokio::spawn(supervise(
            "retention".to_owned(),
            health.clone(),
            shutdown.clone(),
            move || retention(trimmed.clone(), period, stop.clone()),
        )));

        let shared = Arc::new(Shared {
            stream: stream.clone(),
            bucket,
            tally,
            scanned: tokio::sync::OnceCell::new(),
            dynamodb: client,
            table: table.clone(),
            items: dynamodb::ItemCounter::default(),
            health: health.clone(),
            consumer: function.clone(),
            deliveries,
            api_key: api_key.clone(),
            redriving: tokio::sync::Mutex::new(()),
        });
        let router = ingestion_api::router(
            ApiConfig {
                api_key: api_key.clone(),
                stream_name: stream_name.clone(),
                max_batch_orders: settings.api.max_batch_orders,
            },
            stream,
        )
        .merge(
            axum::Router::new()
                .route(STATUS_ROUTE, get(status_route))
                .route(REDRIVE_ROUTE, axum::routing::post(redrive_route))
                .with_state(shared.clone()),
        )
        .merge(crate::console::router(Arc::new(
            crate::console::ConsoleState {
                api_key: api_key.clone(),
                bucket: shared.bucket.clone(),
                settings: settings.clone(),
                dynamodb: shared.dynamodb.clone(),
                table: table.clone(),
            },
        )));
        let (address, api_shutdown, api) =
            ingestion_api::serve(router, options.port, health.clone()).await?;
        let endpoints = Endpoints {
            pid: std::process::id(),
            api: format!("http://{address}"),
            dynamodb: dynamodb_endpoint,
            table,
            stream: stream_name,
        };
        std::fs::write(
            endpoints_file(&data_dir),
            serde_json::to_vec_pretty(&endpoints)?,
        )?;
        Ok(Twin {
            endpoints,
            api_key,
            settings,
            mapping_stats,
            shared,
            data_dir,
            shutdown,
            api_shutdown,
            api,
            workers,
            flush,
            dynalite,
        })
    }

    /// The stream.
    pub fn stream(&self) -> &Stream {
        &self.shared.stream
    }

    /// The bucket.
    pub fn bucket(&self) -> &Bucket {
        &self.shared.bucket
    }

    /// A DynamoDB client for the twin's table endpoint.
    pub fn dynamodb(&self) -> &aws_sdk_dynamodb::Client {
        &self.shared.dynamodb
    }

    /// Redrives every failure: the failure store through the consumer, each table's error
    /// output through its transformer ([`crate::redrive`]).
    pub async fn redrive(&self) -> Result<crate::redrive::RedriveReport> {
        let shared = &self.shared;
        let _one_at_a_time = shared.redriving.lock().await;
        crate::redrive::redrive_all(&shared.bucket, &*shared.consumer, &shared.deliveries).await
    }

    /// What each component is doing (up, restarting, down).
    pub fn health(&self) -> &Health {
        &self.shared.health
    }

    /// The current status.
    pub async fn status(&self) -> Result<Status> {
        self.shared.status().await
    }

    /// A producer run against this twin's API: `orders` of `workload`, as fast as the twin takes
    /// them, on the `/v1` routes.
    pub fn producer_config(
        &self,
        workload: orderflow_producer::WorkloadConfig,
        orders: u64,
        batch_size: usize,
        concurrency: usize,
    ) -> orderflow_producer::RunConfig {
        orderflow_producer::RunConfig {
            endpoint: self.endpoints.api.clone(),
            api_key: self.api_key.clone(),
            stop: orderflow_producer::Stop::Count(orders),
            rate: None,
            concurrency,
            batch_size: batch_size.clamp(1, self.settings.api.max_batch_orders),
            route: orderflow_producer::Route::V1,
            workload,
            request_timeout: Duration::from_secs(30),
            retry: orderflow_producer::RetryPolicy::default(),
        }
    }

    /// Asks every delivery stream to deliver what it holds now instead of at its interval.
    pub fn flush_deliveries(&self) {
        self.flush.send_modify(|generation| *generation += 1);
    }

    /// Per shard, each reader's lag (records written but not yet processed).
    pub fn reader_lags(&self) -> Result<Vec<std::collections::BTreeMap<String, u64>>> {
        status::reader_lags(self.stream())
    }

    /// Waits until the readers named by `done` have processed every record written so far.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        done: impl Fn(&std::collections::BTreeMap<String, u64>) -> bool,
    ) -> Result<()> {
        let started = tokio::time::Instant::now();
        loop {
            if self.reader_lags()?.iter().all(&done) {
                return Ok(());
            }
            anyhow::ensure!(
                started.elapsed() < timeout,
                "the pipeline did not catch up within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops gracefully: the API stops taking requests, the consumer finishes its invocation,
    /// the delivery streams deliver what they hold, checkpoints are saved, dynalite stops.
    pub async fn shutdown(self) -> Result<()> {
        self.api_shutdown.cancel();
        let _ = self.api.await;
        self.shutdown.cancel();
        for worker in self.workers {
            let _ = worker.await;
        }
        self.shared.stream.close();
        if let Some(dynalite) = self.dynalite {
            dynalite.stop().await;
        }
        let _ = std::fs::remove_file(endpoints_file(&self.data_dir));
        Ok(())
    }
}

/// `POST /_twin/redrive` (with `x-api-key`): redrives every failure, answers the report.
async fn redrive_route(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    if key != Some(shared.api_key.as_str()) {
        return (
            axum::http::StatusCode::FORBIDDEN,
            "x-api-key is missing or wrong",
        )
            .into_response();
    }
    let _one_at_a_time = shared.redriving.lock().await;
    match crate::redrive::redrive_all(&shared.bucket, &*shared.consumer, &shared.deliveries).await {
        Ok(report) => Json(report).into_response(),
        Err(error) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{error:#}"),
        )
            .into_response(),
    }
}

async fn status_route(State(shared): State<Arc<Shared>>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match shared.status().await {
        Ok(status) => Json(status).into_response(),
        Err(error) => (
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            format!("{error:#}"),
        )
            .into_response(),
    }
}

/// How long a supervised task that panicked waits before it starts again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// Runs the task `start` makes until it returns (at shutdown). A panic is logged once with the
/// task's name, shown in [`Health`] as `restarting` with the panic's message, and the task
/// starts again after [`RESTART_DELAY`] from its saved checkpoints (records read but not yet
/// checkpointed are read again: at-least-once, as after a crash), so a panic in one table's
/// delivery or one shard's mapping never silently stops it.
async fn supervise<S, T>(name: String, health: Health, shutdown: CancellationToken, start: S)
where
    S: Fn() -> T,
    T: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        health.up(&name);
        match tokio::spawn(start()).await {
            Ok(()) => break,
            Err(error) if error.is_panic() => {
                let panic = error.into_panic();
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|text| (*text).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(task = %name, panic = %message, "task panicked; starting it again");
                health.restarting(&name, &format!("panicked: {message}"));
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(RESTART_DELAY) => {}
                }
            }
            Err(error) => {
                health.down(&name, Some(&error.to_string()));
                return;
            }
        }
    }
    health.down(&name, None);
}

/// Trims records older than the retention period, every minute (on a blocking thread: redb's
/// calls block, and the async workers serve the API).
async fn retention(stream: Stream, period: Duration, shutdown: CancellationToken) {
    loop {
        let cutoff = chrono::Utc::now().timestamp_millis() as u64;
        let cutoff = cutoff.saturating_sub(period.as_millis() as u64);
        let trimming = stream.clone();
        match tokio::task::spawn_blocking(move || trimming.trim(cutoff)).await {
            Ok(Ok(trimmed)) if trimmed.removed == 0 => {}
            Ok(Ok(trimmed)) => tracing::info!(
                removed = trimmed.removed,
                examined = trimmed.examined,
                "trimmed records past the retention period"
            ),
            Ok(Err(error)) => tracing::error!(error = %error, "trimming the stream failed"),
            Err(error) => tracing::error!(error = %error, "the trimming task failed"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(60)) => {}
        }
    }
}

/// The data folder's API key, generated on first use.
fn api_key(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("api-key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        let key = key.trim().to_owned();
        if !key.is_empty() {
            return Ok(key);
        }
    }
    let key = format!("local-{}", uuid::Uuid::new_v4().simple());
    std::fs::write(&path, &key)?;
    Ok(key)
}

#[cfg(test)]
mod supervision_tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    /// A task that panics is started again (after the delay) until it returns normally.
    #[tokio::test]
    async fn a_panicking_task_is_started_again() {
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        let health = Health::default();
        supervise(
            "test".to_owned(),
            health.clone(),
            CancellationToken::new(),
            move || {
                let starts = counted.clone();
                async move {
                    if starts.fetch_add(1, Ordering::SeqCst) < 2 {
                        panic!("boom");
                    }
                }
            },
        )
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 3);
        // Two restarts counted, the panic kept, and down once it returned (at shutdown).
        let component = health.get("test").unwrap();
        assert_eq!(component.restarts, 2);
        assert_eq!(component.last_error.as_deref(), Some("panicked: boom"));
        assert_eq!(component.state, crate::health::State::Down);
    }

    /// Shutdown during the restart delay ends the supervisor instead of restarting.
    #[tokio::test]
    async fn shutdown_ends_a_restart_wait() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let starts = Arc::new(AtomicU32::new(0));
        let counted = starts.clone();
        supervise("test".to_owned(), Health::default(), shutdown, move || {
            let starts = counted.clone();
            async move {
                starts.fetch_add(1, Ordering::SeqCst);
                panic!("always");
            }
        })
        .await;
        assert_eq!(starts.load(Ordering::SeqCst), 1);
    }
}

#[cfg(test)]
mod start_tests {
    use super::*;

    /// Issue 11, item 6: Firehose reads a Kinesis source from `LATEST`, so a delivery stream
    /// created after the API took orders would never deliver them. On a fresh data folder the
    /// twin creates every delivery stream (saves its start) before the API listens. Needs
    /// dynalite (`npm ci`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_delivery_streams_exist_before_the_api_listens() {
        let dir = tempfile::tempdir().unwrap();
        let twin = Twin::start(TwinOptions {
            data_dir: dir.path().join("data"),
            settings: PipelineSettings::built_in(),
            port: 0,
            api_key: Some("test-key".into()),
            dynamodb_endpoint: None,
            buffering_interval: None,
            limits: None,
        })
        .await
        .unwrap();
        for table in Table::ALL {
            for shard in 0..twin.stream().shard_count() {
                assert_eq!(
                    twin.stream()
                        .saved_checkpoint(&reader_name(table), shard)
                        .unwrap(),
                    Some(0),
                    "{table}, shard {shard}"
                );
            }
        }
        twin.shutdown().await.unwrap();
    }
}
