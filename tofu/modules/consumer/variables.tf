variable "name_prefix" {
  description = "Prefix of every resource name, e.g. orderflow-prod."
  type        = string
}

variable "function_name" {
  description = "The consumer Lambda's name: the prefix and the binary's name in tofu/lambdas.json."
  type        = string
}

variable "iam_path" {
  description = "IAM path of the function's role."
  type        = string
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary attached to the function's role."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key (stream, table, queue, logs, environment)."
  type        = string
}

variable "lambda_zip" {
  description = "Path of consumer.zip (one file: bootstrap, arm64, provided.al2023)."
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

variable "log_retention_days" {
  description = "Retention of the function's log group (retention.log_days in tofu/pipeline.json)."
  type        = number
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
  validation {
    condition     = var.settings.memory_mb >= 128 && var.settings.memory_mb <= 10240
    error_message = "consumer.memory_mb must be 128-10240."
  }
  validation {
    condition     = var.settings.timeout_seconds >= 1 && var.settings.timeout_seconds <= 900
    error_message = "consumer.timeout_seconds must be 1-900."
  }
}
