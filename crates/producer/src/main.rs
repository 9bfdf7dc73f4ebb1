//! `producer`: sends fake orders to the orderflow ingestion API.
//!
//! Exit codes: 0 every valid order accepted and every invalid one rejected as intended; 1 some
//! order did not get its intended outcome; 2 bad arguments; 3 the run could not proceed (403,
//! unreachable endpoint); 130 interrupted by Ctrl-C.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use clap::Parser;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use orderflow_producer::{
    RetryPolicy, Route, RunConfig, Stats, Stop, Workload, WorkloadConfig, run,
};
use tokio_util::sync::CancellationToken;

/// mimalloc: generating and sending orders allocates many small strings; it is markedly faster
/// than glibc's allocator here (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Send generated orders to the orderflow ingestion API and report what happened.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Base URL of the API, stage included (e.g. https://abc.execute-api.eu-west-1.amazonaws.com/prod).
    #[arg(long, required_unless_present = "dry_run")]
    endpoint: Option<String>,
    /// API key (sent as x-api-key; never printed).
    #[arg(long, env = "ORDERFLOW_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Number of orders to send.
    #[arg(long, conflicts_with = "duration")]
    count: Option<u64>,
    /// Send for this long instead (e.g. 30s, 5m).
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Orders per second (e.g. 500 or 500/s); 0 sends as fast as possible.
    #[arg(long, default_value = "0", value_parser = parse_rate)]
    rate: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    concurrency: u32,
    /// Orders per request: 1 uses /v1/orders, 2 to 500 use /v1/orders/batch.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=500))]
    batch_size: u16,
    /// Size of the customer pool.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(1..))]
    customers: u32,
    /// Seed of the generator: same seed (and --until), same orders.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Spread order_date over the N days before --until (UTC).
    #[arg(long, default_value_t = 30)]
    days: u32,
    /// Latest order_date (RFC 3339); defaults to the start of the current UTC day, so runs on the same day with the same seed send the same orders.
    #[arg(long, value_parser = parse_time)]
    until: Option<DateTime<Utc>>,
    /// Share of deliberately invalid orders, 0 to 1 (each breaks one stated rule).
    #[arg(long, default_value_t = 0.0, value_parser = parse_ratio)]
    invalid_ratio: f64,
    /// Use the legacy {StreamName, PartitionKey, Data} envelope on /orders.
    #[arg(long, requires = "stream_name")]
    legacy: bool,
    /// Stream name for --legacy.
    #[arg(long)]
    stream_name: Option<String>,
    /// Print the orders as JSON lines and send nothing (invalid ones are noted on stderr).
    #[arg(long)]
    dry_run: bool,
    /// Print the final summary as JSON.
    #[arg(long)]
    json: bool,
    /// Per-request timeout.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    timeout: Duration,
    /// Re-sends of one order after 429, 5xx or a transport error.
    #[arg(long, default_value_t = 8)]
    max_retries: u32,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration like 30s or 5m: {e}"))?;
    if duration.is_zero() {
        Err(format!("`{text}`: must be more than zero"))
    } else {
        Ok(duration)
    }
}

fn parse_rate(text: &str) -> Result<f64, String> {
    let number = text.strip_suffix("/s").unwrap_or(text);
    match number.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate >= 0.0 => Ok(rate),
        _ => Err(format!(
            "`{text}` is not a rate like 500 or 500/s (0 = as fast as possible)"
        )),
    }
}

fn parse_ratio(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(ratio) if (0.0..=1.0).contains(&ratio) => Ok(ratio),
        _ => Err(format!("`{text}` is not a share from 0 to 1")),
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.to_utc())
        .map_err(|e| format!("`{text}` is not an RFC 3339 time like 2024-06-08T00:00:00Z: {e}"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    match start(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("producer: error: {error:#}");
            ExitCode::from(3)
        }
    }
}

fn workload_config(args: &Args) -> WorkloadConfig {
    let until = args.until.unwrap_or_else(|| {
        Utc::now()
            .date_naive()
            .and_hms_opt(0, 0, 0)
            .expect("midnight exists")
            .and_utc()
    });
    WorkloadConfig {
        seed: args.seed,
        customers: args.customers,
        days: args.days,
        until,
        invalid_ratio: args.invalid_ratio,
    }
}

fn start(args: Args) -> Result<ExitCode> {
    let workload = workload_config(&args);
    if args.dry_run {
        return dry_run(&args, &workload);
    }
    let endpoint = args.endpoint.clone().context("--endpoint is required")?;
    let api_key = args
        .api_key
        .clone()
        .context("no API key: pass --api-key or set ORDERFLOW_API_KEY")?;
    let stop = match (args.count, args.duration) {
        (Some(count), _) => Stop::Count(count),
        (None, Some(duration)) => Stop::Duration(duration),
        (None, None) => Stop::Count(1_000),
    };
    let route = if args.legacy {
        Route::Legacy {
            stream_name: args
                .stream_name
                .clone()
                .context("--legacy needs --stream-name")?,
        }
    } else {
        Route::V1
    };
    let config = RunConfig {
        endpoint,
        api_key,
        stop,
        rate: (args.rate > 0.0).then_some(args.rate),
        concurrency: args.concurrency as usize,
        batch_size: if args.legacy {
            1
        } else {
            args.batch_size as usize
        },
        route,
        workload,
        request_timeout: args.timeout,
        retry: RetryPolicy {
            max_retries: args.max_retries,
            ..RetryPolicy::default()
        },
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let summary = runtime.block_on(async {
        let cancel = CancellationToken::new();
        let on_ctrl_c = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("producer: Ctrl-C: stopping, waiting for requests in flight");
                on_ctrl_c.cancel();
            }
        });
        let stats = Arc::new(Stats::default());
        let progress = progress_bar(&config, stats.clone());
        let summary = run(&config, stats, cancel).await;
        if let Some((bar, ticker)) = progress {
            ticker.abort();
            bar.finish_and_clear();
        }
        summary
    });
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).context("encoding the summary")?
        );
    } else {
        println!("{}", summary.to_text());
    }
    if let Some(fatal) = &summary.fatal {
        eprintln!("producer: error: {fatal}");
        return Ok(ExitCode::from(3));
    }
    Ok(if summary.interrupted {
        ExitCode::from(130)
    } else if summary.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A progress bar on stderr when it is a terminal, updated from the counters.
fn progress_bar(
    config: &RunConfig,
    stats: Arc<Stats>,
) -> Option<(ProgressBar, tokio::task::JoinHandle<()>)> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match config.stop {
        Stop::Count(count) => ProgressBar::new(count),
        Stop::Duration(_) => ProgressBar::new_spinner(),
    };
    bar.set_draw_target(ProgressDrawTarget::stderr());
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} orders done ({per_sec}) {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let shown = bar.clone();
    let ticker = tokio::spawn(async move {
        loop {
            shown.set_position(stats.finished());
            shown.set_message(format!("{} accepted", stats.accepted()));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    Some((bar, ticker))
}

fn dry_run(args: &Args, config: &WorkloadConfig) -> Result<ExitCode> {
    let count = args.count.unwrap_or(10);
    let mut workload = Workload::new(config);
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for line in 1..=count {
        let order = workload.next_order();
        out.write_all(&order.body)?;
        out.write_all(b"\n")?;
        if let Some(reason) = order.invalid_reason {
            out.flush()?;
            eprintln!("producer: order {line} is invalid: {reason}");
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
