output "data_bucket_name" {
  description = "Name of the data lake bucket (Parquet tables under <table>/, Firehose errors under errors/)."
  value       = module.data.name
}

output "data_bucket_arn" {
  description = "ARN of the data lake bucket."
  value       = module.data.arn
}

output "athena_results_bucket_name" {
  description = "Name of the Athena query results bucket."
  value       = module.athena_results.name
}

output "access_logs_bucket_name" {
  description = "Name of the bucket receiving the S3 server access logs."
  value       = module.access_logs.name
}
