# Deploy-role writes, part 2: the Lambdas, the workload roles (only under the workload IAM path,
# only with the boundary of boundary.tf), API Gateway, queues, topics, logs and alarms. The
# families' write_compute actions come from families.tf.

data "aws_iam_policy_document" "write_compute" {
  source_policy_documents = [data.aws_iam_policy_document.families["write_compute"].json]

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
}

resource "aws_iam_policy" "write_compute" {
  name        = "${local.prefix}-ci-write-compute"
  path        = local.ci_path
  description = "Apply orderflow ${var.environment}: Lambdas, workload roles, API Gateway, queues, topics, logs, alarms."
  policy      = data.aws_iam_policy_document.write_compute.json
}
