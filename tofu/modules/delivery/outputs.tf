output "delivery_stream_name" {
  description = "Name of the table's Firehose delivery stream."
  value       = aws_kinesis_firehose_delivery_stream.this.name
}

output "delivery_stream_arn" {
  description = "ARN of the table's Firehose delivery stream."
  value       = aws_kinesis_firehose_delivery_stream.this.arn
}

output "function_name" {
  description = "Name of the table's transformer Lambda."
  value       = module.transformer.function_name
}

output "function_arn" {
  description = "ARN of the table's transformer Lambda."
  value       = module.transformer.function_arn
}
