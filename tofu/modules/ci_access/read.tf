# Read access to everything this configuration manages: the plan role's only policy, and the
# deploy role's first.

data "aws_iam_policy_document" "read" {
  statement {
    sid = "AccountWideLists"
    actions = [
      "iam:ListOpenIDConnectProviders",
      "kms:ListAliases",
      "logs:DescribeLogGroups",
    ]
    # These list calls have no resource type: AWS accepts only "*".
    resources = ["*"]
  }

  statement {
    sid       = "State"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.p}:s3:::${var.tofu_state_bucket}"]
  }

  statement {
    sid       = "StateObject"
    actions   = ["s3:GetObject"]
    resources = [local.state_object]
  }

  dynamic "statement" {
    for_each = var.tofu_state_kms_key_arn == null ? [] : [var.tofu_state_kms_key_arn]
    content {
      sid       = "StateKeyRead"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }

  statement {
    sid = "ReadKeys"
    actions = [
      "kms:DescribeKey",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListResourceTags",
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
    sid = "ReadBuckets"
    actions = [
      "s3:GetAccelerateConfiguration",
      "s3:GetBucketAcl",
      "s3:GetBucketCORS",
      "s3:GetBucketLocation",
      "s3:GetBucketLogging",
      "s3:GetBucketObjectLockConfiguration",
      "s3:GetBucketOwnershipControls",
      "s3:GetBucketPolicy",
      "s3:GetBucketPublicAccessBlock",
      "s3:GetBucketRequestPayment",
      "s3:GetBucketTagging",
      "s3:GetBucketVersioning",
      "s3:GetBucketWebsite",
      "s3:GetEncryptionConfiguration",
      "s3:GetLifecycleConfiguration",
      "s3:GetReplicationConfiguration",
      "s3:ListBucket",
    ]
    # Buckets named <prefix>-*.
    resources = [local.buckets]
  }

  statement {
    sid = "ReadStreams"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamConsumer",
      "kinesis:DescribeStreamSummary",
      "kinesis:ListStreamConsumers",
      "kinesis:ListTagsForResource",
      "kinesis:ListTagsForStream",
    ]
    # Streams named <prefix>-* and their consumers.
    resources = [local.streams, local.stream_consumers]
  }

  statement {
    sid = "ReadTables"
    actions = [
      "dynamodb:DescribeContinuousBackups",
      "dynamodb:DescribeTable",
      "dynamodb:DescribeTimeToLive",
      "dynamodb:GetResourcePolicy",
      "dynamodb:ListTagsOfResource",
    ]
    # Tables named <prefix>-*.
    resources = [local.tables]
  }

  statement {
    sid = "ReadFunctions"
    actions = [
      "lambda:GetFunction",
      "lambda:GetFunctionCodeSigningConfig",
      "lambda:GetFunctionConfiguration",
      "lambda:GetFunctionRecursionConfig",
      "lambda:GetPolicy",
      "lambda:GetRuntimeManagementConfig",
      "lambda:ListTags",
      "lambda:ListVersionsByFunction",
    ]
    # Functions named <prefix>-*.
    resources = [local.functions]
  }

  statement {
    sid     = "ReadEventSourceMappings"
    actions = ["lambda:GetEventSourceMapping", "lambda:ListTags"]
    # Mapping ids are random UUIDs.
    resources = [local.mappings]
  }

  statement {
    sid     = "ReadLogGroups"
    actions = ["logs:DescribeLogStreams", "logs:ListTagsForResource", "logs:ListTagsLogGroup"]
    # Log groups named after this configuration's functions, streams and API (API ids are random).
    resources = local.log_groups
  }

  statement {
    sid     = "ReadQueues"
    actions = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags"]
    # Queues named <prefix>-*.
    resources = [local.queues]
  }

  statement {
    sid     = "ReadTopics"
    actions = ["sns:GetSubscriptionAttributes", "sns:GetTopicAttributes", "sns:ListTagsForResource"]
    # Topics named <prefix>-* and their subscriptions.
    resources = [local.topics]
  }

  statement {
    sid     = "ReadDeliveryStreams"
    actions = ["firehose:DescribeDeliveryStream", "firehose:ListTagsForDeliveryStream"]
    # Delivery streams named <prefix>-*.
    resources = [local.delivery_streams]
  }

  statement {
    sid     = "ReadCatalog"
    actions = ["glue:GetDatabase", "glue:GetPartitionIndexes", "glue:GetTable", "glue:GetTags"]
    # The catalog, this environment's database and its tables.
    resources = local.glue
  }

  statement {
    sid       = "ReadWorkgroup"
    actions   = ["athena:BatchGetNamedQuery", "athena:GetNamedQuery", "athena:GetWorkGroup", "athena:ListNamedQueries", "athena:ListTagsForResource"]
    resources = [local.workgroup]
  }

  statement {
    sid     = "ReadApi"
    actions = ["apigateway:GET"]
    # API Gateway resources are addressed by path; REST API, key and plan ids are random.
    resources = local.apigateway
  }

  statement {
    sid     = "ReadAlarms"
    actions = ["cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"]
    # Alarms named <prefix>-*.
    resources = [local.alarms]
  }

  statement {
    sid = "ReadRoles"
    actions = [
      "iam:GetRole",
      "iam:GetRolePolicy",
      "iam:ListAttachedRolePolicies",
      "iam:ListInstanceProfilesForRole",
      "iam:ListRolePolicies",
    ]
    # Roles under the workload path and the CI path.
    resources = [local.workload_roles, local.ci_roles]
  }

  statement {
    sid     = "ReadCiPolicies"
    actions = ["iam:GetPolicy", "iam:GetPolicyVersion", "iam:ListPolicyVersions"]
    # Policies under the CI path (these policies and the workload boundary).
    resources = [local.ci_policies]
  }

  statement {
    sid       = "ReadOidcProvider"
    actions   = ["iam:GetOpenIDConnectProvider"]
    resources = ["arn:${local.p}:iam::${local.account}:oidc-provider/${local.oidc_host}"]
  }
}

resource "aws_iam_policy" "read" {
  name        = "${local.prefix}-ci-read"
  path        = local.ci_path
  description = "Read what the orderflow ${var.environment} configuration manages (tofu plan)."
  policy      = data.aws_iam_policy_document.read.json
}
