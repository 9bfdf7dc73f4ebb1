# Three buckets: the data lake (Parquet and Firehose error output), Athena query results, and the
# server access logs of both. All block public access, deny non-TLS requests and keep versions.
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}

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
}

# --- access logs --------------------------------------------------------------------------------

resource "aws_s3_bucket" "access_logs" {
  #checkov:skip=CKV_AWS_18:This is the access-log target; logging it into itself would loop.
  #checkov:skip=CKV_AWS_144:Access logs are operational data; cross-region replication would double their cost for no recovery need.
  #checkov:skip=CKV_AWS_145:S3 server access logging only delivers to buckets encrypted with SSE-S3, not SSE-KMS.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of the log bucket.
  bucket = local.bucket_names["access-logs"]
}

resource "aws_s3_bucket_public_access_block" "access_logs" {
  bucket                  = aws_s3_bucket.access_logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "access_logs" {
  bucket = aws_s3_bucket.access_logs.id

  rule {
    id     = "expire-access-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.retention_settings.access_logs_days
    }
    noncurrent_version_expiration {
      noncurrent_days = var.retention_settings.noncurrent_versions_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

data "aws_iam_policy_document" "access_logs" {
  source_policy_documents = [data.aws_iam_policy_document.tls_only["access_logs"].json]

  statement {
    sid = "S3ServerAccessLogDelivery"
    principals {
      type        = "Service"
      identifiers = ["logging.s3.amazonaws.com"]
    }
    actions = ["s3:PutObject"]
    # Log objects are written under per-bucket prefixes of this bucket.
    resources = ["${aws_s3_bucket.access_logs.arn}/*"]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = [aws_s3_bucket.data.arn, aws_s3_bucket.athena_results.arn]
    }
  }
}

resource "aws_s3_bucket_policy" "access_logs" {
  bucket     = aws_s3_bucket.access_logs.id
  policy     = data.aws_iam_policy_document.access_logs.json
  depends_on = [aws_s3_bucket_public_access_block.access_logs]
}

# --- data lake ----------------------------------------------------------------------------------

resource "aws_s3_bucket" "data" {
  #checkov:skip=CKV_AWS_144:The Parquet tables are derived data (DynamoDB with PITR holds every order); replicating them to a second region is a cost decision left out of this stack.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: Athena reads through partition projection, no crawler.
  bucket = local.bucket_names["data"]
}

resource "aws_s3_bucket_public_access_block" "data" {
  bucket                  = aws_s3_bucket.data.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "data" {
  bucket = aws_s3_bucket.data.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "data" {
  bucket = aws_s3_bucket.data.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS requests (and their cost) for Firehose's many small writes.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "data" {
  bucket        = aws_s3_bucket.data.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "data/"

  # The target bucket enforces bucket-owner object ownership, so the logging service is let in by
  # the bucket policy only (no ACL grants), and S3 checks that permission when logging is enabled
  # (PutBucketLogging: InvalidTargetBucketForLogging; S3 API Reference, PutBucketLogging, and S3
  # User Guide, "Permissions for server access log delivery"). The policy and the ownership setting
  # must exist first: without this ordering the first apply raced them (found by the rehearsal).
  depends_on = [
    aws_s3_bucket_policy.access_logs,
    aws_s3_bucket_ownership_controls.access_logs,
  ]
}

resource "aws_s3_bucket_lifecycle_configuration" "data" {
  bucket = aws_s3_bucket.data.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
    noncurrent_version_expiration {
      noncurrent_days = var.retention_settings.noncurrent_versions_days
    }
  }

  rule {
    id     = "expire-firehose-error-output"
    status = "Enabled"
    filter {
      prefix = var.error_prefix
    }
    expiration {
      days = var.retention_settings.error_objects_days
    }
  }
}

resource "aws_s3_bucket_policy" "data" {
  bucket     = aws_s3_bucket.data.id
  policy     = data.aws_iam_policy_document.tls_only["data"].json
  depends_on = [aws_s3_bucket_public_access_block.data]
}

# --- Athena query results -----------------------------------------------------------------------

resource "aws_s3_bucket" "athena_results" {
  #checkov:skip=CKV_AWS_144:Query results are disposable (they expire after retention.athena_results_days); no replication.
  #checkov:skip=CKV2_AWS_62:Nothing consumes events of query results.
  bucket = local.bucket_names["athena-results"]
}

resource "aws_s3_bucket_public_access_block" "athena_results" {
  bucket                  = aws_s3_bucket.athena_results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_logging" "athena_results" {
  bucket        = aws_s3_bucket.athena_results.id
  target_bucket = aws_s3_bucket.access_logs.id
  target_prefix = "athena-results/"

  # Same ordering as aws_s3_bucket_logging.data: the target's policy must exist first.
  depends_on = [
    aws_s3_bucket_policy.access_logs,
    aws_s3_bucket_ownership_controls.access_logs,
  ]
}

resource "aws_s3_bucket_lifecycle_configuration" "athena_results" {
  bucket = aws_s3_bucket.athena_results.id

  rule {
    id     = "expire-query-results"
    status = "Enabled"
    filter {}
    expiration {
      days = var.retention_settings.athena_results_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 1
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

resource "aws_s3_bucket_policy" "athena_results" {
  bucket     = aws_s3_bucket.athena_results.id
  policy     = data.aws_iam_policy_document.tls_only["athena_results"].json
  depends_on = [aws_s3_bucket_public_access_block.athena_results]
}

# --- shared -------------------------------------------------------------------------------------

data "aws_iam_policy_document" "tls_only" {
  for_each = {
    access_logs    = aws_s3_bucket.access_logs.arn
    data           = aws_s3_bucket.data.arn
    athena_results = aws_s3_bucket.athena_results.arn
  }

  statement {
    sid    = "DenyInsecureTransport"
    effect = "Deny"
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    # A Deny: every S3 action on this bucket is refused without TLS.
    actions = ["s3:*"]
    # The bucket and every object in it.
    resources = [each.value, "${each.value}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}
