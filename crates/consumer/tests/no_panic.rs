//! No record content makes the consumer's planning panic, and every record is accounted for.

use std::collections::{HashMap, HashSet};

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use orderflow_consumer::{OrderRecordsEvent, plan_batch};
use orderflow_domain::{GeneratorConfig, OrderGenerator, parse_order};
use proptest::prelude::*;

fn record(n: usize, data: Vec<u8>) -> KinesisEventRecord {
    let mut record = KinesisEventRecord::default();
    record.kinesis.data.0 = data;
    record.kinesis.sequence_number = format!("{:056}", n);
    record.event_id = Some(format!("shardId-000000000000:{n}"));
    record
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_records_are_all_accounted_for(batch in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..50)) {
        let records: Vec<_> = batch.into_iter().enumerate().map(|(n, data)| record(n, data)).collect();
        let plan = plan_batch(&records);
        prop_assert_eq!(plan.writes.len() + plan.skipped.len() + plan.collapsed, records.len());
    }

    #[test]
    fn arbitrary_event_json_never_panics(text in ".{0,400}") {
        let _ = serde_json::from_str::<OrderRecordsEvent>(&text);
        let wrapped = format!(r#"{{"Records": [{{"kinesis": {{"data": "", "approximateArrivalTimestamp": {text}}}}}]}}"#);
        let _ = serde_json::from_str::<OrderRecordsEvent>(&wrapped);
    }

    /// Generated orders with a few bytes overwritten, inserted or removed (unlike arbitrary
    /// bytes, they reach the rules), some sent twice: a record is skipped exactly when the
    /// domain's rules refuse it, and every key of an accepted order is written once, from its
    /// last record.
    #[test]
    fn near_valid_batches_are_planned_by_the_rules(
        seed in any::<u64>(),
        batch in prop::collection::vec(
            (0usize..8, prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 0..3)),
            1..40,
        ),
    ) {
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(seed));
        let originals: Vec<Vec<u8>> = (0..8).map(|_| generator.next_order().to_json()).collect();
        let records: Vec<_> = batch
            .iter()
            .enumerate()
            .map(|(n, (original, edits))| {
                let mut body = originals[*original].clone();
                for (at, kind, byte) in edits {
                    let at = at.index(body.len() + 1);
                    match kind {
                        0 if at < body.len() => body[at] = *byte,
                        1 => body.insert(at, *byte),
                        _ if at < body.len() => {
                            body.remove(at);
                        }
                        _ => body.push(*byte),
                    }
                }
                record(n, body)
            })
            .collect();
        let plan = plan_batch(&records);
        prop_assert_eq!(plan.writes.len() + plan.skipped.len() + plan.collapsed, records.len());
        // The rules decide, record by record; the last accepted record of each key wins.
        let mut refused = HashSet::new();
        let mut last_of_key = HashMap::new();
        for record in &records {
            let sequence = record.kinesis.sequence_number.clone();
            match parse_order(&record.kinesis.data.0) {
                Ok(order) => {
                    last_of_key.insert(
                        (order.customer_id.to_string(), order.order_id.to_string()),
                        sequence,
                    );
                }
                Err(_) => {
                    refused.insert(sequence);
                }
            }
        }
        let skipped: HashSet<String> = plan.skipped.iter().map(|s| s.sequence_number.clone()).collect();
        prop_assert_eq!(skipped, refused);
        let written: HashMap<(String, String), String> = plan
            .writes
            .iter()
            .map(|write| (write.key.clone(), write.sequence_number.clone()))
            .collect();
        prop_assert_eq!(written.len(), plan.writes.len(), "one write per key");
        prop_assert_eq!(written, last_of_key);
    }
}
