# GitHub Actions access without long-lived keys:
#   - <prefix>-ci-deploy: assumable from jobs in the deploy environment only; can
#     create and change exactly the resources of this configuration (by name prefix, IAM path,
#     or tags), and may create roles only under the workload IAM path with the workload
#     permissions boundary attached, so it cannot mint a role more powerful than the workloads.
#   - <prefix>-ci-plan: assumable from the plan branch; read-only, for `tofu plan -lock=false`.
# The CI roles, their policies and the boundary live under a separate IAM path that the deploy
# role cannot write to: changing them takes an administrator's apply (see tofu/README.md).
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  p       = data.aws_partition.current.partition
  region  = data.aws_region.current.id
  account = data.aws_caller_identity.current.account_id
  prefix  = var.name_prefix
  ci_path = "/orderflow/${var.environment}-ci/"

  oidc_host         = "token.actions.githubusercontent.com"
  oidc_provider_arn = var.create_github_oidc_provider ? aws_iam_openid_connect_provider.github[0].arn : data.aws_iam_openid_connect_provider.github[0].arn

  # Name-prefixed ARNs of everything this configuration manages.
  workload_roles   = "arn:${local.p}:iam::${local.account}:role${var.workload_iam_path}*"
  ci_roles         = "arn:${local.p}:iam::${local.account}:role${local.ci_path}*"
  ci_policies      = "arn:${local.p}:iam::${local.account}:policy${local.ci_path}*"
  buckets          = "arn:${local.p}:s3:::${local.prefix}-*"
  streams          = "arn:${local.p}:kinesis:${local.region}:${local.account}:stream/${local.prefix}-*"
  stream_consumers = "arn:${local.p}:kinesis:${local.region}:${local.account}:stream/${local.prefix}-*/consumer/*"
  tables           = "arn:${local.p}:dynamodb:${local.region}:${local.account}:table/${local.prefix}-*"
  functions        = "arn:${local.p}:lambda:${local.region}:${local.account}:function:${local.prefix}-*"
  mappings         = "arn:${local.p}:lambda:${local.region}:${local.account}:event-source-mapping:*"
  queues           = "arn:${local.p}:sqs:${local.region}:${local.account}:${local.prefix}-*"
  topics           = "arn:${local.p}:sns:${local.region}:${local.account}:${local.prefix}-*"
  delivery_streams = "arn:${local.p}:firehose:${local.region}:${local.account}:deliverystream/${local.prefix}-*"
  workgroup        = "arn:${local.p}:athena:${local.region}:${local.account}:workgroup/${local.prefix}"
  alarms           = "arn:${local.p}:cloudwatch:${local.region}:${local.account}:alarm:${local.prefix}-*"
  keys             = "arn:${local.p}:kms:${local.region}:${local.account}:key/*"
  key_alias        = "arn:${local.p}:kms:${local.region}:${local.account}:alias/${local.prefix}"
  glue = [
    "arn:${local.p}:glue:${local.region}:${local.account}:catalog",
    "arn:${local.p}:glue:${local.region}:${local.account}:database/${var.glue_database_name}",
    "arn:${local.p}:glue:${local.region}:${local.account}:table/${var.glue_database_name}/*",
  ]
  log_group_arn = "arn:${local.p}:logs:${local.region}:${local.account}:log-group"
  log_groups = [
    "${local.log_group_arn}:/aws/lambda/${local.prefix}-*",
    "${local.log_group_arn}:/aws/kinesisfirehose/${local.prefix}-*",
    "${local.log_group_arn}:/aws/apigateway/${local.prefix}-*",
    "${local.log_group_arn}:API-Gateway-Execution-Logs_*",
  ]
  apigateway = [
    for path in ["/restapis", "/restapis/*", "/usageplans", "/usageplans/*", "/apikeys", "/apikeys/*", "/account", "/tags/*"] :
    "arn:${local.p}:apigateway:${local.region}::${path}"
  ]
  state_object = "arn:${local.p}:s3:::${var.tofu_state_bucket}/${var.tofu_state_key}"

  # Condition pinning KMS keys to this environment (key ids are random; the tags come from the
  # provider's default_tags at CreateKey).
  key_tags = { "aws:ResourceTag/Project" = "orderflow", "aws:ResourceTag/Environment" = var.environment }
}

