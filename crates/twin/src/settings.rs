//! The pipeline settings shared with OpenTofu (`tofu/pipeline.json`, `docs/design.md` section 7): the twin
//! reads the same file the deployment loads, so it batches, retries and buffers like the
//! deployment does.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

/// `tofu/pipeline.json` as built into the binary; `--settings FILE` reads another copy.
pub const PIPELINE_JSON: &str = include_str!("../../../tofu/pipeline.json");

/// `tofu/lambdas.json`, the Lambdas' names (also read by OpenTofu, the flake, xtask and CI):
/// each is a Cargo binary, its zip and the function's name after the resource prefix.
pub const LAMBDAS_JSON: &str = include_str!("../../../tofu/lambdas.json");

/// The Lambdas' names, from [`LAMBDAS_JSON`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct LambdaNames {
    /// The consumer's name.
    pub consumer: String,
    /// Each table's transformer, by table name.
    pub transformers: std::collections::BTreeMap<String, String>,
}

impl LambdaNames {
    /// The names built into the binary.
    pub fn built_in() -> Self {
        serde_json::from_str(LAMBDAS_JSON).expect("tofu/lambdas.json is valid (tested)")
    }

    /// The transformer of `table`.
    pub fn transformer(&self, table: orderflow_domain::Table) -> &str {
        self.transformers
            .get(table.name())
            .map(String::as_str)
            .expect("tofu/lambdas.json names a transformer for every table (tested)")
    }
}

/// The settings the twin uses (the file holds more, for OpenTofu only).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct PipelineSettings {
    /// The Kinesis stream.
    pub stream: StreamSettings,
    /// The consumer's event source mapping.
    pub consumer: ConsumerSettings,
    /// The four Firehose delivery streams.
    pub delivery: DeliverySettings,
    /// The ingestion API.
    pub api: ApiSettings,
    /// Athena (the twin's SQL).
    pub athena: AthenaSettings,
}

/// Stream settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StreamSettings {
    /// Shards (each owns an even slice of the 128-bit hash-key space).
    pub shard_count: u32,
    /// How long records stay readable.
    pub retention_hours: u32,
}

/// Event source mapping settings of the consumer Lambda.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConsumerSettings {
    /// Records per invocation at most.
    pub batch_size: usize,
    /// How long to gather records before invoking with a partial batch.
    pub maximum_batching_window_seconds: u64,
    /// Retries of a failing batch before it goes to the failure store; `-1`: until the records
    /// expire (AWS's "infinite").
    pub maximum_retry_attempts: i64,
    /// Records older than this go to the failure store instead of being retried; `-1`: no limit
    /// (AWS's "infinite", the records then live until the stream's retention trims them).
    pub maximum_record_age_seconds: i64,
    /// Split a failing batch in two and retry the halves.
    pub bisect_batch_on_function_error: bool,
    /// The Lambda timeout: the handler's deadline.
    pub timeout_seconds: u64,
    /// Concurrent batches per shard (AWS: 1 to 10). The twin runs one poller per shard, so only
    /// 1 is emulated; other values are refused by [`PipelineSettings::check`].
    pub parallelization_factor: u32,
    /// Where a new mapping starts reading. The twin emulates `TRIM_HORIZON` only.
    pub starting_position: String,
    /// Whether the consumer reads through an enhanced fan-out consumer: with Kinesis' limits on
    /// ([`crate::limits`]), its own 2 MiB per second per shard; without, it shares each shard's
    /// five reads and 2 MiB per second with the four delivery streams.
    pub enhanced_fan_out: bool,
}

impl ConsumerSettings {
    /// Retries before a failing batch goes to the failure store; `None` for AWS's `-1`.
    pub fn retry_limit(&self) -> Option<u32> {
        u32::try_from(self.maximum_retry_attempts).ok()
    }

    /// The record age limit; `None` for AWS's `-1`.
    pub fn max_record_age(&self) -> Option<Duration> {
        u64::try_from(self.maximum_record_age_seconds)
            .ok()
            .map(Duration::from_secs)
    }
}

