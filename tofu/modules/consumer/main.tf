# Kinesis -> consumer Lambda -> DynamoDB orders table (docs/design.md sections 3 and 6).
data "aws_region" "current" {}

locals {
  function_name = var.function_name
  # With enhanced fan-out the mapping reads through the stream's registered consumer.
  read_from_arn = var.settings.enhanced_fan_out ? var.stream_consumer_arn : var.stream_arn
}

resource "aws_dynamodb_table" "this" {
  name                        = "${var.name_prefix}-orders"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "customer_id"
  range_key                   = "order_id"
  deletion_protection_enabled = true

  attribute {
    name = "customer_id"
    type = "S"
  }

  attribute {
    name = "order_id"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = var.kms_key_arn
  }
}

# Batches that exhaust their retries or age out: the message names the shard and sequence range
# (not the data), so they can be replayed from the stream while it still retains them.
resource "aws_sqs_queue" "on_failure" {
  name                              = "${local.function_name}-on-failure"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = var.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Operational logs (no payloads) kept retention.log_days from tofu/pipeline.json; the audit trail is CloudTrail's.
  name              = "/aws/lambda/${local.function_name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn
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

data "aws_iam_policy_document" "this" {
  statement {
    sid     = "Logs"
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    # The function's own log streams.
    resources = ["${aws_cloudwatch_log_group.this.arn}:*"]
  }

  statement {
    sid = "ReadStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [var.stream_arn]
  }

  statement {
    sid     = "ListStreams"
    actions = ["kinesis:ListStreams"]
    # ListStreams has no resource type: AWS accepts only "*".
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = var.settings.enhanced_fan_out ? [var.stream_consumer_arn] : []
    content {
      sid       = "ReadEnhancedFanOut"
      actions   = ["kinesis:DescribeStreamConsumer", "kinesis:SubscribeToShard"]
      resources = [statement.value]
    }
  }

  statement {
    sid       = "DecryptStreamRecords"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["kinesis.${data.aws_region.current.id}.amazonaws.com"]
    }
  }

  statement {
    sid       = "WriteOrders"
    actions   = ["dynamodb:BatchWriteItem"]
    resources = [aws_dynamodb_table.this.arn]
  }

  # The table is encrypted with the customer-managed key: DynamoDB decrypts the table key with the
  # credentials of the principal accessing the table (CloudTrail shows the caller's role, invoked by
  # dynamodb.amazonaws.com), so the writer needs kms:Decrypt and kms:DescribeKey via DynamoDB.
  # AWS KMS Developer Guide, "How Amazon DynamoDB uses AWS KMS" (key policy for a customer managed
  # key; Decrypt event; DynamoDB encryption context).
  statement {
    sid       = "DecryptTableKey"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${data.aws_region.current.id}.amazonaws.com"]
    }
    # DynamoDB sends this encryption context in all its KMS calls; it pins the grant to this table.
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:dynamodb:tableName"
      values   = [aws_dynamodb_table.this.name]
    }
  }

  statement {
    sid       = "DescribeTableKey"
    actions   = ["kms:DescribeKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["dynamodb.${data.aws_region.current.id}.amazonaws.com"]
    }
  }

  statement {
    sid       = "OnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.on_failure.arn]
  }

  statement {
    sid       = "EncryptOnFailureMessages"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sqs.${data.aws_region.current.id}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "this" {
  name                 = local.function_name
  path                 = var.iam_path
  assume_role_policy   = data.aws_iam_policy_document.assume.json
  permissions_boundary = var.permissions_boundary_arn
}

resource "aws_iam_role_policy" "this" {
  name   = "consumer"
  role   = aws_iam_role.this.id
  policy = data.aws_iam_policy_document.this.json
}

resource "aws_lambda_function" "this" {
  #checkov:skip=CKV_AWS_50:The binary is not instrumented for X-Ray; structured JSON logs and Lambda/Kinesis metrics cover it without a wildcard xray:PutTraceSegments grant.
  #checkov:skip=CKV_AWS_115:Concurrency is bounded by the event source mapping (shards x parallelization_factor); reserving it would take from the account pool and fail on small accounts.
  #checkov:skip=CKV_AWS_116:Invoked synchronously by the Kinesis event source mapping; failed batches go to its on-failure SQS destination, a function DLQ only applies to async invocations.
  #checkov:skip=CKV_AWS_117:Talks only to AWS APIs (Kinesis, DynamoDB, SQS); a VPC would need NAT or endpoints for no isolation gain.
  #checkov:skip=CKV_AWS_272:Code integrity comes from the reproducible Nix build checked against SHA256SUMS and source_code_hash; no AWS Signer profile in this stack.
  function_name    = local.function_name
  role             = aws_iam_role.this.arn
  filename         = var.lambda_zip
  source_code_hash = filebase64sha256(var.lambda_zip)
  handler          = "bootstrap"
  runtime          = "provided.al2023"
  architectures    = ["arm64"]
  memory_size      = var.settings.memory_mb
  timeout          = var.settings.timeout_seconds
  kms_key_arn      = var.kms_key_arn

  environment {
    variables = {
      ORDERS_TABLE = aws_dynamodb_table.this.name
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

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn                   = local.read_from_arn
  function_name                      = aws_lambda_function.this.arn
  starting_position                  = var.settings.starting_position
  batch_size                         = var.settings.batch_size
  maximum_batching_window_in_seconds = var.settings.maximum_batching_window_seconds
  parallelization_factor             = var.settings.parallelization_factor
  maximum_retry_attempts             = var.settings.maximum_retry_attempts
  maximum_record_age_in_seconds      = var.settings.maximum_record_age_seconds
  bisect_batch_on_function_error     = var.settings.bisect_batch_on_function_error
  function_response_types            = ["ReportBatchItemFailures"]

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.on_failure.arn
    }
  }
}
