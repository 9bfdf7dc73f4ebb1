# The GitHub OIDC provider, the two CI roles and which policies each gets (the header of main.tf
# says what each role may do).

resource "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 1 : 0

  url            = "https://${local.oidc_host}"
  client_id_list = ["sts.amazonaws.com"]
}

data "aws_iam_openid_connect_provider" "github" {
  count = var.create_github_oidc_provider ? 0 : 1

  url = "https://${local.oidc_host}"
}

locals {
  # The one subject (token `sub` claim) each CI role trusts. Deploy: only jobs that name the
  # environment (`environment: prod`), whose subject is repo:<owner>/<repo>:environment:<name>,
  # so the environment's reviewers and branch rules always apply; a `ref:refs/heads/...` subject
  # would let any job on that branch deploy without them. GitHub Docs, "OpenID Connect reference"
  # (example subject claims, filtering for a specific environment). Plan: the plan branch.
  trusted_subjects = {
    deploy = "repo:${var.github_repository}:environment:${var.deploy_environment}"
    plan   = "repo:${var.github_repository}:ref:refs/heads/${var.plan_branch}"
  }
}

data "aws_iam_policy_document" "trust" {
  for_each = local.trusted_subjects

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
      values   = [each.value]
    }
  }
}

resource "aws_iam_role" "ci" {
  for_each = {
    deploy = "tofu plan/apply of orderflow ${var.environment} from GitHub Actions (${var.github_repository}, environment ${var.deploy_environment})"
    plan   = "Read-only tofu plan of orderflow ${var.environment} from GitHub Actions (${var.github_repository}, ${var.plan_branch})"
  }

  name                 = "${local.prefix}-ci-${each.key}"
  path                 = local.ci_path
  description          = each.value
  assume_role_policy   = data.aws_iam_policy_document.trust[each.key].json
  max_session_duration = 3600
}

# The roles were two resources before; stacks applied then keep them.
moved {
  from = aws_iam_role.deploy
  to   = aws_iam_role.ci["deploy"]
}

moved {
  from = aws_iam_role.plan
  to   = aws_iam_role.ci["plan"]
}

resource "aws_iam_role_policy_attachment" "deploy" {
  for_each = {
    read          = aws_iam_policy.read.arn
    write_data    = aws_iam_policy.write_data.arn
    write_compute = aws_iam_policy.write_compute.arn
  }

  role       = aws_iam_role.ci["deploy"].name
  policy_arn = each.value
}

resource "aws_iam_role_policy_attachment" "plan" {
  role       = aws_iam_role.ci["plan"].name
  policy_arn = aws_iam_policy.read.arn
}
