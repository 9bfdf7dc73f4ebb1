//! The pipeline settings shared with OpenTofu (`tofu/pipeline.json`, design.md section 7): the twin
//! reads the same file the deployment loads, so it batches, retries and buffers like the
//! deployment does.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

/// `tofu/pipeline.json` as built into the binary; `--settings FILE` reads another copy.
pub const PIPELINE_JSON: &str = include_str!("../../../tofu/pipeline.json");

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
    /// Retries of a failing batch before it goes to the failure store.
    pub maximum_retry_attempts: u32,
    /// Records older than this go to the failure store instead of being retried.
    pub maximum_record_age_seconds: u64,
    /// Split a failing batch in two and retry the halves.
    pub bisect_batch_on_function_error: bool,
    /// The Lambda timeout: the handler's deadline.
    pub timeout_seconds: u64,
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

    /// Rejects settings AWS would reject.
    pub fn check(&self) -> Result<()> {
        anyhow::ensure!(
            (1..=10_000).contains(&self.consumer.batch_size),
            "consumer.batch_size must be 1 to 10000"
        );
        anyhow::ensure!(
            self.stream.shard_count >= 1,
            "stream.shard_count must be at least 1"
        );
        anyhow::ensure!(
            self.delivery.buffering_size_mb >= 1,
            "delivery.buffering_size_mb must be at least 1"
        );
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
