output "stream_name" {
  description = "Name of the orders stream."
  value       = aws_kinesis_stream.this.name
}

output "stream_arn" {
  description = "ARN of the orders stream."
  value       = aws_kinesis_stream.this.arn
}

output "stream_consumer_arn" {
  description = "ARN of the enhanced fan-out consumer, or null when enhanced fan-out is off."
  value       = one(aws_kinesis_stream_consumer.this[*].arn)
}

output "read_policy_json" {
  description = "IAM policy statements (JSON) that let a role read the stream's records and decrypt them through Kinesis."
  value       = data.aws_iam_policy_document.read.json
}
