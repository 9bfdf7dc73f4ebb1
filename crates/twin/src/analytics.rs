//! SQL over the bucket with DataFusion: the four tables of the table file, registered with their
//! Hive partition columns, so a filter on `year`/`month`/`day` reads only those folders.
//!
//! Athena finds partitions by partition projection (`tofu/modules/catalog/main.tf`): integer
//! ranges with zero-padding, years from `athena.partition_projection_years`, months 1 to 12, days
//! 1 to 31. A folder outside those ranges (`year=2019`, `month=6`) is stored but invisible to
//! Athena. So each table here is a view that applies the same projection over the raw listing
//! table, which stays reachable as `bucket.<table>` to see what the bucket holds.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::catalog::MemorySchemaProvider;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use orderflow_domain::{Table, table_file};

use crate::delivery::conversion::table_schema;
use crate::settings::YearRange;

/// The schema holding the raw listing tables (every folder of the bucket).
pub const RAW_SCHEMA: &str = "bucket";

/// The queries shipped with the project (`sql/queries/*.sql`), built into the binary: name and text.
pub const BUILT_IN_QUERIES: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/queries.rs"));

/// A session with the four tables registered over the bucket folder `root`, each showing the
/// partitions Athena's projection over `years` shows (module docs).
pub async fn session(
    root: &Path,
    file_extension: &str,
    years: YearRange,
) -> Result<SessionContext> {
    let context =
        SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    let partition_keys = &table_file().partition_keys;
    let partition_columns: Vec<(String, DataType)> = partition_keys
        .iter()
        .map(|column| (column.name.clone(), DataType::Utf8))
        .collect();
    context
        .catalog("datafusion")
        .context("DataFusion's default catalog")?
        .register_schema(RAW_SCHEMA, Arc::new(MemorySchemaProvider::new()))?;
    let projection = projection_filter(partition_keys, years)?;
    for table in Table::ALL {
        let folder = root.join(table.name());
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("creating {}", folder.display()))?;
        let url = ListingTableUrl::parse(format!("{}/", folder.display()))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(file_extension)
            .with_table_partition_cols(partition_columns.clone());
        let config = ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(table_schema(table));
        let raw = format!("{RAW_SCHEMA}.{}", table.name());
        context.register_table(raw.as_str(), Arc::new(ListingTable::try_new(config)?))?;
        run(
            &context,
            &format!(
                "CREATE VIEW \"{}\" AS SELECT * FROM {raw} WHERE {projection}",
                table.name()
            ),
        )
        .await
        .with_context(|| format!("creating the view {}", table.name()))?;
    }
    Ok(context)
}

/// The SQL condition Athena's projection puts on the partition columns (in path order: year with
/// four digits in `years`, month with two digits 1 to 12, day with two digits 1 to 31; the ranges
/// and digits of `tofu/modules/catalog/main.tf`). Zero-padded values of equal length compare as
/// text the way they compare as numbers.
fn projection_filter(keys: &[orderflow_domain::Column], years: YearRange) -> Result<String> {
    let ranges = [
        (format!("{:04}", years.first), format!("{:04}", years.last)),
        ("01".to_owned(), "12".to_owned()),
        ("01".to_owned(), "31".to_owned()),
    ];
    anyhow::ensure!(
        keys.len() == ranges.len(),
        "sql/tables.json must have exactly the year, month and day partition keys the projection describes"
    );
    Ok(keys
        .iter()
        .zip(ranges)
        .map(|(key, (first, last))| {
            format!(
                "character_length(\"{name}\") = {digits} AND \"{name}\" BETWEEN '{first}' AND '{last}'",
                name = key.name,
                digits = first.len()
            )
        })
        .collect::<Vec<_>>()
        .join(" AND "))
}

/// The result of one query.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

impl QueryResult {
    /// Row count.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// A text table.
    pub fn to_table(&self) -> Result<String> {
        if self.rows() == 0 {
            let names: Vec<&str> = self
                .schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect();
            return Ok(format!("({}) no rows", names.join(", ")));
        }
        Ok(pretty_format_batches(&self.batches)?.to_string())
    }

    /// The rows as JSON objects; every value in its SQL display form (decimals keep their exact
    /// digits), `null` for NULL.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let options = FormatOptions::default();
        let mut rows = Vec::new();
        for batch in &self.batches {
            let formatters = batch
                .columns()
                .iter()
                .map(|column| ArrayFormatter::try_new(column.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                let mut object = serde_json::Map::new();
                for (index, field) in self.schema.fields().iter().enumerate() {
                    let value = if batch.column(index).is_null(row) {
                        serde_json::Value::Null
                    } else {
                        serde_json::Value::String(formatters[index].value(row).to_string())
                    };
                    object.insert(field.name().clone(), value);
                }
                rows.push(serde_json::Value::Object(object));
            }
        }
        Ok(serde_json::Value::Array(rows))
    }

    /// CSV with a header line.
    pub fn to_csv(&self) -> Result<String> {
        let mut out = Vec::new();
        {
            let mut writer = datafusion::arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for batch in &self.batches {
                writer.write(batch)?;
            }
        }
        Ok(String::from_utf8(out)?)
    }
}

/// Runs one SQL statement.
pub async fn run(context: &SessionContext, sql: &str) -> Result<QueryResult> {
    result_of(context.sql(sql).await).await
}

