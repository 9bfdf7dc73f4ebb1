//! `tofu/lambdas.json` is the one list of the Lambdas' names (issue 12, item 2): the Cargo
//! binaries, the zips, the function names after the resource prefix. These tests tie it to the
//! Cargo `[[bin]]` entries and to the binaries' tables, and check that no reader copies a name.

mod support;

use std::collections::BTreeSet;

use orderflow_domain::Table;
use support::{read, read_json};

fn names_file() -> (String, Vec<(String, String)>) {
    let file = read_json("tofu/lambdas.json");
    let consumer = file["consumer"].as_str().expect("consumer").to_owned();
    let transformers = file["transformers"]
        .as_object()
        .expect("transformers")
        .iter()
        .map(|(table, name)| (table.clone(), name.as_str().expect("a name").to_owned()))
        .collect();
    (consumer, transformers)
}

/// The `[[bin]]` entries of a crate: name and path.
fn bins(crate_dir: &str) -> Vec<(String, String)> {
    let manifest: toml::Table = read(&format!("{crate_dir}/Cargo.toml"))
        .parse()
        .expect("a valid Cargo.toml");
    manifest["bin"]
        .as_array()
        .expect("[[bin]] entries")
        .iter()
        .map(|bin| {
            (
                bin["name"].as_str().expect("a name").to_owned(),
                bin["path"].as_str().expect("a path").to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_names_file_is_the_cargo_binaries_and_each_transformer_writes_its_table() {
    let (consumer, transformers) = names_file();
    let consumer_bins: Vec<String> = bins("crates/consumer")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    assert_eq!(consumer_bins, [consumer]);

    let tables: BTreeSet<&str> = Table::ALL.iter().map(|table| table.name()).collect();
    let named: BTreeSet<&str> = transformers
        .iter()
        .map(|(table, _)| table.as_str())
        .collect();
    assert_eq!(
        named, tables,
        "one transformer per table of sql/tables.json"
    );

    let transformer_bins = bins("crates/transformer");
    assert_eq!(
        transformer_bins
            .iter()
            .map(|(name, _)| name.as_str())
            .collect::<BTreeSet<_>>(),
        transformers
            .iter()
            .map(|(_, name)| name.as_str())
            .collect::<BTreeSet<_>>(),
        "crates/transformer's [[bin]] entries"
    );
    for (table, name) in &transformers {
        let (_, path) = transformer_bins
            .iter()
            .find(|(bin, _)| bin == name)
            .expect("checked above");
        let source = read(&format!("crates/transformer/{path}"));
        let variant = Table::ALL
            .into_iter()
            .find(|t| t.name() == table)
            .map(|t| format!("Table::{t:?}"))
            .expect("checked above");
        assert!(
            source.contains(&variant),
            "{path} (the binary {name}) must run the {table} transformer ({variant})"
        );
    }
}

/// The readers take the names from the file: none of them spells one out.
#[test]
fn no_reader_copies_a_lambda_name() {
    let (_, transformers) = names_file();
    let readers = [
        "flake.nix",
        ".ci/nix-checks",
        ".github/workflows/ci.yml",
        ".github/workflows/deploy.yml",
        "tofu/main.tf",
        "crates/xtask/src/lambdas.rs",
        "crates/xtask/src/rehearse.rs",
        "crates/xtask/src/smoke.rs",
        "crates/twin/src/twin.rs",
    ];
    for reader in readers {
        let text = read(reader);
        assert!(
            text.contains("lambdas.json")
                || text.contains("Lambdas::read")
                || text.contains("LambdaNames"),
            "{reader} should read tofu/lambdas.json"
        );
        for (_, name) in &transformers {
            assert!(!text.contains(name.as_str()), "{reader} spells out {name}");
        }
        assert!(
            !text.contains("transform-${") && !text.contains("\"transform-\""),
            "{reader} rebuilds a transformer name from its table"
        );
    }
}
