//! `cargo xtask lambdas`: the five Lambdas for Graviton (`aarch64-unknown-linux-gnu`,
//! `provided.al2023`) in one cargo invocation, refused if a binary needs glibc symbols newer than
//! 2.34, packed as `bootstrap`-only zips with fixed metadata, plus `SHA256SUMS`.
//!
//! Two linkers, one result format:
//! - `gcc` (default, outside Nix): Debian's Rust (`/usr/bin/cargo`, `/usr/bin/rustc`) with the
//!   arm64 standard library in `--sysroot` and `aarch64-linux-gnu-gcc` (`.ci/aarch64-toolchain`
//!   installs them);
//! - `zigbuild` (`ORDERFLOW_LINKER=zigbuild`, the Nix flake): `cargo zigbuild` with the glibc
//!   version pinned by the target suffix.
//!
//! Reproducibility: paths are remapped (`--remap-path-prefix`), the build id is off,
//! `SOURCE_DATE_EPOCH` is fixed, the release profile has one codegen unit, and the zips have a
//! fixed time stamp, mode and compression. `--check-reproducible` builds the tracked sources in
//! two different directories and fails, naming the files, unless both `SHA256SUMS` are identical.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

/// The Lambda binaries, by crate: the zip of each is named after the binary.
pub(crate) const LAMBDAS: [(&str, &str); 5] = [
    ("orderflow-consumer", "consumer"),
    ("orderflow-transformer", "transform-orders"),
    ("orderflow-transformer", "transform-product-details"),
    ("orderflow-transformer", "transform-purchase-details"),
    ("orderflow-transformer", "transform-shipping-addresses"),
];

const TARGET: &str = "aarch64-unknown-linux-gnu";
/// Amazon Linux 2023's glibc: no binary may need a newer symbol version.
const MAX_GLIBC: (u32, u32) = (2, 34);
/// Fixed for every build (and the zips' content does not depend on it).
const SOURCE_DATE_EPOCH: &str = "1700000000";

/// How to build.
pub(crate) struct Options {
    /// Where the zips and `SHA256SUMS` go.
    pub(crate) out_dir: PathBuf,
    /// The arm64 sysroot for Debian's rustc (gcc mode).
    pub(crate) sysroot: Option<PathBuf>,
    /// Build twice from two directories and compare.
    pub(crate) check_reproducible: bool,
}

/// Runs the task.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    let cache = cache_dir();
    if options.check_reproducible {
        let mut sums = Vec::new();
        for name in ["a", "b"] {
            // Two fixed directories of different paths (and lengths), kept between runs so
            // their target directories stay warm.
            let dir = cache.join(format!(
                "lambda-build-{name}{}",
                if name == "a" { "" } else { "-second-path" }
            ));
            let src = dir.join("src");
            stage_sources(root, &src)?;
            let out = dir.join("dist");
            build(&src, &dir.join("target"), &out, options)?;
            sums.push((
                out.clone(),
                std::fs::read_to_string(out.join("SHA256SUMS"))?,
            ));
        }
        let (first, second) = (&sums[0], &sums[1]);
        if first.1 != second.1 {
            let differing: Vec<_> = first
                .1
                .lines()
                .zip(second.1.lines())
                .filter(|(a, b)| a != b)
                .map(|(a, _)| a.split_whitespace().last().unwrap_or("?").to_owned())
                .collect();
            bail!(
                "the two builds differ: {} ({} vs {})",
                differing.join(", "),
                first.0.display(),
                second.0.display()
            );
        }
        eprintln!("xtask: lambdas: two builds from different directories are identical");
        copy_dir(&first.0, &options.out_dir)?;
    } else {
        build(
            root,
            &cache.join("lambda-build-here/target"),
            &options.out_dir,
            options,
        )?;
    }
    eprintln!(
        "xtask: lambdas: {}",
        options.out_dir.join("SHA256SUMS").display()
    );
    print!(
        "{}",
        std::fs::read_to_string(options.out_dir.join("SHA256SUMS"))?
    );
    Ok(())
}

