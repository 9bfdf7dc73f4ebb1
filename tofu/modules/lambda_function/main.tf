# One arm64 Lambda function of this stack (the consumer, each table's transformer): its log group,
# its role (under the workload IAM path, with the workload boundary), the role's inline policy (its
# own log streams plus the caller's statements) and the function running the zip's `bootstrap` on
# provided.al2023 with JSON logs. Callers pass only what differs: name, zip, sizes, environment and
# permissions.

locals {
  # Environment variables are encrypted with the stack's key; a function without any gets no key.
  has_environment = length(var.environment) > 0
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Operational logs (no payloads) kept retention.log_days from tofu/pipeline.json; the audit trail is CloudTrail's.
  name              = "/aws/lambda/${var.function_name}"
  retention_in_days = var.workload.log_retention_days
  kms_key_id        = var.workload.kms_key_arn
}

data "aws_iam_policy_document" "assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

# What every function's role needs for itself.
data "aws_iam_policy_document" "own" {
  statement {
    sid     = "Logs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    # The function's own log streams.
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  # Lambda decrypts the environment (encrypted with the stack's key, kms_key_arn below) with the
  # function's role when it starts an execution environment; without this grant every invocation
  # fails with KMSAccessDeniedException ("Lambda was unable to decrypt the environment
  # variables"), as in cattle-ops/terraform-aws-gitlab-runner pull request 1253; AWS SAM adds the
  # same statement for functions with KmsKeyArn (aws/serverless-application-model issue 1989).
  dynamic "statement" {
    for_each = local.has_environment ? [var.workload.kms_key_arn] : []
    content {
      sid       = "DecryptEnvironment"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

data "aws_iam_policy_document" "this" {
  source_policy_documents = concat(
    [data.aws_iam_policy_document.own.json],
    var.policy_json == null ? [] : [var.policy_json],
  )
}

resource "aws_iam_role" "this" {
  name                 = var.function_name
  path                 = var.workload.iam_path
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.workload.permissions_boundary_arn
}

resource "aws_iam_role_policy" "this" {
  name   = var.policy_name
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_50:The binaries are not instrumented for X-Ray; structured JSON logs and the Lambda, Kinesis and Firehose metrics cover them without a wildcard xray:PutTraceSegments grant.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded by the caller (Kinesis: shards x parallelization_factor; Firehose: one invocation per shard and buffer); reserving it would take from the account pool and fail on small accounts.
  #checkov:skip=CKV_AWS_116:Invoked synchronously (Kinesis event source mapping with an on-failure SQS destination; Firehose, which retries and writes failed records to the error prefix); a function DLQ only applies to async invocations.
  #checkov:skip=CKV_AWS_117:Talks only to AWS APIs or to nothing; a VPC would need NAT or endpoints for no isolation gain.
  #checkov:skip=CKV_AWS_272:Code integrity comes from the reproducible Nix build checked against SHA256SUMS and source_code_hash; no AWS Signer profile in this stack.
  function_name    = var.function_name
  role             = aws_iam_role.this.arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  memory_size      = var.memory_mb
  timeout          = var.timeout_seconds
  kms_key_arn      = local.has_environment ? var.workload.kms_key_arn : null

  dynamic "environment" {
    for_each = local.has_environment ? [var.environment] : []
    content {
      variables = environment.value
    }
  }

  logging_config {
    log_format            = "JSON"
    log_group             = aws_cloudwatch_log_group.this.name
    application_log_level = "INFO"
    system_log_level      = "WARN"
  }

  depends_on = [aws_iam_role_policy.this]
}
