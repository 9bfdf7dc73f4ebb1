//! Golden results for the shipped queries (`sql/queries/`), without the twin: the orders of a
//! fixed seed become each table's rows (the domain's Hive rows, as the transformers emit them),
//! Parquet files under their `year=/month=/day=` partitions (the twin's conversion and writer),
//! and each query's CSV result is compared with `tests/fixtures/golden/<query>.csv`.
//!
//! A change to a query, the generator or the tables shows up here as a diff of a small file.
//! After checking the diff is what you meant, rewrite the files with
//! `ORDERFLOW_BLESS=1 cargo test -p orderflow-twin --test golden_sql`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use orderflow_domain::{GeneratorConfig, OrderGenerator, Partition, Table};
use orderflow_twin::analytics;
use orderflow_twin::delivery::conversion::RowBatchBuilder;
use orderflow_twin::delivery::conversion::parquet_bytes;
use orderflow_twin::settings::PipelineSettings;

/// The generator's seed and how many orders: enough that every query has ties to break and
/// several partitions to read, small enough to read the results.
const SEED: u64 = 2024;
const ORDERS: usize = 400;

fn golden_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden")
}

/// Writes each table's rows of `ORDERS` generated orders as one Parquet file per partition.
fn write_bucket(root: &Path, extension: &str) {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(SEED));
    let orders: Vec<_> = (0..ORDERS).map(|_| generator.next_order()).collect();
    for table in Table::ALL {
        let mut partitions: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        for order in &orders {
            let rows = partitions
                .entry(Partition::of(&order.order_date).hive_path())
                .or_default();
            table.write_rows(order, rows);
        }
        for (path, rows) in partitions {
            let mut builder = RowBatchBuilder::new(table);
            let count = builder
                .push_record(&rows)
                .expect("the domain's rows convert");
            assert!(count > 0, "{table} {path}: rows");
            let folder = root.join(table.name()).join(&path);
            std::fs::create_dir_all(&folder).unwrap();
            let file = folder.join(format!("golden-0{extension}"));
            std::fs::write(&file, parquet_bytes(&builder.finish()).unwrap()).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shipped_query_gives_its_golden_result() {
    let settings = PipelineSettings::built_in();
    let bucket = tempfile::tempdir().unwrap();
    let extension = &settings.delivery.file_extension;
    write_bucket(bucket.path(), extension);
    let context = analytics::session(
        bucket.path(),
        extension,
        settings.athena.partition_projection_years,
    )
    .await
    .unwrap();
    let bless = std::env::var_os("ORDERFLOW_BLESS").is_some();
    let queries = analytics::queries(None).unwrap();
    assert!(!queries.is_empty(), "sql/queries holds queries");
    let mut golden_files: Vec<String> = std::fs::read_dir(golden_dir())
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    golden_files.sort();
    let mut expected_files: Vec<String> = queries
        .iter()
        .map(|(name, _)| format!("{name}.csv"))
        .collect();
    expected_files.sort();
    let mut differences = Vec::new();
    for (name, text) in &queries {
        let result = analytics::run(&context, text)
            .await
            .unwrap_or_else(|error| panic!("query {name}: {error:#}"));
        assert!(
            result.rows() > 0,
            "query {name} returns rows on {ORDERS} orders"
        );
        let csv = result.to_csv().unwrap();
        let file = golden_dir().join(format!("{name}.csv"));
        if bless {
            std::fs::create_dir_all(golden_dir()).unwrap();
            std::fs::write(&file, &csv).unwrap();
            continue;
        }
        let golden = std::fs::read_to_string(&file).unwrap_or_else(|error| {
            panic!(
                "{}: {error} (write it with ORDERFLOW_BLESS=1)",
                file.display()
            )
        });
        if golden != csv {
            differences.push(format!(
                "query {name}: result differs from {}\n--- golden\n{golden}--- now\n{csv}",
                file.display()
            ));
        }
    }
    if !bless {
        assert_eq!(
            golden_files, expected_files,
            "one golden file per shipped query, and no other"
        );
    }
    assert!(differences.is_empty(), "{}", differences.join("\n"));
}
