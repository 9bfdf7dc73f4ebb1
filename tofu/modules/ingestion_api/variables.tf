variable "name" {
  description = "Name of the REST API (also the prefix of its role, log groups, key and usage plan)."
  type        = string
}

variable "stage_name" {
  description = "Stage name; the base URL is https://<api>.execute-api.<region>.amazonaws.com/<stage_name>."
  type        = string
  default     = "live"
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

variable "stream_name" {
  description = "Name of the orders stream; set on the server side, never taken from the client."
  type        = string
}

variable "stream_arn" {
  description = "ARN of the orders stream."
  type        = string
}

variable "order_schema_path" {
  description = "Path of the order's JSON Schema (draft 4), crates/domain/schema/order.schema.json."
  type        = string
}

variable "api_settings" {
  description = "The api section of tofu/pipeline.json."
  type = object({
    rate_limit       = number
    burst_limit      = number
    quota_per_day    = number
    max_batch_orders = number
  })

  validation {
    # PutRecords takes at most 500 records per call.
    condition     = var.api_settings.max_batch_orders >= 1 && var.api_settings.max_batch_orders <= 500
    error_message = "api.max_batch_orders must be 1-500 (Kinesis PutRecords limit)."
  }
  validation {
    condition     = var.api_settings.rate_limit > 0 && var.api_settings.burst_limit >= 1 && var.api_settings.quota_per_day >= 1
    error_message = "api.rate_limit, api.burst_limit and api.quota_per_day must be positive."
  }
}

variable "manage_api_gateway_account" {
  description = "Set the region-wide API Gateway CloudWatch Logs role (one per account and region)."
  type        = bool
}

variable "admin_iam_path" {
  description = "IAM path of roles only an administrator's apply may change (the CI roles' path); the region-wide logging role is created there, without the workload boundary."
  type        = string

  validation {
    condition     = can(regex("^/([A-Za-z0-9_-]+/)+$", var.admin_iam_path))
    error_message = "admin_iam_path must look like /orderflow/prod-ci/."
  }
}

variable "delivery_stream_arns" {
  description = "ARNs of the Firehose delivery streams reading the orders stream. The stage (the only way in) is created after them: a delivery stream reads a Kinesis source from LATEST at creation, so orders accepted before it exists would never reach S3."
  type        = list(string)
}
