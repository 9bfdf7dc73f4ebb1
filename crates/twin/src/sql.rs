//! SQL over the bucket with DataFusion: the four tables of the table file, registered with their
//! Hive partition columns, so a filter on `year`/`month`/`day` reads only those folders.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::{SessionConfig, SessionContext};
use orderflow_domain::{Table, table_file};

use crate::columnar::table_schema;

/// The queries shipped with the project (`sql/queries/*.sql`), built into the binary: name and text.
pub const BUILT_IN_QUERIES: &[(&str, &str)] = &include!(concat!(env!("OUT_DIR"), "/queries.rs"));

/// A session with the four tables registered over the bucket folder `root`.
pub async fn session(root: &Path, file_extension: &str) -> Result<SessionContext> {
    let context =
        SessionContext::new_with_config(SessionConfig::new().with_information_schema(true));
    let partition_columns: Vec<(String, DataType)> = table_file()
        .partition_keys
        .iter()
        .map(|column| (column.name.clone(), DataType::Utf8))
        .collect();
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
        context.register_table(table.name(), Arc::new(ListingTable::try_new(config)?))?;
    }
    Ok(context)
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
    // DataFusion's errors repeat their sources in their own message: keep one copy.
    let plain =
        |error: datafusion::error::DataFusionError| anyhow::anyhow!(error.strip_backtrace());
    let frame = context.sql(sql).await.map_err(plain)?;
    let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
    let batches = frame.collect().await.map_err(plain)?;
    Ok(QueryResult { schema, batches })
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
