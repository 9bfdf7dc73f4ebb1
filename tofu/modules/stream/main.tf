resource "aws_kinesis_stream" "this" {
  name             = var.name
  shard_count      = var.stream_settings.shard_count
  retention_period = var.stream_settings.retention_hours
  encryption_type  = "KMS"
  kms_key_id       = var.kms_key_arn

  stream_mode_details {
    stream_mode = "PROVISIONED"
  }
}

resource "aws_kinesis_stream_consumer" "this" {
  count = var.enhanced_fan_out ? 1 : 0

  name       = var.enhanced_fan_out_id
  stream_arn = aws_kinesis_stream.this.arn
}

data "aws_region" "current" {}

# What a role needs to read the stream's records: the consumer Lambda and each table's Firehose
# stream take these statements into their policies.
data "aws_iam_policy_document" "read" {
  statement {
    sid = "ReadStream"
    actions = [
      "kinesis:DescribeStream",
      "kinesis:DescribeStreamSummary",
      "kinesis:GetRecords",
      "kinesis:GetShardIterator",
      "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.this.arn]
  }

  # The records are encrypted with the stack's key; Kinesis decrypts them for the reader.
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
}
