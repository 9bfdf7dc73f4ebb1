variable "name_prefix" {
  description = "Prefix of every resource name, e.g. orderflow-prod."
  type        = string
}

variable "transformer_name" {
  description = "The transformer Lambda's name: the prefix and the table's binary in tofu/lambdas.json."
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

variable "table_name" {
  description = "Analytics table this delivery stream feeds (a name from sql/tables.json)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z_]*$", var.table_name))
    error_message = "table_name must be lower-case letters and underscores."
  }
}

variable "glue_database_name" {
  description = "Glue database holding the table's schema."
  type        = string
}

variable "glue_table_name" {
  description = "Glue table whose schema drives the Parquet conversion."
  type        = string
}

variable "lambda_zip" {
  description = "Path of the table's transformer zip (one file: bootstrap, arm64, provided.al2023)."
  type        = string
}

variable "stream_read_policy_json" {
  description = "The stream module's read_policy_json: the statements that read (and decrypt) the orders stream."
  type        = string
}

variable "stream_arn" {
  description = "ARN of the orders stream (the delivery stream's source)."
  type        = string
}

variable "data_bucket_arn" {
  description = "ARN of the data lake bucket."
  type        = string
}

variable "settings" {
  description = "The delivery section of tofu/pipeline.json."
  type = object({
    buffering_size_mb                 = number
    buffering_interval_seconds        = number
    processor_buffer_size_mb          = number
    processor_buffer_interval_seconds = number
    prefix                            = string
    error_output_prefix               = string
    file_extension                    = string
    transformer_memory_mb             = number
    transformer_timeout_seconds       = number
  })

  validation {
    # Firehose's minimum with dynamic partitioning and with Parquet conversion.
    condition     = var.settings.buffering_size_mb >= 64 && var.settings.buffering_size_mb <= 128
    error_message = "delivery.buffering_size_mb must be 64-128 (dynamic partitioning needs >= 64)."
  }
  validation {
    condition     = var.settings.buffering_interval_seconds >= 0 && var.settings.buffering_interval_seconds <= 900
    error_message = "delivery.buffering_interval_seconds must be 0-900."
  }
  validation {
    condition     = var.settings.processor_buffer_size_mb >= 0.2 && var.settings.processor_buffer_size_mb <= 3
    error_message = "delivery.processor_buffer_size_mb must be 0.2-3 (Firehose Lambda processor limits; the response must stay under Lambda's 6 MB)."
  }
  validation {
    condition     = var.settings.processor_buffer_interval_seconds >= 60 && var.settings.processor_buffer_interval_seconds <= 900
    error_message = "delivery.processor_buffer_interval_seconds must be 60-900."
  }
  validation {
    condition     = strcontains(var.settings.prefix, "{table}") && strcontains(var.settings.error_output_prefix, "{table}") && strcontains(var.settings.error_output_prefix, "!{firehose:error-output-type}")
    error_message = "delivery.prefix and delivery.error_output_prefix must contain {table}; the error prefix also !{firehose:error-output-type}."
  }
  validation {
    condition     = var.settings.transformer_timeout_seconds >= 1 && var.settings.transformer_timeout_seconds <= 300
    error_message = "delivery.transformer_timeout_seconds must be 1-300 (Firehose waits at most 5 minutes for a processor)."
  }
}
