//! `orderflow`: the local twin of the orderflow pipeline.
//!
//! - `orderflow up`: runs the twin until Ctrl-C; prints its endpoints and API key.
//! - `orderflow demo`: starts the twin, sends orders through the producer, waits until every
//!   accepted order is in DynamoDB and in Parquet, runs `sql/queries/`, prints the results.
//! - `orderflow query FILE.sql | --sql "..."`: SQL over the twin's Parquet tables.
//! - `orderflow status`: where every record is.
//! - `orderflow dynamodb`: only DynamoDB's stand-in (dynalite, in memory), for tests, benchmarks
//!   and the Lambda smoke test.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use orderflow_twin::demo::{self, DemoOptions};
use orderflow_twin::limits::{Clock, SystemClock};
use orderflow_twin::settings::PipelineSettings;
use orderflow_twin::status::Status;
use orderflow_twin::twin::{
    Endpoints, REDRIVE_ROUTE, STATUS_ROUTE, Twin, TwinOptions, endpoints_file,
};
use orderflow_twin::{analytics, status};

/// mimalloc: the handlers allocate many small strings and maps per record (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "orderflow",
    version,
    about = "The orderflow pipeline on one machine, offline."
)]
struct Cli {
    /// The data folder (stream, checkpoints, DynamoDB files, the bucket).
    #[arg(
        long,
        global = true,
        default_value = ".orderflow",
        env = "ORDERFLOW_DATA_DIR"
    )]
    data_dir: PathBuf,
    /// Pipeline settings shared with OpenTofu (default: tofu/pipeline.json as built in).
    #[arg(long, global = true, env = "ORDERFLOW_SETTINGS")]
    settings: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Args)]
