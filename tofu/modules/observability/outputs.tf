output "sns_topic_arn" {
  description = "ARN of the alarm topic (subscribe pagers or chat integrations to it)."
  value       = aws_sns_topic.this.arn
}

output "alarm_names" {
  description = "Names of the CloudWatch alarms."
  value       = [for alarm in aws_cloudwatch_metric_alarm.this : alarm.alarm_name]
}
