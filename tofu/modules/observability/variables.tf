variable "name_prefix" {
  description = "Prefix of every resource name, e.g. orderflow-prod."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the alarm topic."
  type        = string
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the alarm topic."
  type        = list(string)
  default     = []
}

variable "stream_name" {
  description = "Name of the orders stream."
  type        = string
}

variable "consumer_function" {
  description = "Name of the consumer Lambda."
  type        = string
}

variable "on_failure_queue_name" {
  description = "Name of the consumer's on-failure SQS queue."
  type        = string
}

variable "transformer_functions" {
  description = "Transformer Lambda name by table."
  type        = map(string)
}

variable "delivery_streams" {
  description = "Firehose delivery stream name by table."
  type        = map(string)
}

variable "api_name" {
  description = "Name of the REST API."
  type        = string
}

variable "api_stage_name" {
  description = "Name of the REST API's stage."
  type        = string
}

variable "iterator_age_threshold_ms" {
  description = "Alarm when the oldest unread record is older than this (milliseconds; derived from bounded settings in tofu/main.tf)."
  type        = number
}

variable "delivery_freshness_threshold_s" {
  description = "Alarm when Firehose's oldest undelivered record is older than this (seconds; derived from bounded settings in tofu/main.tf)."
  type        = number
}
