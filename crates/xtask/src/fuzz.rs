//! `cargo xtask fuzz`: writes the seed corpora and a JSON dictionary, builds the fuzz targets of
//! `crates/fuzz` once (cargo fuzz, nightly, coverage instrumentation, debug assertions and
//! overflow checks on), runs each target for a time or a number of executions, prints the
//! executions per target and fails if any target found a crash (the input is kept under
//! `crates/fuzz/artifacts/<target>/`).
//!
//! Installs nothing: it needs the nightly toolchain and cargo-fuzz, and says so when either is
//! missing. Builds go to `$ORDERFLOW_FUZZ_TARGET_DIR`, or `fuzz/` under `$CARGO_TARGET_DIR`
//! (nightly artifacts share nothing with the stable build).
//!
//! No sanitizer: the workspace forbids `unsafe` code, so AddressSanitizer would only watch the
//! dependencies, at twice the cost per execution; panics, overflow checks, debug assertions and
//! the targets' invariants are what is checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use base64::Engine;
use orderflow_domain::{GeneratorConfig, ORDER_SCHEMA_JSON, OrderGenerator, Table};
use serde_json::{Value, json};

use orderflow_fuzz_frame as frame;

/// Every fuzz target, in the order they run.
pub(crate) const TARGETS: [&str; 5] =
    ["parse_order", "consumer", "transformers", "api", "columnar"];

/// The cargo-fuzz version `.ci/run` installs.
pub(crate) const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
#[command(group = clap::ArgGroup::new("budget").required(true).multiple(true).args(["seconds", "runs"]))]
pub(crate) struct Options {
    /// Seconds per target (libFuzzer's `-max_total_time`); with --runs, whichever ends first.
    #[arg(long)]
    pub(crate) seconds: Option<u64>,
    /// Executions per target (libFuzzer's `-runs`).
    #[arg(long)]
    pub(crate) runs: Option<u64>,
    /// A target to run (repeatable; all when none is named).
    #[arg(long = "target", value_parser = clap::builder::PossibleValuesParser::new(TARGETS))]
    pub(crate) targets: Vec<String>,
}

impl Options {
    /// The targets to run: those named, or all of them.
    fn targets(&self) -> Vec<&str> {
        if self.targets.is_empty() {
            TARGETS.to_vec()
        } else {
            self.targets.iter().map(String::as_str).collect()
        }
    }
}

/// Seeds, build, runs; fails if a target crashed.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    require_tools()?;
    let fuzz_dir = root.join("crates/fuzz");
    let target_dir = std::env::var_os("ORDERFLOW_FUZZ_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root.join("target"), PathBuf::from)
                .join("fuzz")
        });
    let corpus = fuzz_dir.join("corpus");
    let seeds = write_seeds(&corpus)?;
    let dict = corpus.join("orderflow.dict");
    std::fs::write(&dict, dictionary()).context("writing the fuzz dictionary")?;
    eprintln!(
        "xtask: fuzz: {seeds} seed inputs and a dictionary written under {}",
        corpus.display()
    );

    let started = Instant::now();
    let build_flags = fuzz_flags(&fuzz_dir, &target_dir);
    let mut build = vec!["+nightly", "fuzz", "build"];
    build.extend(build_flags.iter().map(String::as_str));
    eprintln!(
        "xtask: fuzz: building the targets: cargo {}",
        build.join(" ")
    );
    let status = Command::new("cargo")
        .args(&build)
        .current_dir(root)
        .status()
        .context("running cargo fuzz build")?;
    if !status.success() {
        bail!("cargo fuzz build failed ({status})");
    }
    eprintln!(
        "xtask: fuzz: built in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let logs = target_dir.join("logs");
    std::fs::create_dir_all(&logs).context("creating the fuzz log folder")?;
    let mut crashed = Vec::new();
    for target in options.targets() {
        let report = run_target(root, &build_flags, target, &corpus, &dict, &logs, options)?;
        eprintln!(
            "xtask: fuzz: {target}: {} executions in {:.0}s ({} exec/s), corpus {} inputs, {}",
            report.executions,
            report.seconds,
            report.exec_per_second,
            report.corpus,
            if report.passed { "no crash" } else { "CRASHED" }
        );
        if !report.passed {
            crashed.push(target);
        }
    }
    if !crashed.is_empty() {
        bail!(
            "fuzz targets crashed: {} (inputs under {}; reproduce with `cargo +nightly fuzz run \
             --fuzz-dir crates/fuzz -s none <target> <input>`)",
            crashed.join(", "),
            fuzz_dir.join("artifacts").display()
        );
    }
    Ok(())
}

