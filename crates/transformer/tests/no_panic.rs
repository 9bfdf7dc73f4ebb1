//! No record content makes a transformer panic, every record gets exactly one answer, and the
//! response is exactly as long as the budget counted.

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseEventRecord};
use orderflow_domain::Table;
use orderflow_transformer::transform;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    #[test]
    fn arbitrary_records_get_one_answer_each(batch in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 0..50)) {
        let mut event = KinesisFirehoseEvent::default();
        for (n, data) in batch.into_iter().enumerate() {
            let mut record = KinesisFirehoseEventRecord::default();
            record.record_id = Some(n.to_string());
            record.data.0 = data;
            event.records.push(record);
        }
        for table in Table::ALL {
            let (response, summary) = transform(&event, table);
            prop_assert_eq!(response.records.len(), event.records.len());
            prop_assert_eq!(summary.ok + summary.invalid + summary.dropped + summary.over_budget, event.records.len());
            prop_assert_eq!(serde_json::to_vec(&response).unwrap().len(), summary.response_bytes);
            for (n, answer) in response.records.iter().enumerate() {
                prop_assert_eq!(answer.record_id.clone(), Some(n.to_string()));
            }
        }
    }
}