fn cache_dir() -> PathBuf {
    std::env::var_os("ORDERFLOW_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
                .join(".cache/orderflow")
        })
}

/// Copies the git-tracked files (as they are in the work tree) into `dest`, replacing what was
/// there but keeping unchanged files' times, so cargo's fingerprints stay valid.
fn stage_sources(root: &Path, dest: &Path) -> Result<()> {
    let listing = Command::new("git")
        .args([
            "ls-files",
            "-z",
            "--cached",
            "--others",
            "--exclude-standard",
        ])
        .current_dir(root)
        .output()
        .context("running git ls-files")?;
    ensure!(listing.status.success(), "git ls-files failed");
    let files: Vec<String> = listing
        .stdout
        .split(|b| *b == 0)
        .filter(|f| !f.is_empty())
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let mut wanted = std::collections::BTreeSet::new();
    for file in &files {
        let from = root.join(file);
        if !from.is_file() {
            continue;
        }
        let to = dest.join(file);
        wanted.insert(to.clone());
        let content = std::fs::read(&from)?;
        if std::fs::read(&to).ok().as_deref() != Some(&content[..]) {
            std::fs::create_dir_all(to.parent().expect("a file has a parent"))?;
            std::fs::write(&to, &content)?;
        }
    }
    // Remove files that are no longer tracked.
    remove_untracked(dest, &wanted)?;
    Ok(())
}

fn remove_untracked(dir: &Path, wanted: &std::collections::BTreeSet<PathBuf>) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            remove_untracked(&path, wanted)?;
        } else if !wanted.contains(&path) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        std::fs::copy(entry.path(), to.join(entry.file_name()))?;
    }
    Ok(())
}

