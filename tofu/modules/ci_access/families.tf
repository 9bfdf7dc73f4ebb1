# The resource families this configuration manages, each once: its ARNs (with the reason for any
# wildcard), what the plan role may read, what the deploy role may write, and what a workload role
# may do at most. The deploy role's writes are split over two managed policies (write_data,
# write_compute) to keep each under IAM's 6,144-character limit. Statements that need a condition
# or belong to one policy only are written out in read.tf, write_data.tf, write_compute.tf and
# boundary.tf; these become one statement per family and policy, sid <Policy><Family>.
locals {
  families = {
    Keys = {
      # Key ids are random: any key, but only with this environment's tags (the conditions).
      resources  = [local.keys]
      conditions = local.key_tags
      read       = ["kms:DescribeKey", "kms:GetKeyPolicy", "kms:GetKeyRotationStatus", "kms:ListResourceTags"]
      write_data = [
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
    }
    Buckets = {
      # Buckets named <prefix>-*.
      resources = [local.buckets]
      read = [
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
      write_data = [
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
    }
    Streams = {
      # Streams named <prefix>-* and their consumers.
      resources = [local.streams, local.stream_consumers]
      read = [
        "kinesis:DescribeStream",
        "kinesis:DescribeStreamConsumer",
        "kinesis:DescribeStreamSummary",
        "kinesis:ListStreamConsumers",
        "kinesis:ListTagsForResource",
        "kinesis:ListTagsForStream",
      ]
      write_data = [
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
      workload = [
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
    }
    Tables = {
      # Tables named <prefix>-* (deletion protection stays on; removing it is a deliberate change).
      resources = [local.tables]
      read = [
        "dynamodb:DescribeContinuousBackups",
        "dynamodb:DescribeTable",
        "dynamodb:DescribeTimeToLive",
        "dynamodb:GetResourcePolicy",
        "dynamodb:ListTagsOfResource",
      ]
      write_data = [
        "dynamodb:CreateTable",
        "dynamodb:DeleteTable",
        "dynamodb:TagResource",
        "dynamodb:UntagResource",
        "dynamodb:UpdateContinuousBackups",
        "dynamodb:UpdateTable",
        "dynamodb:UpdateTimeToLive",
      ]
      workload = ["dynamodb:PutItem"]
    }
    DeliveryStreams = {
      # Delivery streams named <prefix>-*.
      resources  = [local.delivery_streams]
      read       = ["firehose:DescribeDeliveryStream", "firehose:ListTagsForDeliveryStream"]
      write_data = ["firehose:CreateDeliveryStream", "firehose:DeleteDeliveryStream", "firehose:TagDeliveryStream", "firehose:UntagDeliveryStream", "firehose:UpdateDestination"]
    }
    Catalog = {
      # The catalog, this environment's database and its tables.
      resources = local.glue
      read      = ["glue:GetDatabase", "glue:GetPartitionIndexes", "glue:GetTable", "glue:GetTags"]
      write_data = [
        "glue:CreateDatabase",
        "glue:CreateTable",
        "glue:DeleteDatabase",
        "glue:DeleteTable",
        "glue:TagResource",
        "glue:UntagResource",
        "glue:UpdateDatabase",
        "glue:UpdateTable",
      ]
      workload = ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"]
    }
    Workgroup = {
      resources  = [local.workgroup]
      read       = ["athena:BatchGetNamedQuery", "athena:GetNamedQuery", "athena:GetWorkGroup", "athena:ListNamedQueries", "athena:ListTagsForResource"]
      write_data = ["athena:CreateNamedQuery", "athena:CreateWorkGroup", "athena:DeleteNamedQuery", "athena:DeleteWorkGroup", "athena:TagResource", "athena:UntagResource", "athena:UpdateNamedQuery", "athena:UpdateWorkGroup"]
    }
    Functions = {
      # Functions named <prefix>-*.
      resources = [local.functions]
      read = [
        "lambda:GetFunction",
        "lambda:GetFunctionCodeSigningConfig",
        "lambda:GetFunctionConfiguration",
        "lambda:GetFunctionRecursionConfig",
        "lambda:GetPolicy",
        "lambda:GetRuntimeManagementConfig",
        "lambda:ListTags",
        "lambda:ListVersionsByFunction",
      ]
      write_compute = [
        "lambda:CreateFunction",
        "lambda:DeleteFunction",
        "lambda:TagResource",
        "lambda:UntagResource",
        "lambda:UpdateFunctionCode",
        "lambda:UpdateFunctionConfiguration",
      ]
      # Firehose invokes the transformers with the delivery role.
      workload = ["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"]
    }
    EventSourceMappings = {
      # Mapping ids are random UUIDs: any mapping of this account and region. Creating, changing
      # and deleting them is in write_compute.tf, under a condition naming the functions; tagging
      # is here because lambda:FunctionArn is not a condition key of TagResource/UntagResource
      # (Service Authorization Reference, "Actions, resources, and condition keys for AWS Lambda";
      # Lambda Developer Guide, "Using tags on event source mappings": tagging on create needs it).
      resources     = [local.mappings]
      read          = ["lambda:GetEventSourceMapping", "lambda:ListTags"]
      write_compute = ["lambda:TagResource", "lambda:UntagResource"]
    }
    LogGroups = {
      # Log groups named after this configuration's functions, streams and API (API ids are random).
      resources = local.log_groups
      read      = ["logs:DescribeLogStreams", "logs:ListTagsForResource", "logs:ListTagsLogGroup"]
      write_compute = [
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
    }
    Queues = {
      # Queues named <prefix>-*.
      resources     = [local.queues]
      read          = ["sqs:GetQueueAttributes", "sqs:GetQueueUrl", "sqs:ListQueueTags"]
      write_compute = ["sqs:CreateQueue", "sqs:DeleteQueue", "sqs:SetQueueAttributes", "sqs:TagQueue", "sqs:UntagQueue"]
      workload      = ["sqs:SendMessage"]
    }
    Topics = {
      # Topics named <prefix>-* and their subscriptions.
      resources     = [local.topics]
      read          = ["sns:GetSubscriptionAttributes", "sns:GetTopicAttributes", "sns:ListTagsForResource"]
      write_compute = ["sns:CreateTopic", "sns:DeleteTopic", "sns:SetTopicAttributes", "sns:Subscribe", "sns:TagResource", "sns:Unsubscribe", "sns:UntagResource"]
    }
    Api = {
      # API Gateway resources are addressed by path; REST API, key and plan ids are random.
      resources     = local.apigateway
      read          = ["apigateway:GET"]
      write_compute = ["apigateway:DELETE", "apigateway:PATCH", "apigateway:POST", "apigateway:PUT"]
    }
    Alarms = {
      # Alarms named <prefix>-*.
      resources     = [local.alarms]
      read          = ["cloudwatch:DescribeAlarms", "cloudwatch:ListTagsForResource"]
      write_compute = ["cloudwatch:DeleteAlarms", "cloudwatch:PutMetricAlarm", "cloudwatch:TagResource", "cloudwatch:UntagResource"]
    }
  }

  # The policies made from the table, and their statements' sid prefixes.
  family_policies = {
    read          = "Read"
    write_data    = "Write"
    write_compute = "Write"
    workload      = "Workload"
  }
}

# One document per policy: a statement for each family with actions in it. read.tf,
# write_data.tf, write_compute.tf and boundary.tf add their own statements to these.
data "aws_iam_policy_document" "families" {
  for_each = local.family_policies

  dynamic "statement" {
    for_each = { for name, family in local.families : name => family if length(lookup(family, each.key, [])) > 0 }
    content {
      sid       = "${each.value}${statement.key}"
      actions   = statement.value[each.key]
      resources = statement.value.resources
      dynamic "condition" {
        for_each = lookup(statement.value, "conditions", {})
        content {
          test     = "StringEquals"
          variable = condition.key
          values   = [condition.value]
        }
      }
    }
  }
}
