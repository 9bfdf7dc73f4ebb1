# Three buckets: the data lake (Parquet and Firehose error output), Athena query results, and the
# server access logs of both. All block public access, deny non-TLS requests and keep versions.
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  suffix = "${data.aws_caller_identity.current.account_id}-${data.aws_region.current.id}"

  # S3 bucket names are 3-63 characters (S3 User Guide, "General purpose bucket naming rules").
  # <prefix>-<purpose>-<account>-<region> fits for the usual environments and regions (prod in
  # eu-central-1: 55 characters for athena-results) but not for a 12-character environment in a
  # 14-character region. Such a name keeps its first 54 characters and gets 8 hex digits of its
  # SHA-256: at most 63 characters whatever the inputs, deterministic, still unique per
  # account/region, and still under <prefix>-* (the CI roles' bucket scope).
  # Checked for the longest inputs by crates/infra-tests.
  bucket_full_names = {
    for purpose in ["access-logs", "data", "athena-results"] :
    purpose => "${var.name_prefix}-${purpose}-${local.suffix}"
  }
  bucket_names = {
    for purpose, name in local.bucket_full_names :
    purpose => length(name) <= 63 ? name : "${trimsuffix(substr(name, 0, 54), "-")}-${substr(sha256(name), 0, 8)}"
  }
  bucket_arns = {
    for purpose, name in local.bucket_names : purpose => "arn:${data.aws_partition.current.partition}:s3:::${name}"
  }
}

# --- access logs --------------------------------------------------------------------------------

module "access_logs" {
  source = "../bucket"

  name = local.bucket_names["access-logs"]
  # S3 server access logging only delivers to buckets encrypted with SSE-S3, not SSE-KMS.
  kms_key_arn = null
  # The access-log target; logging it into itself would loop.
  log_target  = null
  policy_json = data.aws_iam_policy_document.access_log_delivery.json
  lifecycle_rules = [{
    id                   = "expire-access-logs"
    expiration_days      = var.retention_settings.access_logs_days
    noncurrent_days      = var.retention_settings.noncurrent_versions_days
    abort_multipart_days = 1
  }]
}

data "aws_iam_policy_document" "access_log_delivery" {
  statement {
    sid = "S3ServerAccessLogDelivery"
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    actions = ["s3:PutObject"]
    # Log objects are written under per-bucket prefixes of this bucket.
    resources = ["${local.bucket_arns["access-logs"]}/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [local.bucket_arns["data"], local.bucket_arns["athena-results"]]
    }
  }
}

# --- data lake ----------------------------------------------------------------------------------

module "data" {
  source = "../bucket"

  name        = local.bucket_names["data"]
  kms_key_arn = var.kms_key_arn
  # The target bucket enforces bucket-owner object ownership, so the logging service is let in by
  # the bucket policy only (no ACL grants), and S3 checks that permission when logging is enabled
  # (PutBucketLogging: InvalidTargetBucketForLogging; S3 API Reference, PutBucketLogging, and S3
  # User Guide, "Permissions for server access log delivery"). log_target_bucket is known only
  # once that policy and the ownership setting exist: without this ordering the first apply raced
  # them (found by the rehearsal).
  log_target = { bucket = module.access_logs.log_target_bucket, prefix = "data/" }
  lifecycle_rules = [
    {
      id                   = "abort-incomplete-multipart-uploads"
      noncurrent_days      = var.retention_settings.noncurrent_versions_days
      abort_multipart_days = 1
    },
    {
      id              = "expire-firehose-error-output"
      prefix          = var.error_prefix
      expiration_days = var.retention_settings.error_objects_days
    },
  ]
}

# --- Athena query results -----------------------------------------------------------------------

module "athena_results" {
  source = "../bucket"

  name        = local.bucket_names["athena-results"]
  kms_key_arn = var.kms_key_arn
  # Same ordering as the data bucket's: the target's policy must exist first.
  log_target = { bucket = module.access_logs.log_target_bucket, prefix = "athena-results/" }
  lifecycle_rules = [{
    id                   = "expire-query-results"
    expiration_days      = var.retention_settings.athena_results_days
    noncurrent_days      = 1
    abort_multipart_days = 1
  }]
}
