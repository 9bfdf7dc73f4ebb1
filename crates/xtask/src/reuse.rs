//! Whether one Cargo build reuses another's compiled units: the demo's build ([`crate::DEMO_BUILD`])
//! against `cargo test --workspace`, compared on Cargo's unit graphs (`--unit-graph`, nightly
//! Cargo, which resolves and plans a build without running it).
//!
//! A unit is one compilation: a package's target in a mode, with its features and profile.
//! Cargo reuses a compiled unit when all of these agree (the profile's name aside: the `test`
//! profile builds dependencies exactly as `dev` does).

use std::collections::BTreeSet;

use serde_json::Value;

/// What makes two units the same compilation.
fn unit_key(unit: &Value) -> String {
    let mut profile = unit["profile"].clone();
    if let Some(profile) = profile.as_object_mut() {
        profile.remove("name");
    }
    let mut features: Vec<&str> = unit["features"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    features.sort_unstable();
    format!(
        "{} {} {} {} [{}] {} {}",
        unit["pkg_id"],
        unit["target"]["name"],
        unit["target"]["kind"],
        unit["mode"],
        features.join(","),
        profile,
        unit["platform"],
    )
}

/// The units of `first` that `second` does not build the same way, as `package target mode`
/// (empty: `second` reuses everything `first` compiled).
pub(crate) fn not_reused(first: &Value, second: &Value) -> Vec<String> {
    let units =
        |graph: &Value| -> Vec<Value> { graph["units"].as_array().cloned().unwrap_or_default() };
    let planned: BTreeSet<String> = units(second).iter().map(unit_key).collect();
    units(first)
        .iter()
        .filter(|unit| !planned.contains(&unit_key(unit)))
        .map(|unit| {
            format!(
                "{} {} {}",
                unit["pkg_id"].as_str().unwrap_or_default(),
                unit["target"]["name"].as_str().unwrap_or_default(),
                unit["mode"].as_str().unwrap_or_default()
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use serde_json::{Value, json};

    use super::not_reused;

    fn unit(package: &str, features: &[&str], debuginfo: u32, profile: &str) -> Value {
        json!({
            "pkg_id": package,
            "target": { "name": package, "kind": ["lib"] },
            "mode": "build",
            "features": features,
            "profile": { "name": profile, "debuginfo": debuginfo, "opt_level": "0" },
            "platform": null,
        })
    }

    #[test]
    fn a_unit_differing_in_features_or_profile_is_not_reused_but_the_profile_name_does_not_matter()
    {
        let demo = json!({ "units": [
            unit("a", &["x", "y"], 2, "dev"),
            unit("b", &["x"], 2, "dev"),
            unit("c", &[], 0, "dev"),
        ]});
        let test = json!({ "units": [
            unit("a", &["y", "x"], 2, "test"),
            unit("b", &["x", "serde"], 2, "test"),
            unit("c", &[], 2, "test"),
        ]});
        assert_eq!(not_reused(&demo, &test), ["b b build", "c c build"]);
        assert!(not_reused(&demo, &demo).is_empty());
    }

    /// Cargo's plan for `cargo <args>` in the repository, or None without nightly Cargo.
    fn unit_graph(args: &[&str]) -> Option<Value> {
        let scratch = tempfile::tempdir().expect("a temporary directory");
        let output = Command::new("cargo")
            .arg("+nightly")
            .args(args)
            .args(["--unit-graph", "-Z", "unstable-options"])
            .current_dir(crate::root())
            // Its own target directory: the plan writes nothing there, and the outer cargo
            // holds the lock of the usual one.
            .env("CARGO_TARGET_DIR", scratch.path())
            .output()
            .ok()?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(
                stderr.contains("toolchain") && stderr.contains("nightly"),
                "cargo +nightly {args:?} --unit-graph failed: {stderr}"
            );
            return None;
        }
        Some(serde_json::from_slice(&output.stdout).expect("the unit graph is JSON"))
    }

    /// `cargo xtask test` after `cargo xtask demo` compiles nothing the demo already compiled
    /// (issue 12 item 8). Needs nightly Cargo for `--unit-graph` (CI has it: the fuzz step).
    #[test]
    fn the_test_build_reuses_every_unit_of_the_demo_build() {
        let mut demo_args = vec!["build"];
        demo_args.extend(crate::DEMO_BUILD);
        let (Some(demo), Some(test)) = (
            unit_graph(&demo_args),
            unit_graph(&["test", "--locked", "--workspace", "--no-run"]),
        ) else {
            eprintln!("SKIPPED: no nightly Cargo for --unit-graph; the reuse was not checked");
            return;
        };
        let missing = not_reused(&demo, &test);
        assert!(
            missing.is_empty(),
            "cargo test --workspace would compile again {} units the demo's build compiled: {missing:#?}",
            missing.len()
        );
    }
}