/// Builds the Lambdas of the workspace at `src` into `out`.
fn build(src: &Path, target_dir: &Path, out: &Path, options: &Options) -> Result<()> {
    let started = Instant::now();
    let src = src.canonicalize()?;
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        });
    let zig = std::env::var("ORDERFLOW_LINKER").as_deref() == Ok("zigbuild");
    let mut rustflags = format!(
        "--remap-path-prefix={}=/build --remap-path-prefix={}=/cargo -C link-arg=-Wl,--build-id=none",
        src.display(),
        cargo_home.display()
    );
    let mut command;
    if zig {
        command = Command::new("cargo");
        command.arg("zigbuild");
        // zig links against exactly this glibc version.
        command.args([
            "--target",
            &format!("{TARGET}.{}.{}", MAX_GLIBC.0, MAX_GLIBC.1),
        ]);
    } else {
        let sysroot = options
            .sysroot
            .clone()
            .or_else(|| std::env::var_os("ORDERFLOW_A64_SYSROOT").map(PathBuf::from))
            .context("gcc mode needs the arm64 sysroot: --sysroot DIR (printed by .ci/aarch64-toolchain)")?;
        rustflags = format!("--sysroot {} {rustflags}", sysroot.display());
        command = Command::new(
            std::env::var("ORDERFLOW_CARGO").unwrap_or_else(|_| "/usr/bin/cargo".into()),
        );
        command
            .env(
                "RUSTC",
                std::env::var("ORDERFLOW_RUSTC").unwrap_or_else(|_| "/usr/bin/rustc".into()),
            )
            .env("RUSTDOC", "/usr/bin/rustdoc")
            .env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
                "aarch64-linux-gnu-gcc",
            )
            .env("CC_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-gcc")
            .env("AR_aarch64_unknown_linux_gnu", "aarch64-linux-gnu-ar");
        command.arg("build").args(["--target", TARGET]);
    }
    command
        .args(["--locked", "--release"])
        .args(LAMBDAS.iter().flat_map(|(_, bin)| ["--bin", bin]))
        .current_dir(&src)
        .env("CARGO_TARGET_DIR", target_dir)
        .env("CARGO_INCREMENTAL", "0")
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env(
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
            &rustflags,
        )
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTC_WRAPPER");
    eprintln!("xtask: lambdas: building in {}", src.display());
    let status = command
        .status()
        .context("starting cargo for the arm64 build")?;
    ensure!(status.success(), "the arm64 build failed ({status})");

    std::fs::create_dir_all(out)?;
    let mut sums = BTreeMap::new();
    for (_, bin) in LAMBDAS {
        let binary = target_dir.join(TARGET).join("release").join(bin);
        let bytes =
            std::fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
        let newest = newest_glibc(&bytes).with_context(|| format!("reading the ELF of {bin}"))?;
        if let Some(version) = newest {
            ensure!(
                version <= MAX_GLIBC,
                "{bin} needs GLIBC_{}.{}, newer than Amazon Linux 2023's {}.{}",
                version.0,
                version.1,
                MAX_GLIBC.0,
                MAX_GLIBC.1
            );
        }
        let zip = bootstrap_zip(&bytes)?;
        let name = format!("{bin}.zip");
        std::fs::write(out.join(&name), &zip)?;
        eprintln!(
            "xtask: lambdas: {name}: binary {} bytes, zip {} bytes, newest glibc {}",
            bytes.len(),
            zip.len(),
            newest.map_or("none".to_owned(), |(a, b)| format!("{a}.{b}"))
        );
        sums.insert(name, hex(&Sha256::digest(&zip)));
    }
    let text: String = sums
        .iter()
        .map(|(name, sum)| format!("{sum}  {name}\n"))
        .collect();
    std::fs::write(out.join("SHA256SUMS"), text)?;
    eprintln!(
        "xtask: lambdas: built in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The newest `GLIBC_x.y` version an ELF binary refers to (its version needs live as strings in
/// `.dynstr`; symbol names never contain `GLIBC_`).
pub(crate) fn newest_glibc(elf: &[u8]) -> Result<Option<(u32, u32)>> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf)?;
    let Some(dynstr) = file.section_by_name(".dynstr") else {
        return Ok(None);
    };
    let data = dynstr.data()?;
    let newest = data
        .split(|b| *b == 0)
        .filter_map(|s| std::str::from_utf8(s).ok()?.strip_prefix("GLIBC_"))
        .filter_map(|v| {
            let mut parts = v.split('.');
            Some((
                parts.next()?.parse().ok()?,
                parts.next().unwrap_or("0").parse().ok()?,
            ))
        })
        .max();
    Ok(newest)
}

/// A zip holding one file `bootstrap`, mode 0755, dated 1980-01-01, deflated at level 9 by a
/// pure-Rust deflate (same bytes on every machine).
pub(crate) fn bootstrap_zip(binary: &[u8]) -> Result<Vec<u8>> {
    use zip::write::SimpleFileOptions;
    let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(9))
        .last_modified_time(zip::DateTime::from_date_and_time(1980, 1, 1, 0, 0, 0)?)
        .unix_permissions(0o755)
        .large_file(false);
    writer.start_file("bootstrap", options)?;
    writer.write_all(binary)?;
    Ok(writer.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zips_are_deterministic_and_hold_an_executable_bootstrap() {
        let binary = b"\x7fELF pretend binary".repeat(1000);
        let first = bootstrap_zip(&binary).unwrap();
        assert_eq!(first, bootstrap_zip(&binary).unwrap());
        let mut archive = zip::ZipArchive::new(Cursor::new(first)).unwrap();
        assert_eq!(archive.len(), 1);
        let mut entry = archive.by_index(0).unwrap();
        assert_eq!(entry.name().unwrap(), "bootstrap");
        assert_eq!(entry.unix_mode(), Some(0o100755));
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        assert_eq!(content, binary);
    }

    #[test]
    fn the_newest_glibc_of_this_test_binary_is_found() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let (major, minor) = newest_glibc(&me).unwrap().expect("a glibc binary");
        assert_eq!(major, 2);
        assert!(minor >= 2, "{minor}");
    }
}