/// Fails with what to install when nightly or cargo-fuzz is missing.
fn require_tools() -> Result<()> {
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !nightly {
        bail!(
            "the nightly toolchain is missing (cargo fuzz needs it for coverage \
             instrumentation): `rustup toolchain install nightly`"
        );
    }
    let cargo_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !cargo_fuzz {
        bail!(
            "cargo-fuzz is missing: `cargo install cargo-fuzz --version {CARGO_FUZZ_VERSION} \
             --locked`"
        );
    }
    Ok(())
}

/// The flags `cargo fuzz build` and `cargo fuzz run` share, so `run` reuses the build.
fn fuzz_flags(fuzz_dir: &Path, target_dir: &Path) -> Vec<String> {
    vec![
        "--fuzz-dir".into(),
        fuzz_dir.display().to_string(),
        "--sanitizer".into(),
        "none".into(),
        // 16 instead of cargo-fuzz's 1: DataFusion and the AWS SDK build in minutes, not tens.
        "--codegen-units".into(),
        "16".into(),
        "--target-dir".into(),
        target_dir.display().to_string(),
    ]
}

/// One target's run.
struct TargetReport {
    passed: bool,
    executions: u64,
    exec_per_second: u64,
    seconds: f64,
    corpus: usize,
}

fn run_target(
    root: &Path,
    build_flags: &[String],
    target: &str,
    corpus: &Path,
    dict: &Path,
    logs: &Path,
    options: &Options,
) -> Result<TargetReport> {
    let target_corpus = corpus.join(target);
    let mut libfuzzer = vec![
        format!("-dict={}", dict.display()),
        // Room for a batch of a few dozen orders.
        "-max_len=16384".to_owned(),
        // An execution takes milliseconds; ten seconds is a hang.
        "-timeout=10".to_owned(),
        "-print_final_stats=1".to_owned(),
    ];
    if let Some(seconds) = options.seconds {
        libfuzzer.push(format!("-max_total_time={seconds}"));
    }
    if let Some(runs) = options.runs {
        libfuzzer.push(format!("-runs={runs}"));
    }
    let log_path = logs.join(format!("{target}.log"));
    let log = std::fs::File::create(&log_path).context("creating the fuzz log")?;
    let mut args: Vec<String> = vec!["+nightly".into(), "fuzz".into(), "run".into()];
    args.extend(build_flags.iter().cloned());
    args.push(target.to_owned());
    args.push(target_corpus.display().to_string());
    args.push("--".into());
    args.extend(libfuzzer);
    eprintln!(
        "xtask: fuzz: {target}: cargo {} (log: {})",
        args.join(" "),
        log_path.display()
    );
    let started = Instant::now();
    let status = Command::new("cargo")
        .args(&args)
        .current_dir(root)
        .stdout(log.try_clone().context("sharing the log")?)
        .stderr(log)
        .status()
        .context("running cargo fuzz run")?;
    let seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let stat = |name: &str| -> u64 {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("stat::{name}:")))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0)
    };
    if !status.success() {
        let tail: Vec<&str> = text.lines().rev().take(60).collect();
        eprintln!("xtask: fuzz: {target} failed ({status}); the end of its log:");
        for line in tail.into_iter().rev() {
            eprintln!("    {line}");
        }
    }
    let corpus_size = std::fs::read_dir(&target_corpus)
        .map(|entries| entries.count())
        .unwrap_or(0);
    Ok(TargetReport {
        passed: status.success(),
        executions: stat("number_of_executed_units"),
        exec_per_second: stat("average_exec_per_sec"),
        seconds,
        corpus: corpus_size,
    })
}

