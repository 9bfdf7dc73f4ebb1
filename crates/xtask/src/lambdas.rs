//! `cargo xtask lambdas`: the five Lambdas for Graviton (`aarch64-unknown-linux-gnu`,
//! `provided.al2023`), one cargo invocation per package (`Lambdas::packages`), refused if a binary needs glibc symbols newer than
//! 2.34 or contains a build-machine path, packed as `bootstrap`-only zips with fixed metadata,
//! plus `SHA256SUMS`.
//!
//! One route, the Nix flake's and CI's: `cargo zigbuild --target aarch64-unknown-linux-gnu.2.34`
//! (zig 0.15.2 links against exactly glibc 2.34 and compiles the C code of ring and aws-lc-sys).
//! The compiler is the `cargo`/`rustc` on PATH when it has the target's standard library (the
//! flake's toolchain), or, with `--sysroot DIR`, Debian's Rust (`/usr/bin/cargo`,
//! `/usr/bin/rustc`) with the arm64 standard library in DIR (`.ci/aarch64-toolchain`; rustup
//! cannot download it on these machines). `.ci/zig-toolchain` installs zig and cargo-zigbuild.
//!
//! Reproducibility: every build-machine path is remapped to a fixed name (`--remap-path-prefix`
//! for Rust, `-ffile-prefix-map` for C: `$CARGO_HOME`, the sources, the target directory and,
//! under Nix, crane's vendor directory) and the binaries are then searched for such paths; the
//! build id is off, `SOURCE_DATE_EPOCH` is fixed, the release profile has one codegen unit, and
//! the zips have a fixed time stamp, mode and compression. `--check-reproducible` builds the
//! tracked sources in two different directories and fails, naming the files, unless both
//! `SHA256SUMS` are identical.

use std::collections::BTreeMap;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

/// The Lambdas, read from `tofu/lambdas.json` (the list OpenTofu, the flake, the twin and CI
/// read too): each name is a Cargo binary, its zip's name and the function's name after the
/// resource prefix.
#[derive(Debug)]
pub(crate) struct Lambdas {
    /// The consumer's name.
    pub(crate) consumer: String,
    /// Table -> transformer name, by table.
    pub(crate) transformers: BTreeMap<String, String>,
}

impl Lambdas {
    /// Reads `tofu/lambdas.json` of the repository.
    pub(crate) fn read() -> Result<Self> {
        let path = crate::root().join("tofu/lambdas.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        let text = |value: &serde_json::Value, key: &str| -> Result<String> {
            value
                .as_str()
                .map(str::to_owned)
                .with_context(|| format!("{}: {key} must be a string", path.display()))
        };
        let consumer = text(&value["consumer"], "consumer")?;
        let transformers = value["transformers"]
            .as_object()
            .with_context(|| format!("{}: transformers must be an object", path.display()))?
            .iter()
            .map(|(table, name)| Ok((table.clone(), text(name, &format!("transformers.{table}"))?)))
            .collect::<Result<_>>()?;
        Ok(Self {
            consumer,
            transformers,
        })
    }

    /// Every name, the consumer first.
    pub(crate) fn names(&self) -> Vec<&str> {
        std::iter::once(self.consumer.as_str())
            .chain(self.transformers.values().map(String::as_str))
            .collect()
    }

