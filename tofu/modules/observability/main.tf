data "aws_caller_identity" "current" {}

resource "aws_sns_topic" "this" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = var.kms_key_arn
}

data "aws_iam_policy_document" "topic" {
  statement {
    sid     = "CloudWatchAlarms"
    actions = ["sns:Publish"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
    resources = [aws_sns_topic.this.arn]
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_sns_topic_policy" "this" {
  arn    = aws_sns_topic.this.arn
  policy = data.aws_iam_policy_document.topic.json
}

resource "aws_sns_topic_subscription" "email" {
  for_each = toset(var.alarm_email_addresses)

  topic_arn = aws_sns_topic.this.arn
  protocol  = "email"
  endpoint  = each.value
}

locals {
  topic = [aws_sns_topic.this.arn]

  # One entry per alarm; every alarm notifies the topic when it fires and when it clears.
  alarms = merge(
    {
      # GetRecords.IteratorAgeMilliseconds covers GetRecords readers only: the four Firehose
      # streams (and the consumer only when it polls without enhanced fan-out; with it, the
      # consumer's lag is the Lambda IteratorAge alarm below). Kinesis Data Streams Developer
      # Guide, "Monitor the Amazon Kinesis Data Streams service with Amazon CloudWatch".
      stream-iterator-age = {
        description = "A GetRecords reader of the orders stream (the Firehose delivery streams; the consumer only without enhanced fan-out) lags: its oldest unread record is older than half the consumer's maximum record age. Records it does not read within the stream's retention are lost to it."
        namespace   = "AWS/Kinesis"
        metric      = "GetRecords.IteratorAgeMilliseconds"
        dimensions  = { StreamName = var.stream_name }
        statistic   = "Maximum"
        comparison  = "GreaterThanThreshold"
        threshold   = var.iterator_age_threshold_ms
        periods     = 5
      }
      consumer-iterator-age = {
        description = "The consumer Lambda lags behind the stream."
        namespace   = "AWS/Lambda"
        metric      = "IteratorAge"
        dimensions  = { FunctionName = var.consumer_function }
        statistic   = "Maximum"
        comparison  = "GreaterThanThreshold"
        threshold   = var.iterator_age_threshold_ms
        periods     = 5
      }
      consumer-errors = {
        description = "The consumer Lambda failed invocations (batches are retried, then bisected)."
        namespace   = "AWS/Lambda"
        metric      = "Errors"
        dimensions  = { FunctionName = var.consumer_function }
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
        periods     = 5
      }
      consumer-on-failure-queue = {
        description = "Batches exhausted their retries: replay them from the stream before it drops them."
        namespace   = "AWS/SQS"
        metric      = "ApproximateNumberOfMessagesVisible"
        dimensions  = { QueueName = var.on_failure_queue_name }
        statistic   = "Maximum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
        periods     = 1
      }
      api-5xx = {
        description = "The ingestion API answered 5xx (stream or integration failures)."
        namespace   = "AWS/ApiGateway"
        metric      = "5XXError"
        dimensions  = { ApiName = var.api_name, Stage = var.api_stage_name }
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
        periods     = 1
      }
    },
    merge([
      for table, stream in var.delivery_streams : {
        "${table}-delivery-freshness" = {
          description = "Firehose ${stream} holds records older than the threshold (delivery to S3 is failing or slow)."
          namespace   = "AWS/Firehose"
          metric      = "DeliveryToS3.DataFreshness"
          dimensions  = { DeliveryStreamName = stream }
          statistic   = "Maximum"
          comparison  = "GreaterThanThreshold"
          threshold   = var.delivery_freshness_threshold_s
          periods     = 3
        }
        "${table}-delivery-success" = {
          description = "Firehose ${stream} failed to put objects to S3."
          namespace   = "AWS/Firehose"
          metric      = "DeliveryToS3.Success"
          dimensions  = { DeliveryStreamName = stream }
          statistic   = "Minimum"
          comparison  = "LessThanThreshold"
          threshold   = 1
          periods     = 3
        }
      }
    ]...),
    {
      for table, function in var.transformer_functions : "${table}-transformer-errors" => {
        description = "Transformer ${function} failed invocations (Firehose retries, then writes the records to the error prefix)."
        namespace   = "AWS/Lambda"
        metric      = "Errors"
        dimensions  = { FunctionName = function }
        statistic   = "Sum"
        comparison  = "GreaterThanThreshold"
        threshold   = 0
        periods     = 3
      }
    },
  )
}

resource "aws_cloudwatch_metric_alarm" "this" {
  for_each = local.alarms

  alarm_name          = "${var.name_prefix}-${each.key}"
  alarm_description   = each.value.description
  namespace           = each.value.namespace
  metric_name         = each.value.metric
  dimensions          = each.value.dimensions
  statistic           = each.value.statistic
  comparison_operator = each.value.comparison
  threshold           = each.value.threshold
  period              = 60
  evaluation_periods  = each.value.periods
  # No data means no traffic, not a failure.
  treat_missing_data = "notBreaching"
  alarm_actions      = local.topic
  ok_actions         = local.topic
}
