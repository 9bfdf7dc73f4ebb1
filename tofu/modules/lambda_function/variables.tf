variable "function_name" {
  description = "The function's name (also its role's and log group's): the prefix and the binary's name in tofu/lambdas.json."
  type        = string
}

variable "lambda_zip" {
  description = "Path of the function's zip (one file: bootstrap, arm64, provided.al2023)."
  type        = string
}

variable "memory_mb" {
  description = "Memory of the function (a setting of tofu/pipeline.json)."
  type        = number

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240 && floor(var.memory_mb) == var.memory_mb
    error_message = "Memory (consumer.memory_mb or delivery.transformer_memory_mb in tofu/pipeline.json) must be a whole number of MB, 128-10240."
  }
}

variable "timeout_seconds" {
  description = "Timeout of the function (a setting of tofu/pipeline.json; the caller may allow less, as Firehose does)."
  type        = number

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 900 && floor(var.timeout_seconds) == var.timeout_seconds
    error_message = "Timeout (consumer.timeout_seconds or delivery.transformer_timeout_seconds in tofu/pipeline.json) must be a whole number of seconds, 1-900."
  }
}

variable "environment" {
  description = "Environment variables: exactly those the binary reads (crates/infra-tests checks them). Empty for none."
  type        = map(string)
  default     = {}
}

variable "policy_name" {
  description = "Name of the role's inline policy."
  type        = string
}

variable "policy_json" {
  description = "The function's permissions beyond writing its own log streams: an IAM policy document's JSON, or null for none."
  type        = string
  default     = null
}

variable "workload" {
  description = "What every workload role and log group of the stack shares (local.workload in tofu/main.tf): the roles' IAM path and permissions boundary, the stack's KMS key, and the log retention (retention.log_days in tofu/pipeline.json)."
  type = object({
    iam_path                 = string
    permissions_boundary_arn = string
    kms_key_arn              = string
    log_retention_days       = number
  })
}