    /// The workspace packages that hold the Lambdas' binaries (the `[[bin]]` tables of
    /// `crates/*/Cargo.toml` under `src`, but for the root manifest's `workspace.exclude`), by
    /// package name, each with its Lambdas in manifest
    /// order. Each package is built by a cargo invocation of its own (`-p`): one invocation for
    /// every binary merges the dependency features of all the workspace's packages into each
    /// binary (the API's `jsonschema` gave the transformers regex's Unicode tables, and the
    /// consumer's SDK gave them HTTP/2). The flake groups the binaries the same way.
    pub(crate) fn packages(&self, src: &Path) -> Result<Vec<(String, Vec<String>)>> {
        let names = self.names();
        let root: toml::Table = toml::from_str(&std::fs::read_to_string(src.join("Cargo.toml"))?)
            .context("the root Cargo.toml is not TOML")?;
        let excluded: Vec<&str> = root
            .get("workspace")
            .and_then(|workspace| workspace.get("exclude"))
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(toml::Value::as_str)
            .collect();
        let mut packages: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let crates = src.join("crates");
        for entry in
            std::fs::read_dir(&crates).with_context(|| format!("reading {}", crates.display()))?
        {
            let dir = entry?.path();
            let path = dir.join("Cargo.toml");
            let member = dir.strip_prefix(src).unwrap_or(&dir);
            if !path.is_file()
                || excluded
                    .iter()
                    .any(|excluded| member == Path::new(excluded))
            {
                continue;
            }
            let manifest: toml::Table = toml::from_str(&std::fs::read_to_string(&path)?)
                .with_context(|| format!("{} is not TOML", path.display()))?;
            let package = manifest
                .get("package")
                .and_then(|package| package.get("name"))
                .and_then(toml::Value::as_str)
                .with_context(|| format!("{}: no package.name", path.display()))?;
            let bins = manifest.get("bin").and_then(toml::Value::as_array);
            for bin in bins.into_iter().flatten() {
                let name = bin.get("name").and_then(toml::Value::as_str);
                if let Some(name) = name.filter(|name| names.contains(name)) {
                    packages
                        .entry(package.to_owned())
                        .or_default()
                        .push(name.to_owned());
                }
            }
        }
        let found: Vec<&String> = packages.values().flatten().collect();
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|name| found.iter().filter(|bin| bin.as_str() == *name).count() != 1)
            .collect();
        ensure!(
            missing.is_empty(),
            "tofu/lambdas.json names {missing:?}, which not exactly one [[bin]] of crates/*/Cargo.toml defines"
        );
        Ok(packages.into_iter().collect())
    }

    /// The table a transformer writes, `None` for the consumer.
    pub(crate) fn table_of(&self, name: &str) -> Option<&str> {
        self.transformers
            .iter()
            .find(|(_, transformer)| *transformer == name)
            .map(|(table, _)| table.as_str())
    }
}

const TARGET: &str = "aarch64-unknown-linux-gnu";
/// Amazon Linux 2023's glibc: no binary may need a newer symbol version.
const MAX_GLIBC: (u32, u32) = (2, 34);
/// Fixed for every build (and the zips' content does not depend on it).
const SOURCE_DATE_EPOCH: &str = "1700000000";

/// How to build.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct Options {
    /// Where the zips and `SHA256SUMS` go.
    #[arg(long, default_value_os_t = crate::root().join("dist/lambdas"))]
    pub(crate) out_dir: PathBuf,
    /// The arm64 standard library for Debian's rustc; none: the toolchain on PATH.
    #[arg(long)]
    pub(crate) sysroot: Option<PathBuf>,
    /// Build twice from two directories and compare.
    #[arg(long)]
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

/// The build-machine paths of one build: each is remapped to a fixed name in the binaries
/// (`--remap-path-prefix` for Rust, `-ffile-prefix-map` for C) and then must not occur in them.
struct BuildPaths {
    /// `(path, fixed name)`, in the order the remaps are given. rustc applies the last matching
    /// `--remap-path-prefix`, so more specific paths come after the paths that contain them.
    remaps: Vec<(PathBuf, &'static str)>,
    /// Paths that may not appear in a binary at all (the remapped ones and more).
    forbidden: Vec<PathBuf>,
}

impl BuildPaths {
    fn new(
        src: &Path,
        target_dir: &Path,
        cargo_home: &Path,
        sysroot: Option<&Path>,
        caches: &[PathBuf],
    ) -> Self {
        let mut remaps = vec![
            (cargo_home.to_path_buf(), "/cargo"),
            (src.to_path_buf(), "/build"),
            (target_dir.to_path_buf(), "/target"),
        ];
        // Crane vendors the crates into /nix/store/<hash>-vendor-cargo-deps, whose hash depends
        // on the build machine's system: the flake passes that directory here, so the crates'
        // panic locations and C `__FILE__` strings read /vendor/... on every machine.
        if let Some(vendor) = std::env::var_os("ORDERFLOW_CARGO_VENDOR_DIR") {
            remaps.push((PathBuf::from(vendor), "/vendor"));
        }
        let mut forbidden: Vec<PathBuf> = remaps.iter().map(|(path, _)| path.clone()).collect();
        forbidden.push(cargo_home.join("registry"));
        forbidden.push("/nix/store".into());
        forbidden.extend(std::env::var_os("HOME").map(PathBuf::from));
        forbidden.extend(sysroot.map(Path::to_path_buf));
        forbidden.extend(caches.iter().cloned());
        Self { remaps, forbidden }
    }

    /// `--remap-path-prefix=A=B ...` for rustc.
    fn rustflags(&self) -> String {
        self.flags("--remap-path-prefix")
    }

    /// `-ffile-prefix-map=A=B ...` for the C compiler (`__FILE__` in assertions and debug info),
    /// honoured by gcc and by clang, which `zig cc` is; like rustc, both apply the last match.
    fn cflags(&self) -> String {
        self.flags("-ffile-prefix-map")
    }