/// Firehose settings, the same for the four delivery streams.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct DeliverySettings {
    /// Output buffer size that triggers a delivery.
    pub buffering_size_mb: u64,
    /// Output buffer age that triggers a delivery.
    pub buffering_interval_seconds: u64,
    /// Bytes gathered before the transformer is invoked.
    pub processor_buffer_size_mb: u64,
    /// Firehose's processor buffer interval (AWS: 60 to 900 s). Range-checked; the twin invokes
    /// the transformer as soon as it has read what the stream holds, so it never waits this long
    /// (README, "How the twin differs").
    pub processor_buffer_interval_seconds: u64,
    /// Object prefix with `{table}` and `!{partitionKeyFromLambda:...}` placeholders.
    pub prefix: String,
    /// Error prefix with `{table}`, `!{firehose:error-output-type}` and `!{timestamp:...}`.
    pub error_output_prefix: String,
    /// Object name suffix.
    pub file_extension: String,
}

/// API settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ApiSettings {
    /// Orders per batch request at most.
    pub max_batch_orders: usize,
}

/// Athena settings.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct AthenaSettings {
    /// The years Athena's partition projection enumerates; the twin's SQL tables show only
    /// these, as Athena does.
    pub partition_projection_years: YearRange,
}

/// A range of years, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct YearRange {
    /// The first year.
    pub first: u32,
    /// The last year.
    pub last: u32,
}

impl PipelineSettings {
    /// The settings built into the binary.
    pub fn built_in() -> Self {
        serde_json::from_str(PIPELINE_JSON).expect("tofu/pipeline.json is valid (tested)")
    }

