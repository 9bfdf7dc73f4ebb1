# Where the buckets' resources lived before the bucket module: an applied stack moves them in
# its state instead of replacing them (a bucket's replacement would fail on its objects).

moved {
  from = aws_s3_bucket.access_logs
  to   = module.access_logs.aws_s3_bucket.this
}

moved {
  from = aws_s3_bucket_public_access_block.access_logs
  to   = module.access_logs.aws_s3_bucket_public_access_block.this
}

moved {
  from = aws_s3_bucket_ownership_controls.access_logs
  to   = module.access_logs.aws_s3_bucket_ownership_controls.this
}

moved {
  from = aws_s3_bucket_versioning.access_logs
  to   = module.access_logs.aws_s3_bucket_versioning.this
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.access_logs
  to   = module.access_logs.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.access_logs
  to   = module.access_logs.aws_s3_bucket_lifecycle_configuration.this
}

moved {
  from = aws_s3_bucket_policy.access_logs
  to   = module.access_logs.aws_s3_bucket_policy.this
}

moved {
  from = aws_s3_bucket.data
  to   = module.data.aws_s3_bucket.this
}

moved {
  from = aws_s3_bucket_public_access_block.data
  to   = module.data.aws_s3_bucket_public_access_block.this
}

moved {
  from = aws_s3_bucket_ownership_controls.data
  to   = module.data.aws_s3_bucket_ownership_controls.this
}

moved {
  from = aws_s3_bucket_versioning.data
  to   = module.data.aws_s3_bucket_versioning.this
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.data
  to   = module.data.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.data
  to   = module.data.aws_s3_bucket_lifecycle_configuration.this
}

moved {
  from = aws_s3_bucket_policy.data
  to   = module.data.aws_s3_bucket_policy.this
}

moved {
  from = aws_s3_bucket_logging.data
  to   = module.data.aws_s3_bucket_logging.this[0]
}

moved {
  from = aws_s3_bucket.athena_results
  to   = module.athena_results.aws_s3_bucket.this
}

moved {
  from = aws_s3_bucket_public_access_block.athena_results
  to   = module.athena_results.aws_s3_bucket_public_access_block.this
}

moved {
  from = aws_s3_bucket_ownership_controls.athena_results
  to   = module.athena_results.aws_s3_bucket_ownership_controls.this
}

moved {
  from = aws_s3_bucket_versioning.athena_results
  to   = module.athena_results.aws_s3_bucket_versioning.this
}

moved {
  from = aws_s3_bucket_server_side_encryption_configuration.athena_results
  to   = module.athena_results.aws_s3_bucket_server_side_encryption_configuration.this
}

moved {
  from = aws_s3_bucket_lifecycle_configuration.athena_results
  to   = module.athena_results.aws_s3_bucket_lifecycle_configuration.this
}

moved {
  from = aws_s3_bucket_policy.athena_results
  to   = module.athena_results.aws_s3_bucket_policy.this
}

moved {
  from = aws_s3_bucket_logging.athena_results
  to   = module.athena_results.aws_s3_bucket_logging.this[0]
}
