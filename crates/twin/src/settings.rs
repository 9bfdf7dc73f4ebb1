//! The pipeline settings shared with OpenTofu (`tofu/pipeline.json`, `docs/design.md` section 7): the twin
//! reads the same file the deployment loads, so it batches, retries and buffers like the
//! deployment does.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use serde::Deserialize;

/// `tofu/pipeline.json` as built into the binary; `--settings FILE` reads another copy.
pub const PIPELINE_JSON: &str = include_str!("../../../tofu/pipeline.json");

/// `tofu/pipeline.bounds.json`, the bounds of every number in [`PIPELINE_JSON`] (also checked
/// by OpenTofu's `modules/settings`): AWS's ranges and the design's (docs/design.md section 7).
pub const PIPELINE_BOUNDS_JSON: &str = include_str!("../../../tofu/pipeline.bounds.json");

/// One entry of [`PIPELINE_BOUNDS_JSON`].
#[derive(Debug, Deserialize)]
struct Bound {
    min: f64,
    max: Option<f64>,
    whole: bool,
    /// The only values allowed, where AWS takes a fixed list (log retention days).
    #[serde(default)]
    one_of: Option<Vec<f64>>,
    why: String,
}

/// The settings of `value` outside [`PIPELINE_BOUNDS_JSON`], each as "key is value: must be
/// ... (why)", in the words `tofu/modules/settings` uses; a bounded key that is missing or not
/// a number is a problem too. A bound on `section.*` applies to every key of `section`; a key
/// named in full as well must pass both.
fn out_of_bounds(value: &serde_json::Value) -> Vec<String> {
    #[derive(Deserialize)]
    struct File {
        bounds: std::collections::BTreeMap<String, Bound>,
    }
    let file: File = serde_json::from_str(PIPELINE_BOUNDS_JSON)
        .expect("tofu/pipeline.bounds.json is valid (tested)");
    let mut bounded: Vec<(String, &Bound)> = Vec::new();
    for (key, bound) in &file.bounds {
        match key.strip_suffix(".*") {
            Some(section) => bounded.extend(
                value[section]
                    .as_object()
                    .into_iter()
                    .flat_map(|fields| fields.keys())
                    .map(|name| (format!("{section}.{name}"), bound)),
            ),
            None => bounded.push((key.clone(), bound)),
        }
    }
    let mut problems = Vec::new();
    for (key, bound) in bounded {
        let found = key.split('.').fold(value, |value, part| &value[part]);
        let Some(number) = found.as_f64() else {
            problems.push(format!(
                "{key} is {found}: must be a number ({})",
                bound.why
            ));
            continue;
        };
        let within = number >= bound.min
            && bound.max.is_none_or(|max| number <= max)
            && (!bound.whole || number.fract() == 0.0)
            && bound
                .one_of
                .as_ref()
                .is_none_or(|values| values.contains(&number));
        if !within {
            let whole = if bound.whole { "a whole number " } else { "" };
            let range = match bound.max {
                Some(max) => format!("{} to {max}", bound.min),
                None => format!(">= {}", bound.min),
            };
            let listed = bound.one_of.as_ref().map_or_else(String::new, |values| {
                let values: Vec<String> = values.iter().map(f64::to_string).collect();
                format!(" and one of {}", values.join(", "))
            });
            problems.push(format!(
                "{key} is {found}: must be {whole}{range}{listed} ({})",
                bound.why
            ));
        }
    }
    problems
}

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
    /// Retries before a failing batch goes to the failure store; `None` for AWS's `-1` (which
    /// `tofu/pipeline.bounds.json` refuses, as the deployment does).
    pub fn retry_limit(&self) -> Option<u32> {
        u32::try_from(self.maximum_retry_attempts).ok()
    }

    /// The record age limit; `None` for AWS's `-1` (refused by the bounds, as above).
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
    pub processor_buffer_size_mb: f64,
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
        Self::from_value(serde_json::from_str(PIPELINE_JSON).expect("tofu/pipeline.json is JSON"))
            .expect("tofu/pipeline.json is within its bounds (tested)")
    }

    /// Reads a settings file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the pipeline settings {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("{} is not JSON", path.display()))?;
        Self::from_value(value).with_context(|| format!("in {}", path.display()))
    }

    /// Checks decoded settings against [`PIPELINE_BOUNDS_JSON`], then reads them and refuses
    /// what the twin cannot emulate ([`Self::check`]).
    pub fn from_value(value: serde_json::Value) -> Result<Self> {
        let problems = out_of_bounds(&value);
        anyhow::ensure!(problems.is_empty(), "{}", problems.join("; "));
        let settings: Self =
            serde_json::from_value(value).context("not a valid pipeline settings file")?;
        settings.check()?;
        Ok(settings)
    }

    /// Refuses settings the bounds cannot express and settings the twin cannot emulate, each
    /// with the key, the value and why.
    pub fn check(&self) -> Result<()> {
        let c = &self.consumer;
        let mut problems = Vec::new();
        let years = self.athena.partition_projection_years;
        if years.first > years.last {
            problems.push(format!(
                "athena.partition_projection_years is {} to {}: first is after last",
                years.first, years.last
            ));
        }
        // The same rule as tofu/modules/settings: every table writes under its own prefix.
        let d = &self.delivery;
        if !(d.prefix.contains("{table}")
            && d.error_output_prefix.contains("{table}")
            && d.error_output_prefix
                .contains("!{firehose:error-output-type}"))
        {
            problems.push(
                "delivery.prefix and delivery.error_output_prefix must contain {table}; the error prefix also !{firehose:error-output-type}"
                    .to_owned(),
            );
        }
        match c.starting_position.as_str() {
            "TRIM_HORIZON" => {}
            "LATEST" => problems.push(
                "consumer.starting_position is LATEST: the twin emulates TRIM_HORIZON only (use a --settings copy with TRIM_HORIZON)"
                    .to_owned(),
            ),
            other => problems.push(format!(
                "consumer.starting_position is {other:?}: must be TRIM_HORIZON or LATEST"
            )),
        }
        if c.parallelization_factor > 1 {
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
        PipelineSettings::from_value(value)
    }

    /// Issue 11, item 8: the bounds of tofu/pipeline.bounds.json (AWS's ranges and the
    /// design's) are enforced with the words OpenTofu's settings module uses, and keys the twin
    /// cannot emulate are refused by name instead of being ignored.
    #[test]
    fn settings_out_of_bounds_or_not_emulated_are_refused_by_name() {
        // (setting, value, what the error must say). AWS's -1 (unbounded) is refused by the
        // design, as OpenTofu refuses it.
        let cases: [(&str, serde_json::Value, &str); 14] = [
            (
                "/delivery/prefix",
                "data/year=!{partitionKeyFromLambda:year}/".into(),
                "delivery.prefix and delivery.error_output_prefix must contain {table}",
            ),
            (
                "/delivery/buffering_size_mb",
                5.into(),
                "delivery.buffering_size_mb is 5: must be a whole number 64 to 128 (Firehose",
            ),
            (
                "/consumer/maximum_record_age_seconds",
                30.into(),
                "maximum_record_age_seconds is 30",
            ),
            (
                "/consumer/maximum_retry_attempts",
                (-1).into(),
                "maximum_retry_attempts is -1",
            ),
            (
                "/consumer/maximum_record_age_seconds",
                (-1).into(),
                "maximum_record_age_seconds is -1",
            ),
            (
                "/consumer/parallelization_factor",
                2.into(),
                "parallelization_factor is 2",
            ),
            (
                "/consumer/starting_position",
                "LATEST".into(),
                "starting_position is LATEST",
            ),
            (
                "/delivery/processor_buffer_interval_seconds",
                10.into(),
                "processor_buffer_interval_seconds is 10",
            ),
            (
                "/delivery/processor_buffer_size_mb",
                0.1.into(),
                "delivery.processor_buffer_size_mb is 0.1: must be 0.2 to 3",
            ),
            (
                "/api/max_batch_orders",
                501.into(),
                "api.max_batch_orders is 501: must be a whole number 1 to 500",
            ),
            ("/retention/log_days", 0.into(), "retention.log_days is 0"),
            // Within 1 to 3653, but not one of CloudWatch Logs' retention values.
            (
                "/retention/log_days",
                2.into(),
                "retention.log_days is 2: must be a whole number 1 to 3653 and one of 1, 3, 5, 7,",
            ),
            (
                "/consumer/batch_size",
                "many".into(),
                "consumer.batch_size is \"many\": must be a number",
            ),
            (
                "/athena/partition_projection_years/first",
                2050.into(),
                "athena.partition_projection_years is 2050 to 2040",
            ),
        ];
        for (pointer, value, expected) in cases {
            let error = with(|settings| {
                *settings
                    .pointer_mut(pointer)
                    .expect("a setting of pipeline.json") = value;
            })
            .map(|_| ())
            .unwrap_err();
            let error = format!("{error:#}");
            assert!(error.contains(expected), "{pointer}: {error}");
        }

        // A fractional processor buffer within the bounds is read as such.
        let fractional = with(|v| v["delivery"]["processor_buffer_size_mb"] = 0.5.into()).unwrap();
        assert_eq!(fractional.delivery.processor_buffer_size_mb, 0.5);
        let built_in = PipelineSettings::built_in();
        assert_eq!(built_in.consumer.retry_limit(), Some(5));
        assert_eq!(
            built_in.consumer.max_record_age(),
            Some(Duration::from_secs(3600))
        );
    }

    /// The bounds file covers every number of the settings file, so no setting goes unchecked.
    #[test]
    fn every_number_in_the_settings_has_a_bound() {
        fn numbers(prefix: &str, value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(fields) => {
                    for (name, field) in fields {
                        let key = if prefix.is_empty() {
                            name.clone()
                        } else {
                            format!("{prefix}.{name}")
                        };
                        numbers(&key, field, out);
                    }
                }
                serde_json::Value::Number(_) => out.push(prefix.to_owned()),
                _ => {}
            }
        }
        let settings: serde_json::Value = serde_json::from_str(PIPELINE_JSON).unwrap();
        let bounds: serde_json::Value = serde_json::from_str(PIPELINE_BOUNDS_JSON).unwrap();
        let bounds = bounds["bounds"].as_object().unwrap();
        let mut keys = Vec::new();
        numbers("", &settings, &mut keys);
        assert!(keys.len() > 20, "{keys:?}");
        for key in keys {
            let section = key.split('.').next().unwrap();
            assert!(
                bounds.contains_key(&key) || bounds.contains_key(&format!("{section}.*")),
                "tofu/pipeline.json: {key} has no bound in tofu/pipeline.bounds.json"
            );
        }
        for key in bounds.keys() {
            let found = key
                .trim_end_matches(".*")
                .split('.')
                .fold(&settings, |value, part| &value[part]);
            assert!(
                !found.is_null(),
                "tofu/pipeline.bounds.json: {key} is not a setting"
            );
        }
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
