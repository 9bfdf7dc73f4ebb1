//! Project tasks, run as `cargo xtask <task>` (an alias in `.cargo/config.toml`); `cargo xtask
//! help` prints their options.
//!
//! - `test`: installs the pinned Node packages (dynalite) when they are missing or stale, then runs
//!   `cargo fmt --check`, `cargo clippy -D warnings` and `cargo test` over the whole workspace.
//! - `demo`: the local twin's demo run with its acceptance checks.
//! - `lambdas`: the arm64 Lambda zips by the flake's zigbuild route ([`lambdas`]).
//! - `smoke`, `coldstart`: each Lambda zip under qemu with real events; cold-start times
//!   ([`smoke`]).
//! - `lambda-bench`: each release Lambda binary through a local Runtime API ([`lambda_bench`]).
//! - `load`: the twin's API under wrk, counted end to end ([`load`]).
//! - `redrive-aws`: the deployed consumer's failed batches through the consumer again
//!   ([`redrive_aws`]).
//! - `rehearse`: the OpenTofu deploy rehearsal against moto ([`rehearse`],
//!   [`redrive_rehearsal`]).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};

mod lambda_bench;
mod lambdas;
mod load;
mod redrive_aws;
mod redrive_rehearsal;
mod rehearse;
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

fn run() -> Result<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => demo(&args[1..]),
        Some("smoke") => {
            let dist = match args.get(1).map(String::as_str) {
                Some("--dist") => PathBuf::from(args.get(2).context("--dist needs a directory")?),
                _ => root().join("dist/lambdas"),
            };
            smoke::smoke(&root(), &dist)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("coldstart") => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root().join("target"), PathBuf::from);
            smoke::coldstart(&target)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("lambda-bench") => {
            let mut options = lambda_bench::Options {
                invocations: 30,
                build: true,
                only: Vec::new(),
                baseline: None,
            };
            let mut rest = args[1..].iter();
            while let Some(arg) = rest.next() {
                match arg.as_str() {
                    "--invocations" => {
                        options.invocations = rest
                            .next()
                            .context("--invocations needs a number")?
                            .parse()
                            .context("--invocations needs a number")?;
                        ensure!(options.invocations > 0, "--invocations must be at least 1");
                    }
                    "--no-build" => options.build = false,
                    "--baseline" => {
                        options.baseline =
                            Some(rest.next().context("--baseline needs a directory")?.into())
                    }
                    "--only" => options
                        .only
                        .push(rest.next().context("--only needs a binary name")?.clone()),
                    other => {
                        bail!("unknown option `{other}` for lambda-bench (try `cargo xtask help`)")
                    }
                }
            }
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| root().join("target"), PathBuf::from);
            lambda_bench::run(&root(), &target, &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("lambdas") => {
            let options = lambda_options(&args[1..])?;
            lambdas::run(&root(), &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("load") => {
            load::run(&root(), &parse_task::<load::Options>("load", &args[1..])?)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("redrive-aws") => {
            let options = parse_task::<redrive_aws::Options>("redrive-aws", &args[1..])?;
            Ok(if redrive_aws::run(&options)? {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Some("rehearse") => {
            let mut options = rehearse::Options {
                registry: false,
                keep: false,
                strict_deploy_role: false,
            };
            for arg in &args[1..] {
                match arg.as_str() {
                    "--registry" => options.registry = true,
                    "--keep" => options.keep = true,
                    "--strict-deploy-role" => options.strict_deploy_role = true,
                    other => {
                        bail!("unknown option `{other}` for rehearse (try `cargo xtask help`)")
                    }
                }
            }
            rehearse::run(&root(), &options)?;
            Ok(ExitCode::SUCCESS)
        }
        Some("help" | "--help" | "-h") | None => {
            println!(
                "usage: cargo xtask <task>\n\n  \
                 test [-- <cargo test args>]   npm ci (if needed), cargo fmt --check, cargo clippy -D warnings, cargo test --workspace\n  \
                 demo [<orderflow demo args>]  npm ci (if needed), then the local twin's demo (`orderflow demo`)\n  \
                 lambdas [--sysroot DIR] [--out-dir DIR] [--check-reproducible]   the arm64 Lambda zips\n  \
                 smoke [--dist DIR]            each Lambda zip under qemu with real events\n  \
                 coldstart                     cold-start times of the Lambda binaries\n  \
                 lambda-bench [--invocations N] [--no-build] [--only NAME] [--baseline DIR]   each release Lambda binary through a local Runtime API: init and invocation medians\n  \
                 load [--seconds N] [--connections N] [--batch N] [--no-limits]   wrk on the twin's API, single and batch routes; everything acknowledged counted end to end\n  \
                 redrive-aws --queue-url URL [--function NAME] [--max-messages N] [--dry-run] [--visibility-timeout S]   the deployed consumer's failed batches (on-failure queue) through the consumer again\n  \
                 rehearse [--registry] [--keep] [--strict-deploy-role]   OpenTofu init/validate/plan/apply/re-plan/deploy-role/destroy against moto"
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(other) => bail!("unknown task `{other}` (try `cargo xtask help`)"),
    }
}

fn lambda_options(args: &[String]) -> Result<lambdas::Options> {
    let mut options = lambdas::Options {
        out_dir: root().join("dist/lambdas"),
        sysroot: None,
        check_reproducible: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out-dir" => {
                options.out_dir = args.next().context("--out-dir needs a directory")?.into()
            }
            "--sysroot" => {
                options.sysroot = Some(args.next().context("--sysroot needs a directory")?.into())
            }
            "--check-reproducible" => options.check_reproducible = true,
            other => bail!("unknown option `{other}` for lambdas (try `cargo xtask help`)"),
        }
    }
    Ok(options)
}

/// The repository root (this crate is `crates/xtask`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

/// A task's options, parsed with clap (`--help` prints them and exits).
fn parse_task<T: clap::Parser>(task: &str, args: &[String]) -> Result<T> {
    T::try_parse_from(std::iter::once(format!("cargo xtask {task}")).chain(args.iter().cloned()))
        .map_err(|error| {
            if !error.use_stderr() {
                let _ = error.print();
                std::process::exit(0);
            }
            anyhow::anyhow!("{error}")
        })
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

/// The README's "run the pipeline" command: the twin's demo, built with the test build's profile
/// (so it reuses what `cargo xtask test` compiled).
fn demo(extra: &[String]) -> Result<ExitCode> {
    node_packages()?;
    let mut args = vec![
        "run",
        "--locked",
        "-p",
        "orderflow-twin",
        "--bin",
        "orderflow",
        "--",
        "demo",
    ];
    args.extend(extra.iter().map(String::as_str));
    let status = Command::new("cargo")
        .args(&args)
        .current_dir(root())
        .status()
        .context("running cargo")?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn test(extra: &[String]) -> Result<ExitCode> {
    node_packages()?;
    step("format", "cargo", &["fmt", "--all", "--check"])?;
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
