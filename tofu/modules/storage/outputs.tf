output "data_bucket_name" {
  description = "Name of the data lake bucket (Parquet tables under <table>/, Firehose errors under errors/)."
  value       = aws_s3_bucket.data.bucket
}

output "data_bucket_arn" {
  description = "ARN of the data lake bucket."
  value       = aws_s3_bucket.data.arn
}

output "athena_results_bucket_name" {
  description = "Name of the Athena query results bucket."
  value       = aws_s3_bucket.athena_results.bucket
}

output "access_logs_bucket_name" {
  description = "Name of the bucket receiving the S3 server access logs."
  value       = aws_s3_bucket.access_logs.bucket
}
