# The most any workload role (Lambda, Firehose, API Gateway) can do, whatever its own policy says.
# The families' workload actions come from families.tf.
data "aws_iam_policy_document" "workload_boundary" {
  source_policy_documents = [data.aws_iam_policy_document.families["workload"].json]

  statement {
    sid     = "Logs"
    actions = ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"]
    # Log groups named after this configuration's functions, streams and API, and their streams.
    resources = [for group in local.log_groups : "${group}:*"]
  }

  statement {
    sid     = "AccountWideLists"
    actions = ["kinesis:ListStreams", "logs:DescribeLogGroups"]
    # These list calls have no resource type: AWS accepts only "*".
    resources = ["*"]
  }

  statement {
    sid = "Key"
    # DescribeKey: DynamoDB checks the table's key with the caller's credentials (consumer).
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid       = "DataBucket"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [var.data_bucket_arn]
  }

  statement {
    sid     = "DataObjects"
    actions = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    # Objects of the data bucket (each role's own policy narrows this to its table's prefixes).
    resources = ["${var.data_bucket_arn}/*"]
  }
}

resource "aws_iam_policy" "workload_boundary" {
  name        = "${local.prefix}-workload-boundary"
  path        = local.ci_path
  description = "Permissions boundary of every orderflow ${var.environment} workload role."
  policy      = data.aws_iam_policy_document.workload_boundary.json
}
