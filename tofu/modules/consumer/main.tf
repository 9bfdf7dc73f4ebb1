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
    kms_key_arn = var.workload.kms_key_arn
  }
}

# Batches that exhaust their retries or age out: the message names the shard and sequence range
# (not the data), so they can be replayed from the stream while it still retains them.
resource "aws_sqs_queue" "on_failure" {
  name                              = "${local.function_name}-on-failure"
  message_retention_seconds         = 1209600
  kms_master_key_id                 = var.workload.kms_key_arn
  kms_data_key_reuse_period_seconds = 300
}

# The consumer's permissions beyond writing its own log streams (the lambda_function module adds those).
data "aws_iam_policy_document" "this" {
  # Reading the stream: its statements come from the stream module.
  source_policy_documents = [var.stream_read_policy_json]

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

  # One conditional PutItem per order (crates/consumer/src/write.rs); nothing else on the table.
  statement {
    sid       = "WriteOrders"
    actions   = ["dynamodb:PutItem"]
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
    resources = [var.workload.kms_key_arn]
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
    resources = [var.workload.kms_key_arn]
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
    resources = [var.workload.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["sqs.${data.aws_region.current.id}.amazonaws.com"]
    }
  }
}

# The function, its role and log group (tofu/modules/lambda_function), with the permissions above.
module "function" {
  source = "../lambda_function"

  function_name   = local.function_name
  lambda_zip      = var.lambda_zip
  memory_mb       = var.settings.memory_mb
  timeout_seconds = var.settings.timeout_seconds
  environment     = { ORDERS_TABLE = aws_dynamodb_table.this.name }
  policy_name     = "consumer"
  policy_json     = data.aws_iam_policy_document.this.json
  workload        = var.workload
}

resource "aws_lambda_event_source_mapping" "this" {
  event_source_arn                   = local.read_from_arn
  function_name                      = module.function.function_arn
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