struct StartArgs {
    /// Use this DynamoDB endpoint instead of starting dynalite.
    #[arg(long, env = "ORDERFLOW_DYNAMODB_ENDPOINT")]
    dynamodb_endpoint: Option<String>,
    /// The API key (default: generated once, kept in the data folder).
    #[arg(long, env = "ORDERFLOW_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Deliver Firehose buffers after this many seconds instead of the settings' interval.
    #[arg(long)]
    buffering_interval_seconds: Option<u64>,
    /// Do not emulate Kinesis' per-shard throughput limits (1,000 records and 1 MiB written,
    /// five reads and 2 MiB read per second): for benchmarks of the twin itself.
    #[arg(long)]
    no_limits: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the twin and keep it running until Ctrl-C.
    Up {
        /// API port on 127.0.0.1 (0: any free port).
        #[arg(long, default_value_t = 4566)]
        port: u16,
        #[command(flatten)]
        start: StartArgs,
    },
    /// Start the twin, send orders, wait until they are in DynamoDB and Parquet, run the queries.
    Demo {
        /// Orders to send.
        #[arg(long, default_value_t = 10_000)]
        orders: u64,
        /// Orders per request.
        #[arg(long, default_value_t = 100)]
        batch_size: usize,
        /// Requests in flight.
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// Workload seed (default: random, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// The queries to run (default: sql/queries, or the built-in copies).
        #[arg(long, default_value = "sql/queries")]
        queries: PathBuf,
        /// Seconds to wait for the pipeline to catch up.
        #[arg(long, default_value_t = 300)]
        timeout_seconds: u64,
        #[command(flatten)]
        start: StartArgs,
    },
    /// Run SQL over the twin's Parquet tables.
    Query {
        /// A file with one SQL statement.
        #[arg(conflicts_with = "sql", required_unless_present = "sql")]
        file: Option<PathBuf>,
        /// The SQL statement.
        #[arg(long)]
        sql: Option<String>,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Where every record is: shards and lags, DynamoDB items, files, errors, failures.
    Status {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run only DynamoDB's stand-in: dynalite in memory (nothing is kept), until Ctrl-C or until
    /// standard input closes. Prints `{"endpoint": "http://127.0.0.1:PORT"}` once it listens.
    Dynamodb,
    /// Send failed records through the pipeline again (the running twin's failure store through
    /// the consumer, each table's Firehose error output through its transformer); exits 1 if
    /// some still fail.
    Redrive {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Table,
    Json,
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("orderflow: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode> {
    let settings = match &cli.settings {
        Some(path) => PipelineSettings::read(path)?,
        None => PipelineSettings::built_in(),
    };
    match cli.command {
        Command::Up { port, start } => up(&cli.data_dir, settings, port, start).await,
        Command::Demo {
            orders,
            batch_size,
            concurrency,
            seed,
            queries,
            timeout_seconds,
            start,
        } => {
            let demo = DemoOptions {
                orders,
                batch_size,
                concurrency,
                seed: seed.unwrap_or_else(rand::random),
                queries,
                timeout: Duration::from_secs(timeout_seconds),
            };
            run_demo(&cli.data_dir, settings, start, demo).await
        }
        Command::Query { file, sql, format } => {
            let text = match (file, sql) {
                (Some(file), _) => std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?,
                (None, Some(sql)) => sql,
                (None, None) => bail!("give a SQL file or --sql"),
            };
            orderflow_twin::data_folder::check(&cli.data_dir)?;
            let context = analytics::session(
                &cli.data_dir.join("bucket"),
                &settings.delivery.file_extension,
                settings.athena.partition_projection_years,
            )
            .await?;
            let result = analytics::run(&context, &text).await?;
            match format {
                Format::Table => println!("{}", result.to_table()?),
                Format::Json => println!("{}", serde_json::to_string_pretty(&result.to_json()?)?),
                Format::Csv => print!("{}", result.to_csv()?),
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Dynamodb => dynamodb_only().await,
        Command::Redrive { json } => {
            let report = redrive(&cli.data_dir).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", report.to_text());
            }
            Ok(if report.kept.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Status { json } => {
            let status = current_status(&cli.data_dir, &settings).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print!("{}", status.to_text());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `orderflow dynamodb`: dynalite in memory until Ctrl-C or the end of standard input (a parent
/// that holds the pipe stops it by closing it).
async fn dynamodb_only() -> Result<ExitCode> {
    let dynalite = orderflow_twin::dynamodb::Dynalite::in_memory().await?;
    println!("{}", serde_json::json!({ "endpoint": dynalite.endpoint }));
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: a blocking read of standard input must not hold up the runtime's exit.
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        let _ = closed.send(());
    });
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = stdin_closed => {}
    }
    dynalite.stop().await;
    Ok(ExitCode::SUCCESS)
}

fn options(
    data_dir: &Path,
    settings: PipelineSettings,
    port: u16,
    start: StartArgs,
) -> TwinOptions {
    TwinOptions {
        data_dir: data_dir.to_owned(),
        settings,
        port,
        api_key: start.api_key,
        dynamodb_endpoint: start.dynamodb_endpoint,
        buffering_interval: start.buffering_interval_seconds.map(Duration::from_secs),
        limits: (!start.no_limits).then(|| Arc::new(SystemClock::new()) as Arc<dyn Clock>),
    }
}

async fn up(
    data_dir: &Path,
    settings: PipelineSettings,
    port: u16,
    start: StartArgs,
) -> Result<ExitCode> {
    let twin = Twin::start(options(data_dir, settings, port, start)).await?;
    let e = &twin.endpoints;
    println!("orderflow twin is up (data in {})", data_dir.display());
    println!(
        "  API        {}  (POST /v1/orders, /v1/orders/batch, /orders)",
        e.api
    );
    println!("  API key    {}", twin.api_key);
    println!("  stream     {}", e.stream);
    println!("  DynamoDB   {}  table {}", e.dynamodb, e.table);
    println!("  bucket     {}", twin.bucket().root().display());
    println!("  status     {}{STATUS_ROUTE}", e.api);
    println!(
        "  console    {}  (open it in a browser; the key after # stays in the browser)",
        orderflow_twin::twin::console_url(&e.api, &twin.api_key)
    );
    println!(
        "Send orders: cargo run -p orderflow-producer -- --endpoint {} --api-key {} --count 1000",
        e.api, twin.api_key
    );
    println!("Ctrl-C stops it (buffers are delivered and checkpoints saved first).");
    wait_for_signal().await;
    println!("stopping: delivering buffers, saving checkpoints ...");
    twin.shutdown().await?;
    println!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}

async fn run_demo(
    data_dir: &Path,
    settings: PipelineSettings,
    start: StartArgs,
    demo: DemoOptions,
) -> Result<ExitCode> {
    let started = Instant::now();
    let twin = Twin::start(options(data_dir, settings.clone(), 0, start)).await?;
    println!(
        "twin up in {:.1} s: API {}, DynamoDB {}, data in {}",
        started.elapsed().as_secs_f64(),
        twin.endpoints.api,
        twin.endpoints.dynamodb,
        twin.bucket().root().display()
    );
    let result = demo::run(&twin, &settings, &demo, &mut |line| println!("{line}")).await;
    if let Ok(report) = &result {
        println!(
            "all {} orders are in DynamoDB and in the four Parquet tables ({:.1} s from the first send)",
            report.accepted, report.pipeline_seconds
        );
        for (name, result) in &report.queries {
            println!("\n== {name} ({} rows)", result.rows());
            println!("{}", result.to_table()?);
        }
        println!(
            "\nDone in {:.1} s. The data stays in {}; try `orderflow status` and `orderflow query --sql \"SELECT count(*) FROM orders\"`.",
            started.elapsed().as_secs_f64(),
            demo::data_folder(&twin).display()
        );
    }
    let stopped = twin.shutdown().await;
    result?;
    stopped?;
    Ok(ExitCode::SUCCESS)
}

/// The status of the twin in `data_dir`: asked of the running twin, else read from the files.
/// Asks the twin running on `data_dir` to redrive its failures.
async fn redrive(data_dir: &Path) -> Result<orderflow_twin::redrive::RedriveReport> {
    let running = std::fs::read(endpoints_file(data_dir))
        .ok()
        .and_then(|text| serde_json::from_slice::<Endpoints>(&text).ok())
        .filter(|endpoints| Path::new(&format!("/proc/{}", endpoints.pid)).exists());
    let Some(endpoints) = running else {
        bail!(
            "no twin is running on {}: start it with `orderflow up` (redrive runs the records \
             through the running pipeline)",
            data_dir.display()
        );
    };
    let api_key = std::fs::read_to_string(data_dir.join("api-key"))
        .with_context(|| format!("reading the API key in {}", data_dir.display()))?;
    let response = reqwest::Client::new()
        .post(format!("{}{REDRIVE_ROUTE}", endpoints.api))
        .header("x-api-key", api_key.trim())
        .send()
        .await
        .context("asking the twin to redrive")?;
    let status = response.status();
    anyhow::ensure!(
        status.is_success(),
        "the twin refused the redrive ({status}): {}",
        response.text().await.unwrap_or_default()
    );
    Ok(response.json().await?)
}

async fn current_status(data_dir: &Path, settings: &PipelineSettings) -> Result<Status> {
    if let Ok(text) = std::fs::read(endpoints_file(data_dir))
        && let Ok(endpoints) = serde_json::from_slice::<Endpoints>(&text)
        && Path::new(&format!("/proc/{}", endpoints.pid)).exists()
    {
        let url = format!("{}{STATUS_ROUTE}", endpoints.api);
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        if let Ok(response) = client.get(&url).send().await
            && response.status().is_success()
        {
            return Ok(response.json().await?);
        }
    }
    orderflow_twin::data_folder::check(data_dir)?;
    let stream = orderflow_twin::twin::open_stream(data_dir, settings)?;
    let bucket = orderflow_twin::storage::Bucket::local(&data_dir.join("bucket"))?;
    let status = status::collect(&stream, &bucket, &settings.delivery.file_extension, None).await;
    stream.close();
    status
}