    /// Reads a settings file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the pipeline settings {}", path.display()))?;
        let settings: Self = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a valid pipeline settings file", path.display()))?;
        settings
            .check()
            .with_context(|| format!("in {}", path.display()))?;
        Ok(settings)
    }

    /// Rejects settings AWS would reject (the ranges of the Lambda CreateEventSourceMapping,
    /// Kinesis and Firehose API references), and settings the twin cannot emulate, each with
    /// the key, the value and the allowed range.
    pub fn check(&self) -> Result<()> {
        let c = &self.consumer;
        let d = &self.delivery;
        let mut problems = Vec::new();
        let mut range = |key: &str, value: i64, min: i64, max: i64| {
            if !(min..=max).contains(&value) {
                problems.push(format!("{key} is {value}: must be {min} to {max}"));
            }
        };
        range(
            "stream.shard_count",
            self.stream.shard_count.into(),
            1,
            10_000,
        );
        // Kinesis retention: 24 hours to 365 days.
        range(
            "stream.retention_hours",
            self.stream.retention_hours.into(),
            24,
            8_760,
        );
        range("consumer.batch_size", c.batch_size as i64, 1, 10_000);
        // PutRecords takes at most 500 records (the ingestion_api module's validation).
        range(
            "api.max_batch_orders",
            self.api.max_batch_orders as i64,
            1,
            orderflow_api::MAX_BATCH_ORDERS as i64,
        );
        range(
            "consumer.maximum_batching_window_seconds",
            c.maximum_batching_window_seconds as i64,
            0,
            300,
        );
        range(
            "consumer.maximum_retry_attempts",
            c.maximum_retry_attempts,
            -1,
            10_000,
        );
        range("consumer.timeout_seconds", c.timeout_seconds as i64, 1, 900);
        range(
            "consumer.parallelization_factor",
            c.parallelization_factor.into(),
            1,
            10,
        );
        // Firehose BufferingHints: 1 to 128 MiB and 0 to 900 s; zero buffering is not available
        // with dynamic partitioning ("Buffer data for dynamic partitioning"), and record format
        // conversion needs a buffer of at least 64 MiB.
        range(
            "delivery.buffering_size_mb",
            d.buffering_size_mb as i64,
            64,
            128,
        );
        range(
            "delivery.buffering_interval_seconds",
            d.buffering_interval_seconds as i64,
            1,
            900,
        );
        // Lambda processor parameters: BufferSizeInMBs 0.2 to 3, BufferIntervalInSeconds 60 to 900.
        range(
            "delivery.processor_buffer_size_mb",
            d.processor_buffer_size_mb as i64,
            1,
            3,
        );
        range(
            "delivery.processor_buffer_interval_seconds",
            d.processor_buffer_interval_seconds as i64,
            60,
            900,
        );
        // The catalog module's validation (tofu/modules/catalog/variables.tf): four-digit years,
        // the `digits = 4` of the projection.
        let years = self.athena.partition_projection_years;
        if !(1970 <= years.first && years.first <= years.last && years.last <= 9999) {
            problems.push(format!(
                "athena.partition_projection_years is {} to {}: needs 1970 <= first <= last <= 9999",
                years.first, years.last
            ));
        }
        if c.maximum_record_age_seconds != -1
            && !(60..=604_800).contains(&c.maximum_record_age_seconds)
        {
            problems.push(format!(
                "consumer.maximum_record_age_seconds is {}: must be -1 (no limit) or 60 to 604800",
                c.maximum_record_age_seconds
            ));
        }
        match c.starting_position.as_str() {
            "TRIM_HORIZON" => {}
            "LATEST" | "AT_TIMESTAMP" => problems.push(format!(
                "consumer.starting_position is {}: the twin emulates TRIM_HORIZON only (use a --settings copy with TRIM_HORIZON)",
                c.starting_position
            )),
            other => problems.push(format!(
                "consumer.starting_position is {other:?}: must be TRIM_HORIZON, LATEST or AT_TIMESTAMP"
            )),
        }
        if c.parallelization_factor > 1 && c.parallelization_factor <= 10 {
            problems.push(format!(
                "consumer.parallelization_factor is {}: the twin emulates 1 only (one batch per shard at a time)",
                c.parallelization_factor
            ));
        }
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        Ok(())
    }

    /// The consumer's batching window.
    pub fn batching_window(&self) -> Duration {
        Duration::from_secs(self.consumer.maximum_batching_window_seconds)
    }

    /// The Firehose buffering interval.
    pub fn buffering_interval(&self) -> Duration {
        Duration::from_secs(self.delivery.buffering_interval_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(edit: impl FnOnce(&mut serde_json::Value)) -> Result<PipelineSettings> {
        let mut value: serde_json::Value = serde_json::from_str(PIPELINE_JSON).unwrap();
        edit(&mut value);
        let settings: PipelineSettings = serde_json::from_value(value)?;
        settings.check()?;
        Ok(settings)
    }

    /// Issue 11, item 8: AWS's ranges are enforced, `-1` means "infinite", and keys the twin
    /// cannot emulate are refused by name instead of being ignored.
    #[test]
    fn settings_out_of_aws_ranges_or_not_emulated_are_refused_by_name() {
        let refused = |edit: fn(&mut serde_json::Value), key: &str| {
            let error = with(edit).unwrap_err().to_string();
            assert!(error.contains(key), "{key}: {error}");
        };
        refused(
            |v| v["delivery"]["buffering_size_mb"] = 5.into(),
            "delivery.buffering_size_mb is 5",
        );
        refused(
            |v| v["consumer"]["maximum_record_age_seconds"] = 30.into(),
            "maximum_record_age_seconds is 30",
        );
        refused(
            |v| v["consumer"]["maximum_retry_attempts"] = (-2).into(),
            "maximum_retry_attempts is -2",
        );
        refused(
            |v| v["consumer"]["parallelization_factor"] = 2.into(),
            "parallelization_factor is 2",
        );
        refused(
            |v| v["consumer"]["starting_position"] = "LATEST".into(),
            "starting_position is LATEST",
        );
        refused(
            |v| v["delivery"]["processor_buffer_interval_seconds"] = 10.into(),
            "processor_buffer_interval_seconds is 10",
        );
        refused(
            |v| v["api"]["max_batch_orders"] = 501.into(),
            "api.max_batch_orders is 501: must be 1 to 500",
        );
        refused(
            |v| v["athena"]["partition_projection_years"]["first"] = 2050.into(),
            "athena.partition_projection_years is 2050 to 2040",
        );

        let infinite = with(|v| {
            v["consumer"]["maximum_retry_attempts"] = (-1).into();
            v["consumer"]["maximum_record_age_seconds"] = (-1).into();
        })
        .unwrap();
        assert_eq!(infinite.consumer.retry_limit(), None);
        assert_eq!(infinite.consumer.max_record_age(), None);
        let built_in = PipelineSettings::built_in();
        assert_eq!(built_in.consumer.retry_limit(), Some(5));
        assert_eq!(
            built_in.consumer.max_record_age(),
            Some(Duration::from_secs(3600))
        );
    }

    #[test]
    fn every_table_has_a_transformer_name() {
        let names = LambdaNames::built_in();
        for table in orderflow_domain::Table::ALL {
            assert!(!names.transformer(table).is_empty());
        }
        assert_eq!(names.transformers.len(), orderflow_domain::Table::ALL.len());
    }

    #[test]
    fn built_in_settings_are_the_tofu_file_and_valid() {
        let settings = PipelineSettings::built_in();
        settings.check().unwrap();
        assert!(settings.delivery.prefix.contains("{table}"));
        assert!(
            settings
                .delivery
                .prefix
                .contains("!{partitionKeyFromLambda:year}")
        );
    }
}
