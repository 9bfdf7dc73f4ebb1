# Deploy-role writes, part 1: the state object, the key, the buckets, the stream, the table,
# Firehose, Glue and Athena. The families' write_data actions come from families.tf.

data "aws_iam_policy_document" "write_data" {
  source_policy_documents = [data.aws_iam_policy_document.families["write_data"].json]

  statement {
    sid       = "StateObjectAndLock"
    actions   = ["s3:DeleteObject", "s3:GetObject", "s3:PutObject"]
    resources = [local.state_object, "${local.state_object}.tflock"]
  }

  dynamic "statement" {
    for_each = var.tofu_state_kms_key_arn == null ? [] : [var.tofu_state_kms_key_arn]
    content {
      sid       = "StateKeyWrite"
      actions   = ["kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey"]
      resources = [statement.value]
    }
  }

  statement {
    sid     = "CreateKey"
    actions = ["kms:CreateKey", "kms:TagResource"]
    # CreateKey has no resource (the key does not exist yet); the request must carry this
    # environment's tags.
    resources = ["*"]
    condition {
      test     = "StringEquals"
      variable = "aws:RequestTag/Environment"
      values   = [var.environment]
    }
  }

  statement {
    sid       = "KeyAlias"
    actions   = ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"]
    resources = [local.key_alias]
  }
}

resource "aws_iam_policy" "write_data" {
  name        = "${local.prefix}-ci-write-data"
  path        = local.ci_path
  description = "Apply orderflow ${var.environment}: state, key, buckets, stream, table, Firehose, Glue, Athena."
  policy      = data.aws_iam_policy_document.write_data.json
}
