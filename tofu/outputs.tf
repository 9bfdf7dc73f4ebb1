output "api_invoke_url" {
  description = "Base URL of the ingestion API: POST <url>/v1/orders, <url>/v1/orders/batch, <url>/orders (legacy)."
  value       = module.ingestion_api.stage_invoke_url
}

output "api_key_id" {
  description = "Id of the default API key (value: aws apigateway get-api-key --api-key <id> --include-value)."
  value       = module.ingestion_api.api_key_id
}

output "kinesis_stream_name" {
  description = "Name of the orders stream."
  value       = module.stream.stream_name
}

output "dynamodb_table_name" {
  description = "Name of the orders table."
  value       = module.consumer.dynamodb_table_name
}

output "consumer_on_failure_queue_url" {
  description = "URL of the queue receiving batches the consumer gave up on."
  value       = module.consumer.on_failure_queue_url
}

output "consumer_function_name" {
  description = "Name of the consumer Lambda (cargo xtask redrive-aws invokes it)."
  value       = module.consumer.function_name
}

output "data_bucket_name" {
  description = "Bucket holding the Parquet tables and Firehose error output."
  value       = module.storage.data_bucket_name
}

output "glue_database_name" {
  description = "Glue database of the analytics tables."
  value       = module.catalog.database_name
}

output "athena_workgroup_name" {
  description = "Athena workgroup to query the tables with."
  value       = module.analytics.workgroup_name
}

output "firehose_delivery_stream_names" {
  description = "Firehose delivery stream by table."
  value       = { for table, delivery in module.delivery : table => delivery.delivery_stream_name }
}

output "sns_topic_arn" {
  description = "Alarm topic."
  value       = module.observability.sns_topic_arn
}

output "ci_deploy_role_arn" {
  description = "Role for the prod deploy workflow (GitHub variable AWS_DEPLOY_ROLE_ARN)."
  value       = module.ci_access.deploy_role_arn
}

output "ci_plan_role_arn" {
  description = "Read-only role for the main-branch plan (GitHub variable AWS_PLAN_ROLE_ARN)."
  value       = module.ci_access.plan_role_arn
}

output "kms_key_arn" {
  description = "The environment's customer-managed key (grant analysts kms:Decrypt on it to read the tables)."
  value       = module.encryption.key_arn
}
