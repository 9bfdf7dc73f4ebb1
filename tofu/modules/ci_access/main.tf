# GitHub Actions access without long-lived keys:
#   - <prefix>-ci-deploy: assumable from jobs in the deploy environment only; can
#     create and change exactly the resources of this configuration (by name prefix, IAM path,
#     or tags), and may create roles only under the workload IAM path with the workload
#     permissions boundary attached, so it cannot mint a role more powerful than the workloads.
#   - <prefix>-ci-plan: assumable from the plan branch; read-only, for `tofu plan -lock=false`.
# The CI roles, their policies and the boundary live under a separate IAM path that the deploy
# role cannot write to: changing them takes an administrator's apply (see tofu/README.md).
# Files: roles.tf (OIDC provider, roles), families.tf (each resource family's ARNs and actions, once),
# read.tf, write_data.tf, write_compute.tf (the roles' policies), boundary.tf (the workload
# permissions boundary).
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

