//! No record content makes the consumer's planning panic, and every record is accounted for.

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use orderflow_consumer::{OrderRecordsEvent, plan_batch};
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
}
