variable "function_name" {
  description = "The function's name (also its role's and log group's): the prefix and the binary's name in tofu/lambdas.json."
  type        = string
}

variable "lambda_zip" {
  description = "Path of the function's zip (one file: bootstrap, arm64, provided.al2023)."
  type        = string
}

variable "memory_mb" {
  description = "Memory of the function (a setting of tofu/pipeline.json, bounded in tofu/pipeline.bounds.json)."
  type        = number
}

variable "timeout_seconds" {
  description = "Timeout of the function (a setting of tofu/pipeline.json, bounded in tofu/pipeline.bounds.json; the caller may allow less, as Firehose does)."
  type        = number
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
