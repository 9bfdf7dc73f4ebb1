output "name" {
  description = "Name of the bucket."
  value       = aws_s3_bucket.this.bucket
}

output "arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "log_target_bucket" {
  description = "The bucket's name once its policy and object ownership are in place: what other buckets' server access logging may target (S3 checks the target's policy when logging is enabled)."
  value       = aws_s3_bucket.this.bucket
  depends_on = [
    aws_s3_bucket_policy.this,
    aws_s3_bucket_ownership_controls.this,
  ]
}
