# Deploy-role writes, part 2: the Lambdas, the workload roles (only under the workload IAM path,
# only with the boundary of boundary.tf), API Gateway, queues, topics, logs and alarms.

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
