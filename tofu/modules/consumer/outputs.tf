output "function_name" {
  description = "Name of the consumer Lambda."
  value       = module.function.function_name
}

output "function_arn" {
  description = "ARN of the consumer Lambda."
  value       = module.function.function_arn
}

output "dynamodb_table_name" {
  description = "Name of the orders table."
  value       = aws_dynamodb_table.this.name
}

output "dynamodb_table_arn" {
  description = "ARN of the orders table."
  value       = aws_dynamodb_table.this.arn
}

output "on_failure_queue_name" {
  description = "Name of the SQS queue receiving exhausted batches."
  value       = aws_sqs_queue.on_failure.name
}

output "on_failure_queue_url" {
  description = "URL of the SQS queue receiving exhausted batches."
  value       = aws_sqs_queue.on_failure.url
}
