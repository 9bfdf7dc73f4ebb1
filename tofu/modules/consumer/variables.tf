variable "name_prefix" {
  description = "Prefix of every resource name, e.g. orderflow-prod."
  type        = string
}

variable "function_name" {
  description = "The consumer Lambda's name: the prefix and the binary's name in tofu/lambdas.json."
  type        = string
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

variable "lambda_zip" {
  description = "Path of consumer.zip (one file: bootstrap, arm64, provided.al2023)."
  type        = string
}

variable "stream_read_policy_json" {
  description = "The stream module's read_policy_json: the statements that read (and decrypt) the orders stream."
  type        = string
}

variable "stream_arn" {
  description = "ARN of the orders stream."
  type        = string
}

variable "stream_consumer_arn" {
  description = "ARN of the stream's enhanced fan-out consumer (used when settings.enhanced_fan_out is true)."
  type        = string
  default     = null
}

variable "settings" {
  description = "The consumer section of tofu/pipeline.json."
  type = object({
    batch_size                      = number
    maximum_batching_window_seconds = number
    parallelization_factor          = number
    maximum_retry_attempts          = number
    maximum_record_age_seconds      = number
    bisect_batch_on_function_error  = bool
    starting_position               = string
    memory_mb                       = number
    timeout_seconds                 = number
    enhanced_fan_out                = bool
  })

  validation {
    condition     = var.settings.batch_size >= 1 && var.settings.batch_size <= 10000
    error_message = "consumer.batch_size must be 1-10000."
  }
  validation {
    condition     = var.settings.maximum_batching_window_seconds >= 0 && var.settings.maximum_batching_window_seconds <= 300
    error_message = "consumer.maximum_batching_window_seconds must be 0-300."
  }
  validation {
    condition     = var.settings.parallelization_factor >= 1 && var.settings.parallelization_factor <= 10
    error_message = "consumer.parallelization_factor must be 1-10."
  }
  validation {
    # Unbounded retries (-1) would block a shard on one poison batch until the record expires.
    condition     = var.settings.maximum_retry_attempts >= 0 && var.settings.maximum_retry_attempts <= 10000
    error_message = "consumer.maximum_retry_attempts must be 0-10000 (bounded, docs/design.md section 6)."
  }
  validation {
    condition     = var.settings.maximum_record_age_seconds >= 60 && var.settings.maximum_record_age_seconds <= 604800
    error_message = "consumer.maximum_record_age_seconds must be 60-604800 (bounded, docs/design.md section 6)."
  }
  validation {
    condition     = contains(["TRIM_HORIZON", "LATEST"], var.settings.starting_position)
    error_message = "consumer.starting_position must be TRIM_HORIZON or LATEST."
  }
}
