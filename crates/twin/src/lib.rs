//! The local twin: the whole orderflow pipeline on one machine, offline.
//!
//! The real handlers (the consumer's [`orderflow_consumer::handle_batch`], the transformers'
//! [`orderflow_transformer::transform`]) run in process behind the same JSON contracts Lambda
//! gives them; around them the twin provides what AWS provides:
//!
//! Where a module stands for an OpenTofu module, it has that module's name
//! (`tofu/modules/<name>` ↔ `crates/twin/src/<name>`):
//!
//! - [`ingestion_api`]: API Gateway, the [`orderflow_api::router`] writing to the stream;
//! - [`stream`]: a durable, sharded log with Kinesis semantics (redb), held to Kinesis'
//!   per-shard throughput limits ([`limits`]) unless they are turned off;
//! - [`consumer`]: Lambda's Kinesis event source mapping in front of the consumer (batching,
//!   `batchItemFailures`, bisection, retries, record age, failure store), and [`dynamodb`], the
//!   table it writes (dynalite, persisted under the data folder);
//! - [`delivery`]: one Firehose delivery stream per table (buffering, transformation, dynamic
//!   partitioning, strict JSON-to-Parquet conversion in [`delivery::conversion`], error output);
//! - [`storage`]: the S3 bucket through `object_store`;
//! - [`analytics`]: Athena's part, DataFusion over the bucket with the Glue tables of
//!   `sql/tables.json`;
//!
//! and, twin-only:
//!
//! - [`console`]: the web console at `/`;
//! - [`redrive`]: failed records through the pipeline again;
//! - [`status`]: where every record is; [`health`]: what each part is doing (up, restarting,
//!   down) as its supervisor reports it.
//!
//! [`settings`] reads the pipeline settings OpenTofu deploys with; [`twin`] starts and stops it all;
//! [`data_folder`] says whether this twin can open a data folder (its format); [`demo`] is
//! `orderflow demo`'s acceptance run.

pub mod analytics;
pub mod console;
pub mod consumer;
pub mod data_folder;
pub mod delivery;
pub mod demo;
pub mod dynamodb;
pub mod health;
pub mod ingestion_api;
pub mod limits;
pub mod redrive;
pub mod settings;
pub mod status;
pub mod storage;
pub mod stream;
pub mod twin;

#[cfg(test)]
pub(crate) mod test_log;