/// The rows of a planned statement.
async fn result_of(
    frame: datafusion::error::Result<datafusion::dataframe::DataFrame>,
) -> Result<QueryResult> {
    // DataFusion's errors repeat their sources in their own message: keep one copy.
    let plain =
        |error: datafusion::error::DataFusionError| anyhow::anyhow!(error.strip_backtrace());
    let frame = frame.map_err(plain)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(plain)?;
    Ok(QueryResult { schema, batches })
}

/// Runs one SQL statement that only reads: no DDL (`CREATE EXTERNAL TABLE`), no DML (`COPY TO`,
/// `INSERT`) and no statements (`SET`), for the web console.
pub async fn run_read_only(context: &SessionContext, sql: &str) -> Result<QueryResult> {
    let options = datafusion::execution::context::SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    result_of(context.sql_with_options(sql, options).await).await
}

/// The queries in `dir` (`*.sql`, by name), or the built-in ones when `dir` does not exist.
pub fn queries(dir: Option<&Path>) -> Result<Vec<(String, String)>> {
    match dir {
        Some(dir) if dir.is_dir() => {
            let mut files: Vec<_> = std::fs::read_dir(dir)?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|path| path.extension().is_some_and(|e| e == "sql"))
                .collect();
            files.sort();
            files
                .into_iter()
                .map(|path| {
                    let name = path
                        .file_stem()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned();
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    Ok((name, text))
                })
                .collect()
        }
        _ => Ok(BUILT_IN_QUERIES
            .iter()
            .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
            .collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delivery::conversion::RowBatchBuilder;
    use crate::delivery::conversion::parquet_bytes;
    use orderflow_domain::{GeneratorConfig, OrderGenerator};

    /// Issue 11, item 10: Athena's partition projection hides folders outside its ranges (years
    /// not in `athena.partition_projection_years`, months and days without zero-padding); the
    /// twin's tables hide the same ones, and `bucket.<table>` still shows every folder.
    /// The console's queries read only: a statement that would write a file, create a table or
    /// change a setting is refused, and writes nothing.
    #[tokio::test]
    async fn read_only_queries_refuse_writes() {
        let root = tempfile::tempdir().unwrap();
        let years = crate::settings::PipelineSettings::built_in()
            .athena
            .partition_projection_years;
        let context = session(root.path(), ".parquet", years).await.unwrap();
        let target = root.path().join("copied.csv");
        for statement in [
            format!("COPY (SELECT 1 AS n) TO '{}'", target.display()),
            format!(
                "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '{}'",
                root.path().display()
            ),
            "SET datafusion.execution.batch_size = 1".to_owned(),
        ] {
            assert!(
                run_read_only(&context, &statement).await.is_err(),
                "{statement}"
            );
        }
        assert!(!target.exists());
        let result = run_read_only(&context, "SELECT 1 AS n").await.unwrap();
        assert_eq!(result.rows(), 1);
    }

    #[tokio::test]
    async fn tables_show_only_the_partitions_athenas_projection_shows() {
        let root = tempfile::tempdir().unwrap();
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(7));
        let folders = [
            ("year=2020/month=01/day=01", true),
            ("year=2040/month=12/day=31", true),
            ("year=2019/month=12/day=31", false),
            ("year=2041/month=01/day=01", false),
            ("year=2024/month=6/day=08", false),
            ("year=2024/month=13/day=08", false),
            ("year=2024/month=06/day=32", false),
            ("year=02024/month=06/day=08", false),
        ];
        for (folder, _) in folders {
            let mut rows = Vec::new();
            let count = Table::Orders.write_rows(&generator.next_order(), &mut rows);
            let mut builder = RowBatchBuilder::new(Table::Orders);
            assert_eq!(builder.push_record(&rows), Ok(count));
            let dir = root.path().join("orders").join(folder);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("part.parquet"),
                parquet_bytes(&builder.finish()).unwrap(),
            )
            .unwrap();
        }
        let years = YearRange {
            first: 2020,
            last: 2040,
        };
        let context = session(root.path(), ".parquet", years).await.unwrap();
        let seen = |sql: &str| {
            let context = context.clone();
            let sql = sql.to_owned();
            async move {
                let result = run(&context, &sql).await.unwrap();
                let rows = result.to_json().unwrap();
                rows.as_array()
                    .unwrap()
                    .iter()
                    .map(|row| {
                        format!(
                            "year={}/month={}/day={}",
                            row["year"].as_str().unwrap(),
                            row["month"].as_str().unwrap(),
                            row["day"].as_str().unwrap()
                        )
                    })
                    .collect::<std::collections::BTreeSet<_>>()
            }
        };
        let visible: std::collections::BTreeSet<_> = folders
            .iter()
            .filter(|(_, visible)| *visible)
            .map(|(folder, _)| (*folder).to_owned())
            .collect();
        assert_eq!(seen("SELECT year, month, day FROM orders").await, visible);
        assert_eq!(
            seen("SELECT year, month, day FROM bucket.orders")
                .await
                .len(),
            folders.len()
        );
        // A filter on the partition columns still works through the view.
        assert_eq!(
            seen("SELECT year, month, day FROM orders WHERE year = '2040'").await,
            ["year=2040/month=12/day=31".to_owned()].into()
        );
    }
}