# --- GitHub OIDC --------------------------------------------------------------------------------

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = "https://${local.oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1

  url = "https://${local.oidc_host}"
}

data "aws_iam_policy_document" "trust_deploy" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
    # Only jobs that name the environment (`environment: prod`): their token's subject is
    # repo:<owner>/<repo>:environment:<name>, so the environment's reviewers and branch rules
    # always apply. A `ref:refs/heads/...` subject would let any job on that branch deploy without
    # them. GitHub Docs, "OpenID Connect reference" (example subject claims, filtering for a
    # specific environment).
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = ["repo:${var.github_repository}:environment:${var.deploy_environment}"]
    }
  }
}

data "aws_iam_policy_document" "trust_plan" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [local.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = ["repo:${var.github_repository}:ref:refs/heads/${var.plan_branch}"]
    }
  }
}

resource "aws_iam_role" "deploy" {
  name                 = "${local.prefix}-ci-deploy"
  path                 = local.ci_path
  description          = "tofu plan/apply of orderflow ${var.environment} from GitHub Actions (${var.github_repository}, environment ${var.deploy_environment})"
  assume_role_policy   = data.aws_iam_policy_document.trust_deploy.json
  max_session_duration = 3600
}

resource "aws_iam_role" "plan" {
  name                 = "${local.prefix}-ci-plan"
  path                 = local.ci_path
  description          = "Read-only tofu plan of orderflow ${var.environment} from GitHub Actions (${var.github_repository}, ${var.plan_branch})"
  assume_role_policy   = data.aws_iam_policy_document.trust_plan.json
  max_session_duration = 3600
}

resource "aws_iam_role_policy_attachment" "deploy" {
  for_each = {
    read          = aws_iam_policy.read.arn
    write_data    = aws_iam_policy.write_data.arn
    write_compute = aws_iam_policy.write_compute.arn
  }

  role       = aws_iam_role.deploy.name
  policy_arn = each.value
}

resource "aws_iam_role_policy_attachment" "plan" {
  role       = aws_iam_role.plan.name
  policy_arn = aws_iam_policy.read.arn
}

# --- read (plan and deploy) ---------------------------------------------------------------------

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

# --- write: data services -----------------------------------------------------------------------

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

# --- write: compute, API, IAM, logs, alarms -----------------------------------------------------

