# One S3 bucket as every bucket of this stack is made: public access blocked, owner-enforced
# object ownership (no ACLs), versioned, encrypted (SSE-KMS with the stack's key and a Bucket Key,
# or SSE-S3 where S3 requires it), TLS-only, its lifecycle rules, and its server access logs sent
# to the log bucket (all but the log bucket itself).

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Every bucket logs to the access-log bucket (aws_s3_bucket_logging below) except that bucket itself, which would log into itself; crates/infra-tests checks which buckets log.
  #checkov:skip=CKV_AWS_144:No bucket is replicated: the Parquet tables are derived data (DynamoDB with PITR holds every order), query results and access logs are disposable; a second region is a cost decision left out of this stack.
  #checkov:skip=CKV_AWS_145:Every bucket uses SSE-KMS except the access-log bucket: S3 server access logging only delivers to SSE-S3 buckets; crates/infra-tests checks which buckets use the key.
  #checkov:skip=CKV2_AWS_62:Nothing consumes object events: Athena reads through partition projection, no crawler, and nothing watches results or logs.
  bucket = var.name
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket                  = aws_s3_bucket.this.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = var.kms_key_arn == null ? "AES256" : "aws:kms"
      kms_master_key_id = var.kms_key_arn
    }
    # S3 Bucket Keys cut KMS requests (and their cost) for Firehose's many small writes.
    bucket_key_enabled = var.kms_key_arn == null ? null : true
  }
}

resource "aws_s3_bucket_logging" "this" {
  count = var.log_target == null ? 0 : 1

  bucket        = aws_s3_bucket.this.id
  target_bucket = var.log_target.bucket
  target_prefix = var.log_target.prefix
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  dynamic "rule" {
    for_each = var.lifecycle_rules
    content {
      id     = rule.value.id
      status = "Enabled"
      filter {
        prefix = rule.value.prefix
      }
      dynamic "expiration" {
        for_each = rule.value.expiration_days == null ? [] : [rule.value.expiration_days]
        content {
          days = expiration.value
        }
      }
      dynamic "noncurrent_version_expiration" {
        for_each = rule.value.noncurrent_days == null ? [] : [rule.value.noncurrent_days]
        content {
          noncurrent_days = noncurrent_version_expiration.value
        }
      }
      dynamic "abort_incomplete_multipart_upload" {
        for_each = rule.value.abort_multipart_days == null ? [] : [rule.value.abort_multipart_days]
        content {
          days_after_initiation = abort_incomplete_multipart_upload.value
        }
      }
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
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
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

data "aws_iam_policy_document" "this" {
  source_policy_documents = concat(
    [data.aws_iam_policy_document.tls_only.json],
    var.policy_json == null ? [] : [var.policy_json],
  )
}

resource "aws_s3_bucket_policy" "this" {
  bucket     = aws_s3_bucket.this.id
  policy     = data.aws_iam_policy_document.this.json
  depends_on = [aws_s3_bucket_public_access_block.this]
}
