# Deploy-role writes, part 1: the state object, the key, the buckets, the stream, the table,
# Firehose, Glue and Athena.

data "aws_iam_policy_document" "write_data" {
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
    sid = "ManageKey"
    actions = [
      "kms:CreateAlias",
      "kms:CreateGrant",
      "kms:Decrypt",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:EnableKeyRotation",
      "kms:Encrypt",
      "kms:GenerateDataKey",
      "kms:PutKeyPolicy",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    # Key ids are random: any key, but only with this environment's tags (conditions below).
    resources = [local.keys]
    dynamic "condition" {
      for_each = local.key_tags
      content {
        test     = "StringEquals"
        variable = condition.key
        values   = [condition.value]
      }
    }
  }

  statement {
    sid       = "KeyAlias"
    actions   = ["kms:CreateAlias", "kms:DeleteAlias", "kms:UpdateAlias"]
    resources = [local.key_alias]
  }

  statement {
    sid = "Buckets"
    actions = [
      "s3:CreateBucket",
      "s3:DeleteBucket",
      "s3:DeleteBucketPolicy",
      "s3:PutBucketLogging",
      "s3:PutBucketOwnershipControls",
      "s3:PutBucketPolicy",
      "s3:PutBucketPublicAccessBlock",
      "s3:PutBucketTagging",
      "s3:PutBucketVersioning",
      "s3:PutEncryptionConfiguration",
      "s3:PutLifecycleConfiguration",
    ]
    # Buckets named <prefix>-*.
    resources = [local.buckets]
  }

  statement {
    sid = "Streams"
    actions = [
      "kinesis:AddTagsToStream",
      "kinesis:CreateStream",
      "kinesis:DecreaseStreamRetentionPeriod",
      "kinesis:DeleteStream",
      "kinesis:DeregisterStreamConsumer",
      "kinesis:IncreaseStreamRetentionPeriod",
      "kinesis:RegisterStreamConsumer",
      "kinesis:RemoveTagsFromStream",
      "kinesis:StartStreamEncryption",
      "kinesis:StopStreamEncryption",
      "kinesis:TagResource",
      "kinesis:UntagResource",
      "kinesis:UpdateShardCount",
      "kinesis:UpdateStreamMode",
    ]
    # Streams named <prefix>-* and their consumers.
    resources = [local.streams, local.stream_consumers]
  }

  statement {
    sid = "Tables"
    actions = [
      "dynamodb:CreateTable",
      "dynamodb:DeleteTable",
      "dynamodb:TagResource",
      "dynamodb:UntagResource",
      "dynamodb:UpdateContinuousBackups",
      "dynamodb:UpdateTable",
      "dynamodb:UpdateTimeToLive",
    ]
    # Tables named <prefix>-* (deletion protection stays on; removing it is a deliberate change).
    resources = [local.tables]
  }

  statement {
    sid = "DeliveryStreams"
    actions = [
      "firehose:CreateDeliveryStream",
      "firehose:DeleteDeliveryStream",
      "firehose:TagDeliveryStream",
      "firehose:UntagDeliveryStream",
      "firehose:UpdateDestination",
    ]
    # Delivery streams named <prefix>-*.
    resources = [local.delivery_streams]
  }

  statement {
    sid = "Catalog"
    actions = [
      "glue:CreateDatabase",
      "glue:CreateTable",
      "glue:DeleteDatabase",
      "glue:DeleteTable",
      "glue:TagResource",
      "glue:UntagResource",
      "glue:UpdateDatabase",
      "glue:UpdateTable",
    ]
    # The catalog, this environment's database and its tables.
    resources = local.glue
  }

  statement {
    sid = "Workgroup"
    actions = [
      "athena:CreateNamedQuery",
      "athena:CreateWorkGroup",
      "athena:DeleteNamedQuery",
      "athena:DeleteWorkGroup",
      "athena:TagResource",
      "athena:UntagResource",
      "athena:UpdateNamedQuery",
      "athena:UpdateWorkGroup",
    ]
    resources = [local.workgroup]
  }
}

resource "aws_iam_policy" "write_data" {
  name        = "${local.prefix}-ci-write-data"
  path        = local.ci_path
  description = "Apply orderflow ${var.environment}: state, key, buckets, stream, table, Firehose, Glue, Athena."
  policy      = data.aws_iam_policy_document.write_data.json
}
