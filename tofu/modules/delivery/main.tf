# One table's path: orders stream -> Firehose -> transformer Lambda (rows + partition keys)
# -> Parquet (schema from the Glue table) -> s3://<data bucket>/<table>/year=/month=/day=/.
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  name                = "${var.name_prefix}-${replace(var.table_name, "_", "-")}"
  transformer_name    = var.transformer_name
  prefix              = replace(var.settings.prefix, "{table}", var.table_name)
  error_output_prefix = replace(var.settings.error_output_prefix, "{table}", var.table_name)
  # The constant leading parts of both prefixes, e.g. "orders/year=" and "errors/orders/".
  object_prefixes = [split("!{", local.prefix)[0], split("!{", local.error_output_prefix)[0]]

  glue_arn_prefix = "arn:${data.aws_partition.current.partition}:glue:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}"
}

# --- transformer Lambda -------------------------------------------------------------------------

# Its role may only write its own log streams (the transformation is pure), which the
# lambda_function module grants.
module "transformer" {
  source = "../lambda_function"

  function_name   = local.transformer_name
  lambda_zip      = var.lambda_zip
  memory_mb       = var.settings.transformer_memory_mb
  timeout_seconds = var.settings.transformer_timeout_seconds
  policy_name     = "transformer"
  workload        = var.workload
}

# --- Firehose -----------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "firehose" {
  #checkov:skip=CKV_AWS_338:Delivery error logs kept retention.log_days from tofu/pipeline.json; the failed records themselves are kept under the error prefix.
  name              = "/aws/kinesisfirehose/${local.name}"
  retention_in_days = var.workload.log_retention_days
  kms_key_id        = var.workload.kms_key_arn
}

resource "aws_cloudwatch_log_stream" "firehose" {
  name           = "DestinationDelivery"
  log_group_name = aws_cloudwatch_log_group.firehose.name
}

data "aws_iam_policy_document" "firehose_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["firehose.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "sts:ExternalId"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

data "aws_iam_policy_document" "firehose" {
  # Reading the stream: its statements come from the stream module.
  source_policy_documents = [var.stream_read_policy_json]

  statement {
    sid       = "Transform"
    actions   = ["lambda:GetFunctionConfiguration", "lambda:InvokeFunction"]
    resources = [module.transformer.function_arn]
  }

  statement {
    sid     = "TableSchema"
    actions = ["glue:GetTable", "glue:GetTableVersion", "glue:GetTableVersions"]
    resources = [
      "${local.glue_arn_prefix}:catalog",
      "${local.glue_arn_prefix}:database/${var.glue_database_name}",
      "${local.glue_arn_prefix}:table/${var.glue_database_name}/${var.glue_table_name}",
    ]
  }

  statement {
    sid       = "Bucket"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketMultipartUploads"]
    resources = [var.data_bucket_arn]
  }

  statement {
    sid     = "Objects"
    actions = ["s3:AbortMultipartUpload", "s3:GetObject", "s3:PutObject"]
    # Only this table's data and error prefixes; the partition part of each key is dynamic.
    resources = [for prefix in local.object_prefixes : "${var.data_bucket_arn}/${prefix}*"]
  }

  statement {
    sid       = "EncryptObjects"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.workload.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${data.aws_region.current.id}.amazonaws.com"]
    }
    # With S3 Bucket Keys the encryption context is the bucket ARN.
    condition {
      test     = "StringEquals"
      variable = "kms:EncryptionContext:aws:s3:arn"
      values   = [var.data_bucket_arn]
    }
  }

  statement {
    sid       = "Logs"
    actions   = ["logs:PutLogEvents"]
    resources = [aws_cloudwatch_log_stream.firehose.arn]
  }
}

resource "aws_iam_role" "firehose" {
  name                 = "${local.name}-firehose"
  path                 = var.workload.iam_path
  assume_role_policy   = data.aws_iam_policy_document.firehose_assume.json
  permissions_boundary = var.workload.permissions_boundary_arn
}

resource "aws_iam_role_policy" "firehose" {
  name   = "firehose"
  role   = aws_iam_role.firehose.id
  policy = data.aws_iam_policy_document.firehose.json
}

resource "aws_kinesis_firehose_delivery_stream" "this" {
  #checkov:skip=CKV_AWS_240:Firehose server-side encryption cannot be enabled with a Kinesis stream as source; the source stream and the S3 objects are encrypted with the customer-managed key.
  #checkov:skip=CKV_AWS_241:Same as CKV_AWS_240: with a Kinesis source the stream's own CMK encryption applies, and S3 output uses the CMK (kms_key_arn).
  name        = local.name
  destination = "extended_s3"

  kinesis_source_configuration {
    kinesis_stream_arn = var.stream_arn
    role_arn           = aws_iam_role.firehose.arn
  }

  extended_s3_configuration {
    role_arn            = aws_iam_role.firehose.arn
    bucket_arn          = var.data_bucket_arn
    prefix              = local.prefix
    error_output_prefix = local.error_output_prefix
    file_extension      = var.settings.file_extension
    buffering_size      = var.settings.buffering_size_mb
    buffering_interval  = var.settings.buffering_interval_seconds
    # Parquet compresses itself (SNAPPY below); Firehose requires UNCOMPRESSED with conversion.
    compression_format = "UNCOMPRESSED"
    kms_key_arn        = var.workload.kms_key_arn
    custom_time_zone   = "UTC"

    cloudwatch_logging_options {
      enabled         = true
      log_group_name  = aws_cloudwatch_log_group.firehose.name
      log_stream_name = aws_cloudwatch_log_stream.firehose.name
    }

    processing_configuration {
      enabled = true

      processors {
        type = "Lambda"

        parameters {
          parameter_name  = "LambdaArn"
          parameter_value = module.transformer.function_arn
        }
        parameters {
          parameter_name  = "BufferSizeInMBs"
          parameter_value = tostring(var.settings.processor_buffer_size_mb)
        }
        parameters {
          parameter_name  = "BufferIntervalInSeconds"
          parameter_value = tostring(var.settings.processor_buffer_interval_seconds)
        }
      }
    }

    dynamic_partitioning_configuration {
      enabled = true
    }

    data_format_conversion_configuration {
      enabled = true

      input_format_configuration {
        deserializer {
          # The transformer writes Hive's own timestamp and date text, so no custom formats.
          hive_json_ser_de {}
        }
      }

      output_format_configuration {
        serializer {
          parquet_ser_de {
            compression = "SNAPPY"
          }
        }
      }

      schema_configuration {
        database_name = var.glue_database_name
        table_name    = var.glue_table_name
        role_arn      = aws_iam_role.firehose.arn
        region        = data.aws_region.current.id
        catalog_id    = data.aws_caller_identity.current.account_id
      }
    }
  }

  depends_on = [aws_iam_role_policy.firehose]
}
