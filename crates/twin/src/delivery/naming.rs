//! Where Firehose puts an object: the prefix with its placeholders filled in (partition keys
//! from the transformer, error output type, arrival time) and Firehose's object name.

use chrono::{DateTime, Utc};

/// A record's dynamic partitioning keys: name and value, in the table file's order.
pub(super) type PartitionKeys = Vec<(&'static str, String)>;

/// Fills a Firehose prefix: `{table}`, `!{partitionKeyFromLambda:KEY}`,
/// `!{firehose:error-output-type}` and `!{timestamp:yyyy|MM|dd|HH}` (UTC).
pub(super) fn expand_prefix(
    template: &str,
    table: &str,
    partition_keys: &[(&str, &str)],
    error_output_type: Option<&str>,
    time: DateTime<Utc>,
) -> String {
    let mut out = template.replace("{table}", table);
    for (key, value) in partition_keys {
        out = out.replace(&format!("!{{partitionKeyFromLambda:{key}}}"), value);
    }
    if let Some(kind) = error_output_type {
        out = out.replace("!{firehose:error-output-type}", kind);
    }
    for (pattern, format) in [("yyyy", "%Y"), ("MM", "%m"), ("dd", "%d"), ("HH", "%H")] {
        out = out.replace(
            &format!("!{{timestamp:{pattern}}}"),
            &time.format(format).to_string(),
        );
    }
    out
}

/// Firehose's object name: `STREAM-VERSION-yyyy-MM-dd-HH-mm-ss-UUID` plus the file extension.
pub(super) fn object_name(delivery_stream: &str, time: DateTime<Utc>, extension: &str) -> String {
    format!(
        "{delivery_stream}-1-{}-{}{extension}",
        time.format("%Y-%m-%d-%H-%M-%S"),
        uuid::Uuid::new_v4()
    )
}

/// The names of the keys the transformers partition by: the table file's partition keys
/// (`sql/tables.json`; `crates/infra-tests/tests/tofu.rs` ties the transformers to them).
pub(super) fn partition_key_names() -> impl Iterator<Item = &'static str> {
    orderflow_domain::table_file()
        .partition_keys
        .iter()
        .map(|column| column.name.as_str())
}

/// The transformer's partition keys for a record, or `None` if one is missing.
pub(super) fn partition_values(
    keys: &std::collections::HashMap<String, String>,
) -> Option<PartitionKeys> {
    partition_key_names()
        .map(|name| keys.get(name).map(|value| (name, value.clone())))
        .collect()
}

/// The folders of a prefix before the one holding its first unexpanded placeholder (`!{...}`):
/// `errors/orders/processing-failed/` of `errors/orders/processing-failed/year=!{...}/`.
pub(super) fn static_part(prefix: &str) -> &str {
    let end = prefix.find("!{").unwrap_or(prefix.len());
    prefix[..end]
        .rfind('/')
        .map_or("", |slash| &prefix[..=slash])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::PipelineSettings;

    #[test]
    fn prefixes_expand_like_firehose() {
        let settings = PipelineSettings::built_in();
        let time = "2024-06-08T23:59:59Z".parse().unwrap();
        let keys = [("year", "2024"), ("month", "06"), ("day", "08")];
        assert_eq!(
            expand_prefix(&settings.delivery.prefix, "orders", &keys, None, time),
            "orders/year=2024/month=06/day=08/"
        );
        assert_eq!(
            expand_prefix(
                &settings.delivery.error_output_prefix,
                "orders",
                &[],
                Some("processing-failed"),
                time
            ),
            "errors/orders/processing-failed/year=2024/month=06/day=08/"
        );
        let name = object_name("orderflow-local-orders", time, ".parquet");
        assert!(name.starts_with("orderflow-local-orders-1-2024-06-08-23-59-59-"));
        assert!(name.ends_with(".parquet"));
    }
}