    fn flags(&self, option: &str) -> String {
        self.remaps
            .iter()
            .map(|(path, to)| format!("{option}={}={to}", path.display()))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The directory cargo keeps its registry in.
fn cargo_home() -> PathBuf {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cargo")
        })
}

/// Builds the Lambdas of the workspace at `src` into `out`.
fn build(src: &Path, target_dir: &Path, out: &Path, options: &Options) -> Result<()> {
    let lambdas = Lambdas::read()?;
    let started = Instant::now();
    let src = src.canonicalize()?;
    std::fs::create_dir_all(target_dir)?;
    let target_dir = target_dir.canonicalize()?;
    if let Ok(linker) = std::env::var("ORDERFLOW_LINKER") {
        // The gcc route is gone (CI proves only the flake's route); refuse rather than ignore it.
        ensure!(
            matches!(linker.as_str(), "" | "zigbuild"),
            "ORDERFLOW_LINKER={linker}: the only linker is `zigbuild` (cargo-zigbuild with zig)"
        );
    }
    // Debian's Rust with the arm64 standard library in a sysroot (outside Nix), or the
    // toolchain on PATH that has the target's standard library itself (the flake's).
    let sysroot = options
        .sysroot
        .clone()
        .or_else(|| std::env::var_os("ORDERFLOW_A64_SYSROOT").map(PathBuf::from));
    // zig and cargo-zigbuild keep caches (compiled glibc stubs, compiler wrappers) under
    // $XDG_CACHE_HOME or $HOME, which a Nix sandbox does not have: fixed directories, so the
    // wrapper paths cargo fingerprints are the same in every build.
    let zig_caches: Vec<(&str, PathBuf)> = [
        ("ZIG_GLOBAL_CACHE_DIR", "global"),
        ("ZIG_LOCAL_CACHE_DIR", "local"),
        ("CARGO_ZIGBUILD_CACHE_DIR", "cargo-zigbuild"),
    ]
    .into_iter()
    .map(|(variable, dir)| {
        let path = std::env::var_os(variable)
            .map_or_else(|| cache_dir().join("zig").join(dir), PathBuf::from);
        (variable, path)
    })
    .collect();
    let caches: Vec<PathBuf> = zig_caches.iter().map(|(_, path)| path.clone()).collect();
    let paths = BuildPaths::new(
        &src,
        &target_dir,
        &cargo_home(),
        sysroot.as_deref(),
        &caches,
    );
    let mut rustflags = format!("{} -C link-arg=-Wl,--build-id=none", paths.rustflags());
    if let Some(sysroot) = &sysroot {
        // The target's flags only: build scripts and proc macros keep the host's sysroot.
        rustflags = format!("--sysroot {} {rustflags}", sysroot.display());
    }
    // One cargo invocation per package (see `Lambdas::packages`).
    for (package, bins) in lambdas.packages(&src)? {
        let mut command = Command::new(match (&sysroot, std::env::var("ORDERFLOW_CARGO")) {
            (_, Ok(cargo)) => cargo,
            (Some(_), Err(_)) => "/usr/bin/cargo".to_owned(),
            (None, Err(_)) => "cargo".to_owned(),
        });
        if sysroot.is_some() {
            command
                .env(
                    "RUSTC",
                    std::env::var("ORDERFLOW_RUSTC").unwrap_or_else(|_| "/usr/bin/rustc".into()),
                )
                .env("RUSTDOC", "/usr/bin/rustdoc");
        }
        // zig links against exactly this glibc version (the target's suffix); cargo-zigbuild sets
        // the linker, CC_<target> and AR_<target> (`zig ar`) unless they are set, and leaves
        // CARGO_TARGET_<TRIPLE>_RUSTFLAGS alone (it only reads -C target-cpu from it).
        command.arg("zigbuild").args([
            "--target",
            &format!("{TARGET}.{}.{}", MAX_GLIBC.0, MAX_GLIBC.1),
        ]);
        for (variable, dir) in &zig_caches {
            std::fs::create_dir_all(dir)?;
            command.env(variable, dir);
        }
        for variable in [
            "CC_aarch64_unknown_linux_gnu",
            "AR_aarch64_unknown_linux_gnu",
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER",
        ] {
            command.env_remove(variable);
        }
        command
            .args(["--locked", "--release", "-p", &package])
            .args(bins.iter().flat_map(|bin| ["--bin", bin.as_str()]))
            .current_dir(&src)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("CARGO_INCREMENTAL", "0")
            .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
            .env(
                "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUSTFLAGS",
                &rustflags,
            )
            // The C code of ring and aws-lc-sys (the cc crate appends these to its own flags).
            .env("CFLAGS_aarch64_unknown_linux_gnu", paths.cflags())
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("RUSTC_WRAPPER");
        eprintln!("xtask: lambdas: building {package} in {}", src.display());
        let status = command
            .status()
            .context("starting cargo for the arm64 build")?;
        ensure!(
            status.success(),
            "the arm64 build of {package} failed ({status})"
        );
    }

    std::fs::create_dir_all(out)?;
    let mut sums = BTreeMap::new();
    let mut leaks = Vec::new();
    for bin in lambdas.names() {
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
        leaks.extend(
            build_machine_paths(&bytes, &paths.forbidden)
                .into_iter()
                .map(|leak| format!("{bin}: {leak}")),
        );
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
    ensure!(
        leaks.is_empty(),
        "build-machine paths in the binaries (a remap is missing):\n  {}",
        leaks.join("\n  ")
    );
    eprintln!(
        "xtask: lambdas: no binary contains a build-machine path ({})",
        paths
            .forbidden
            .iter()
            .map(|path| path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

/// Where `binary` contains one of the `paths` (as bytes): one line per path found, with its
/// count and the bytes around the first occurrence. Paths shorter than five bytes (`/`, an empty
/// `$HOME`) are skipped: they would match anything.
fn build_machine_paths(binary: &[u8], paths: &[PathBuf]) -> Vec<String> {
    let mut found = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for path in paths {
        let needle = path.as_os_str().as_encoded_bytes();
        let needle = needle.strip_suffix(b"/").unwrap_or(needle);
        if needle.len() < 5 || !seen.insert(needle.to_vec()) {
            continue;
        }
        let hits: Vec<usize> = binary
            .windows(needle.len())
            .enumerate()
            .filter(|(_, window)| *window == needle)
            .map(|(at, _)| at)
            .collect();
        if let Some(&first) = hits.first() {
            let context =
                &binary[first.saturating_sub(24)..(first + needle.len() + 40).min(binary.len())];
            found.push(format!(
                "{} ({} times, first at byte {first}: \"{}\")",
                path.display(),
                hits.len(),
                context.escape_ascii()
            ));
        }
    }
    found
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

    /// Every Lambda is built from exactly one package, and the consumer's package (the AWS SDK,
    /// HTTP/2) builds no transformer: a cargo invocation per package keeps each binary to its
    /// own dependency features.
    #[test]
    fn each_lambda_is_in_one_package_and_the_consumer_builds_alone() {
        let lambdas = Lambdas::read().unwrap();
        let packages = lambdas.packages(&crate::root()).unwrap();
        let mut built: Vec<&str> = packages
            .iter()
            .flat_map(|(_, bins)| bins.iter().map(String::as_str))
            .collect();
        built.sort_unstable();
        let mut names = lambdas.names();
        names.sort_unstable();
        assert_eq!(built, names);
        let consumer = packages
            .iter()
            .find(|(_, bins)| bins.contains(&lambdas.consumer))
            .unwrap();
        assert_eq!(
            consumer.1,
            std::slice::from_ref(&lambdas.consumer),
            "{packages:?}"
        );
    }

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
    fn build_machine_paths_are_found_with_their_context() {
        let mut binary = b"\x7fELF\0\0panicked at /build/crates/consumer/src/lib.rs\0".to_vec();
        binary.extend_from_slice(b"\0\x01/home/ci/.cargo/registry/src/index/ring-0.17/x.c\0");
        binary.extend_from_slice(b"/nix/store/abc-vendor-cargo-deps/c\0/nix/store/def\0");
        let paths: Vec<PathBuf> = [
            "/home/ci/.cargo",
            "/home/ci/.cargo/registry/",
            "/nix/store",
            "/work/orderflow",
            "/",
            "",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        let found = build_machine_paths(&binary, &paths);
        assert_eq!(found.len(), 3, "{found:#?}");
        assert!(
            found[0].starts_with("/home/ci/.cargo (1 times, first at byte 54: "),
            "{}",
            found[0]
        );
        assert!(found[0].contains("ring-0.17/x.c"), "{}", found[0]);
        assert!(found[1].starts_with("/home/ci/.cargo/registry/ (1 times"));
        assert!(found[2].starts_with("/nix/store (2 times"), "{}", found[2]);
        // The remapped names are not build-machine paths.
        assert!(build_machine_paths(b"/build/src/main.rs /cargo/registry", &paths).is_empty());
    }

    // The host's test binary is an ELF only on Linux (`nix flake check` also runs on macOS).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_newest_glibc_of_this_test_binary_is_found() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let (major, minor) = newest_glibc(&me).unwrap().expect("a glibc binary");
        assert_eq!(major, 2);
        assert!(minor >= 2, "{minor}");
    }
}
