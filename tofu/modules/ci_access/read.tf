# Read access to everything this configuration manages: the plan role's only policy, and the
# deploy role's first. The families' read actions come from families.tf.

data "aws_iam_policy_document" "read" {
  source_policy_documents = [data.aws_iam_policy_document.families["read"].json]

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
