//! Project tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`), parsed with
//! clap: `cargo xtask help` lists them, `cargo xtask help <task>` prints a task's options.
//!
//! - `test`: installs the pinned Node packages (dynalite) when they are missing or stale, then runs
//!   `cargo fmt --check`, `cargo clippy -D warnings` and `cargo test` over the whole workspace.
//! - `demo`: the local twin's demo run with its acceptance checks.
//! - `lambdas`: the arm64 Lambda zips by the flake's zigbuild route ([`lambdas`]).
//! - `smoke`, `coldstart`: each Lambda zip under qemu with real events; cold-start times
//!   ([`smoke`]).
//! - `lambda-bench`: each release Lambda binary through a local Runtime API ([`lambda_bench`]).
//! - `fuzz`: the fuzz targets of `crates/fuzz` for a time or a number of executions each
//!   ([`fuzz`]).
//! - `load`: the twin's API under wrk, counted end to end ([`load`]).
//! - `redrive-aws`: the deployed consumer's failed batches through the consumer again
//!   ([`redrive_aws`]).
//! - `rehearse`: the OpenTofu deploy rehearsal against moto ([`rehearse`],
//!   [`redrive_rehearsal`]).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};

mod fuzz;
mod lambda_bench;
mod lambdas;
mod load;
mod redrive_aws;
mod redrive_rehearsal;
mod rehearse;
#[cfg(test)]
mod reuse;
mod smoke;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(error) => {
            eprintln!("xtask: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// `cargo xtask <task>`.
#[derive(Debug, clap::Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "orderflow's project tasks"
)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

/// The tasks (module docs).
#[derive(Debug, clap::Subcommand)]
enum Task {
    /// npm ci (if needed), cargo fmt --check, cargo clippy -D warnings, cargo test --workspace.
    Test {
        /// More arguments for `cargo test`, as they are (`-p NAME`, `-- --nocapture`, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// npm ci (if needed), then the local twin's demo (`orderflow demo` with these arguments).
    Demo {
        /// `orderflow demo`'s arguments (`--orders N`, `--data-dir DIR`, ...).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The arm64 Lambda zips by the flake's zigbuild route.
    Lambdas(lambdas::Options),
    /// Each Lambda zip under qemu with real events.
    Smoke {
        /// The folder of the zips (default: dist/lambdas).
        #[arg(long)]
        dist: Option<PathBuf>,
    },
    /// Cold-start times of the Lambda binaries.
    Coldstart,
    /// Each release Lambda binary through a local Runtime API: init and invocation medians.
    LambdaBench(lambda_bench::Options),
    /// Each fuzz target of crates/fuzz (nightly, cargo-fuzz; `.ci/run` installs the version
    /// `fuzz::CARGO_FUZZ_VERSION` names).
    Fuzz(fuzz::Options),
    /// wrk on the twin's API, single and batch routes; everything acknowledged counted end to end.
    Load(load::Options),
    /// The deployed consumer's failed batches (on-failure queue) through the consumer again.
    RedriveAws(redrive_aws::Options),
    /// OpenTofu init/validate/plan/apply/re-plan/deploy-role/destroy against moto.
    Rehearse(rehearse::Options),
}

fn run() -> Result<ExitCode> {
    // `test` and `demo` hand their arguments on as they are, `--` included (clap would take a
    // leading `--` as its own).
    let raw: Vec<String> = std::env::args().skip(1).collect();
    match raw.first().map(String::as_str) {
        Some("test") => return test(&raw[1..]),
        Some("demo") => return demo(&raw[1..]),
        _ => {}
    }
    let cli = match <Cli as clap::Parser>::try_parse() {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // `help`, `--help`: printed, success.
            let _ = error.print();
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => bail!("{error}"),
    };
    let success = |()| ExitCode::SUCCESS;
    match cli.task {
        Task::Test { args } => test(&args),
        Task::Demo { args } => demo(&args),
        Task::Lambdas(options) => lambdas::run(&root(), &options).map(success),
        Task::Smoke { dist } => smoke::smoke(
            &root(),
            &dist.unwrap_or_else(|| root().join("dist/lambdas")),
        )
        .map(success),
        Task::Coldstart => smoke::coldstart(&target_dir()).map(success),
        Task::LambdaBench(options) => {
            lambda_bench::run(&root(), &target_dir(), &options).map(success)
        }
        Task::Fuzz(options) => fuzz::run(&root(), &options).map(success),
        Task::Load(options) => load::run(&root(), &options).map(success),
        Task::RedriveAws(options) => Ok(if redrive_aws::run(&options)? {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        }),
        Task::Rehearse(options) => rehearse::run(&root(), &options).map(success),
    }
}

/// `args` (after `cargo xtask`) as a task, for tests.
#[cfg(test)]
pub(crate) fn parse_args(args: &[&str]) -> Result<Task, clap::Error> {
    <Cli as clap::Parser>::try_parse_from(
        std::iter::once("cargo xtask").chain(args.iter().copied()),
    )
    .map(|cli| cli.task)
}

/// Cargo's target directory: `$CARGO_TARGET_DIR`, else `target/` in the repository.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from)
}

/// The repository root (this crate is `crates/xtask`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// Runs a command in the repository root, failing with its name if it fails.
fn step(name: &str, program: &str, args: &[&str]) -> Result<()> {
    let started = Instant::now();
    eprintln!("xtask: {name}: {program} {}", args.join(" "));
    let status = Command::new(program)
        .args(args)
        .current_dir(root())
        .status()
        .with_context(|| format!("could not start `{program}` (is it installed?)"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    eprintln!(
        "xtask: {name}: ok in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Installs the Node packages from the committed lockfile unless they are already installed from it.
fn node_packages() -> Result<()> {
    let root = root();
    let lock =
        std::fs::read(root.join("package-lock.json")).context("reading package-lock.json")?;
    let installed = std::fs::read(root.join("node_modules/.orderflow-lock")).unwrap_or_default();
    if installed == lock && root.join("node_modules/dynalite/cli.js").exists() {
        return Ok(());
    }
    step(
        "node packages",
        "npm",
        &["ci", "--no-audit", "--no-fund", "--loglevel=error"],
    )?;
    std::fs::write(root.join("node_modules/.orderflow-lock"), lock)
        .context("marking node_modules")?;
    Ok(())
}

/// The cargo arguments that build the twin's binary with exactly the features `cargo test
/// --workspace` gives every crate it shares with the twin: features resolved over the whole
/// workspace (`--workspace`, built target filtered by `--bin`) and the domain's test fixtures,
/// which its own tests turn on. `cargo xtask test` after `cargo xtask demo` (or the other way
/// round) then reuses every dependency the first built (issue 12 item 8; the unit graphs of the
/// two builds are compared in `unit_graphs_agree` below when nightly Cargo is there).
const DEMO_BUILD: [&str; 6] = [
    "--locked",
    "--workspace",
    "--bin",
    "orderflow",
    "--features",
    "orderflow-domain/test-fixtures",
];

/// How [`build_twin`] reads the executable's path: Cargo's JSON messages on standard output, the
/// diagnostics rendered on standard error.
const JSON_MESSAGES: [&str; 2] = ["--message-format", "json-render-diagnostics"];

/// The README's "run the pipeline" command: the twin's demo, built with the test build's
/// features ([`DEMO_BUILD`]).
fn demo(extra: &[String]) -> Result<ExitCode> {
    node_packages()?;
    let executable = build_twin()?;
    let status = Command::new(&executable)
        .arg("demo")
        .args(extra)
        .current_dir(root())
        .status()
        .with_context(|| format!("running {}", executable.display()))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Builds the twin's `orderflow` binary with [`DEMO_BUILD`] (the demo and the load test share
/// this build, and the tests reuse it) and returns its path.
pub(crate) fn build_twin() -> Result<PathBuf> {
    let output = Command::new("cargo")
        .arg("build")
        .args(DEMO_BUILD)
        .args(JSON_MESSAGES)
        .current_dir(root())
        .stderr(std::process::Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build of the twin failed ({})", output.status);
    }
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["target"]["name"] == "orderflow")
        .find_map(|message| message["executable"].as_str().map(PathBuf::from))
        .context("cargo build did not report the orderflow executable")
}

fn test(extra: &[String]) -> Result<ExitCode> {
    node_packages()?;
    step("format", "cargo", &["fmt", "--all", "--check"])?;
    // The fuzz crate is a workspace of its own (nightly); its formatting is checked here.
    step(
        "format (fuzz targets)",
        "cargo",
        &[
            "fmt",
            "--manifest-path",
            "crates/fuzz/Cargo.toml",
            "--all",
            "--check",
        ],
    )?;
    step(
        "lint",
        "cargo",
        &[
            "clippy",
            "--locked",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    let mut args = vec!["test", "--locked", "--workspace"];
    args.extend(extra.iter().map(String::as_str));
    step("tests", "cargo", &args)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{Task, parse_args};

    #[test]
    fn test_and_demo_take_any_arguments() {
        // `run` hands them on from the raw arguments; the variants are for `cargo xtask help`.
        match parse_args(&["test", "-p", "orderflow-twin", "--nocapture"]).unwrap() {
            Task::Test { args } => assert_eq!(args, ["-p", "orderflow-twin", "--nocapture"]),
            other => panic!("{other:?}"),
        }
        match parse_args(&["demo", "--orders", "2000", "--data-dir", "/tmp/x"]).unwrap() {
            Task::Demo { args } => assert_eq!(args, ["--orders", "2000", "--data-dir", "/tmp/x"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn options_have_their_defaults_and_refuse_nonsense() {
        match parse_args(&["lambda-bench", "--no-build", "--only", "consumer"]).unwrap() {
            Task::LambdaBench(options) => {
                assert_eq!(options.invocations, 30);
                assert!(!options.build);
                assert_eq!(options.only, ["consumer"]);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_args(&["lambda-bench", "--invocations", "0"]).is_err());
        match parse_args(&["lambdas", "--check-reproducible"]).unwrap() {
            Task::Lambdas(options) => {
                assert!(options.check_reproducible);
                assert_eq!(options.out_dir, super::root().join("dist/lambdas"));
                assert_eq!(options.sysroot, None::<PathBuf>);
            }
            other => panic!("{other:?}"),
        }
        assert!(parse_args(&["rehearse", "--strict"]).is_err());
        assert!(parse_args(&["deploy"]).is_err());
        assert!(parse_args(&[]).is_err(), "a task is required");
    }
}
