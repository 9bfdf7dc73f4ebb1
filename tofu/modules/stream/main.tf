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