data "aws_iam_policy_document" "write_compute" {
  statement {
    sid = "Functions"
    actions = [
      "lambda:CreateFunction",
      "lambda:DeleteFunction",
      "lambda:TagResource",
      "lambda:UntagResource",
      "lambda:UpdateFunctionCode",
      "lambda:UpdateFunctionConfiguration",
    ]
    # Functions named <prefix>-*.
    resources = [local.functions]
  }

  statement {
    sid     = "EventSourceMappings"
    actions = ["lambda:CreateEventSourceMapping", "lambda:DeleteEventSourceMapping", "lambda:UpdateEventSourceMapping"]
    # Mapping ids are random UUIDs (and CreateEventSourceMapping has no resource); the condition
    # limits them to this configuration's functions.
    resources = ["*"]
    condition {
      test     = "ArnLike"
      variable = "lambda:FunctionArn"
      values   = [local.functions]
    }
  }

  # Tagging is a separate statement: lambda:FunctionArn is a condition key of the three mapping
  # actions above only, not of TagResource/UntagResource, so under that condition a tag request
  # (also made for tags on create) is denied. Service Authorization Reference, "Actions, resources,
  # and condition keys for AWS Lambda"; Lambda Developer Guide, "Using tags on event source
  # mappings" (lambda:TagResource is needed to tag on create).
  statement {
    sid     = "TagEventSourceMappings"
    actions = ["lambda:TagResource", "lambda:UntagResource"]
    # Mapping ids are random UUIDs: any mapping of this account and region.
    resources = [local.mappings]
  }

  statement {
    sid = "WorkloadRolesWithBoundary"
    actions = [
      "iam:CreateRole",
      "iam:DeleteRolePolicy",
      "iam:PutRolePermissionsBoundary",
      "iam:PutRolePolicy",
    ]
    # Roles under the workload path only, and only with the workload boundary attached.
    resources = [local.workload_roles]
    condition {
      test     = "StringEquals"
      variable = "iam:PermissionsBoundary"
      values   = [aws_iam_policy.workload_boundary.arn]
    }
  }

  statement {
    sid = "WorkloadRoles"
    actions = [
      "iam:DeleteRole",
      "iam:TagRole",
      "iam:UntagRole",
      "iam:UpdateAssumeRolePolicy",
      "iam:UpdateRole",
    ]
    # Roles under the workload path (all carry the boundary, see above).
    resources = [local.workload_roles]
  }

  statement {
    sid     = "PassWorkloadRoles"
    actions = ["iam:PassRole"]
    # Roles under the workload path, to the services that run them.
    resources = [local.workload_roles]
    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["apigateway.amazonaws.com", "firehose.amazonaws.com", "lambda.amazonaws.com"]
    }
  }

  statement {
    sid = "LogGroups"
    actions = [
      "logs:AssociateKmsKey",
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DeleteLogGroup",
      "logs:DeleteLogStream",
      "logs:DeleteRetentionPolicy",
      "logs:DisassociateKmsKey",
      "logs:PutRetentionPolicy",
      "logs:TagLogGroup",
      "logs:TagResource",
      "logs:UntagLogGroup",
      "logs:UntagResource",
    ]
    # Log groups named after this configuration's functions, streams and API (API ids are random).
    resources = local.log_groups
  }

  statement {
    sid     = "Queues"
    actions = ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:UntagQueue"]
    # Queues named <prefix>-*.
    resources = [local.queues]
  }

  statement {
    sid = "Topics"
    actions = [
      "sns:CreateTopic",
      "sns:DeleteTopic",
      "sns:SetTopicAttributes",
      "sns:Subscribe",
      "sns:TagResource",
      "sns:Unsubscribe",
      "sns:UntagResource",
    ]
    # Topics named <prefix>-* and their subscriptions.
    resources = [local.topics]
  }

  statement {
    sid     = "Api"
    actions = ["apigateway:DELETE", "apigateway:PATCH", "apigateway:POST", "apigateway:PUT"]
    # API Gateway resources are addressed by path; REST API, key and plan ids are random.
    resources = local.apigateway
  }

  statement {
    sid     = "Alarms"
    actions = ["cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:TagResource", "cloudwatch:UntagResource"]
    # Alarms named <prefix>-*.
    resources = [local.alarms]
  }
}

resource "aws_iam_policy" "write_compute" {
  name        = "${local.prefix}-ci-write-compute"
  path        = local.ci_path
  description = "Apply orderflow ${var.environment}: Lambdas, workload roles, API Gateway, queues, topics, logs, alarms."
  policy      = data.aws_iam_policy_document.write_compute.json
}

# --- the workload boundary ----------------------------------------------------------------------

# The most any workload role (Lambda, Firehose, API Gateway) can do, whatever its own policy says.
data "aws_iam_policy_document" "workload_boundary" {
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
    sid = "Stream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamConsumer",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
      "kinesis:PutRecord",
      "kinesis:PutRecords",
      "kinesis:SubscribeToShard",
    ]
    # Streams named <prefix>-* and their consumers.
    resources = [local.streams, local.stream_consumers]
  }

  statement {
    sid = "Key"
    # DescribeKey: DynamoDB checks the table's key with the caller's credentials (consumer).
    actions   = ["kms:Decrypt", "kms:DescribeKey", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }

  statement {
    sid     = "Table"
    actions = ["dynamodb:BatchWriteItem"]
    # Tables named <prefix>-*.
    resources = [local.tables]
  }

  statement {
    sid     = "Queue"
    actions = ["sqs:SendMessage"]
    # Queues named <prefix>-*.
    resources = [local.queues]
  }

  statement {
    sid     = "Transformers"
    actions = ["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"]
    # Functions named <prefix>-*.
    resources = [local.functions]
  }

  statement {
    sid     = "Schema"
    actions = ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"]
    # The catalog, this environment's database and its tables.
    resources = local.glue
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