/// Valid orders, deliberately invalid ones (the generator's, one rule each), and the cases the
/// schema and the rules judge differently, as encoded bytes.
struct Orders {
    valid: Vec<Vec<u8>>,
    invalid: Vec<Vec<u8>>,
}

fn orders() -> Orders {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(15));
    let valid: Vec<Vec<u8>> = (0..6).map(|_| generator.next_order().to_json()).collect();
    let mut invalid: Vec<Vec<u8>> = (0..8).map(|_| generator.invalid_order().body).collect();
    let first: Value = serde_json::from_slice(&valid[0]).expect("an order is JSON");
    let edited = |edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let mut order = first.clone();
        edit(order.as_object_mut().expect("an object"));
        order.to_string().into_bytes()
    };
    // The JSON Schema passes it, the rules refuse it (docs/design.md section 1).
    invalid.push(edited(&|order| {
        order.insert("order_date".into(), json!("2024-02-30T10:00:00Z"));
    }));
    let mut valid = valid;
    // The legacy spelling of purchase_details, still accepted.
    valid.push(edited(&|order| {
        let details = order.remove("purchase_details").expect("present");
        order.insert("purchaise_details".into(), details);
    }));
    Orders { valid, invalid }
}

/// Writes the seed inputs of every target into `corpus/<target>/seed-*`; returns how many.
fn write_seeds(corpus: &Path) -> Result<usize> {
    let Orders { valid, invalid } = orders();
    let mut seeds: Vec<(&str, Vec<u8>)> = Vec::new();

    for order in valid.iter().chain(&invalid) {
        seeds.push(("parse_order", order.clone()));
    }

    // consumer, transformers: one record per frame; control bytes vary the put outcome, the
    // arrival time's spelling and the sequence gaps (see crates/fuzz/src/consumer.rs).
    let batches: Vec<Vec<(u8, &[u8])>> = vec![
        valid
            .iter()
            .enumerate()
            .map(|(i, o)| (i as u8 * 8, o.as_slice()))
            .collect(),
        vec![
            (0, &valid[0]),
            (1, &invalid[0]),
            (5, &valid[1]),
            (6, &valid[2]),
            (0x27, &invalid[1]),
            (0x83, &valid[3]),
        ],
        // The same order twice: collapsed to the later record.
        vec![(0, &valid[0]), (0x44, &valid[1]), (0x12, &valid[0])],
        (0u8..8)
            .map(|put| {
                (
                    put | put << 3,
                    valid[usize::from(put) % valid.len()].as_slice(),
                )
            })
            .collect(),
        invalid.iter().map(|o| (0, o.as_slice())).collect(),
    ];
    for batch in &batches {
        seeds.push(("consumer", frame::encode(batch)));
        seeds.push(("transformers", frame::encode(batch)));
    }

    // api: control byte (route, key, content type, sink), then the body.
    const JSON: u8 = 0x10;
    let with = |control: u8, body: &[u8]| [&[control][..], body].concat();
    let batch = |orders: &[&Vec<u8>]| {
        let orders: Vec<Value> = orders
            .iter()
            .map(|o| serde_json::from_slice(o).expect("JSON"))
            .collect();
        json!({ "orders": orders }).to_string().into_bytes()
    };
    let legacy = |order: &[u8]| {
        json!({
            "StreamName": "orders",
            "PartitionKey": "user00042",
            "Data": base64::engine::general_purpose::STANDARD.encode(order),
        })
        .to_string()
        .into_bytes()
    };
    for order in valid.iter().take(2).chain(&invalid) {
        seeds.push(("api", with(JSON, order)));
    }
    seeds.push(("api", with(JSON | 1, &batch(&[&valid[0]]))));
    seeds.push((
        "api",
        with(JSON | 1, &batch(&[&valid[1], &valid[2], &invalid[8]])),
    ));
    seeds.push((
        "api",
        with(0x80 | JSON | 1, &batch(&[&valid[3], &valid[4], &valid[5]])),
    ));
    seeds.push(("api", with(JSON | 2, &legacy(&valid[0]))));
    seeds.push(("api", with(0x20 | 2, &legacy(&invalid[0]))));
    seeds.push(("api", with(0x04 | JSON, &valid[0])));
    seeds.push(("api", with(0x40, &valid[0])));

    // columnar: control byte (the table), then one record's rows, as the transformers write them.
    for (index, table) in Table::ALL.into_iter().enumerate() {
        let mut rows = Vec::new();
        for order in &valid[..3] {
            let order = orderflow_domain::parse_order(order).expect("valid");
            table.write_rows(&order, &mut rows);
        }
        seeds.push(("columnar", with(index as u8, &rows)));
    }

    for target in TARGETS {
        std::fs::create_dir_all(corpus.join(target)).context("creating a corpus folder")?;
    }
    for (index, (target, data)) in seeds.iter().enumerate() {
        let path = corpus.join(target).join(format!("seed-{index:03}"));
        std::fs::write(&path, data).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(seeds.len())
}

/// A libFuzzer dictionary: every member name and enum value of the order schema, the table
/// columns, the other routes' member names, and JSON's literals.
fn dictionary() -> String {
    /// Property names and enum values, quoted as they appear in an order.
    fn walk(value: &Value, words: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                for (key, value) in map {
                    match (key.as_str(), value) {
                        ("properties", Value::Object(properties)) => {
                            words.extend(properties.keys().map(|name| format!("\"{name}\"")));
                        }
                        ("enum", Value::Array(choices)) => words.extend(
                            choices
                                .iter()
                                .filter_map(Value::as_str)
                                .map(|choice| format!("\"{choice}\"")),
                        ),
                        _ => {}
                    }
                    walk(value, words);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, words)),
            _ => {}
        }
    }
    let mut words = BTreeSet::new();
    let schema: Value = serde_json::from_str(ORDER_SCHEMA_JSON).expect("the order schema is JSON");
    walk(&schema, &mut words);
    for table in Table::ALL {
        for column in &table.definition().columns {
            words.insert(format!("\"{}\"", column.name));
        }
    }
    for word in [
        "\"orders\"",
        "\"StreamName\"",
        "\"PartitionKey\"",
        "\"Data\"",
        "null",
        "true",
        "false",
        "\\u0000",
        "\\ud800",
        "e-7",
        "E+2",
        "T00:00:00Z",
        "+05:30",
        ".123456789",
        "2024-02-29",
    ] {
        words.insert(word.to_owned());
    }
    let mut out = String::new();
    for word in words {
        let escaped: String = word
            .bytes()
            .map(|b| match b {
                b'"' | b'\\' => format!("\\{}", b as char),
                0x20..=0x7e => (b as char).to_string(),
                _ => format!("\\x{b:02X}"),
            })
            .collect();
        out.push_str(&format!("\"{escaped}\"\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Options, TARGETS};

    fn parse(args: &[&str]) -> Result<Options, clap::Error> {
        match crate::parse_args(&[&["fuzz"], args].concat())? {
            crate::Task::Fuzz(options) => Ok(options),
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn a_budget_is_required_and_targets_default_to_all() {
        assert!(parse(&[]).is_err(), "no --seconds or --runs");
        let options = parse(&["--seconds", "20"]).unwrap();
        assert_eq!((options.seconds, options.runs), (Some(20), None));
        assert_eq!(options.targets(), TARGETS.to_vec());
        let options = parse(&["--runs", "5", "--seconds", "9", "--target", "api"]).unwrap();
        assert_eq!((options.seconds, options.runs), (Some(9), Some(5)));
        assert_eq!(options.targets(), vec!["api"]);
    }

    #[test]
    fn unknown_targets_and_options_are_refused() {
        let error = parse(&["--seconds", "1", "--target", "parquet"]).unwrap_err();
        assert!(error.to_string().contains("parse_order"), "{error}");
        assert!(parse(&["--seconds", "1", "--fast"]).is_err());
        assert!(parse(&["--seconds", "soon"]).is_err());
    }
}
