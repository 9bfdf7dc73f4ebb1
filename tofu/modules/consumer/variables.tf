variable "name_prefix" {
  description = "Prefix of every resource name, e.g. orderflow-prod."
  type        = string
}

variable "function_name" {
  description = "The consumer Lambda's name: the prefix and the binary's name in tofu/lambdas.json."
  type        = string
}

variable "workload" {
  description = "local.workload of tofu/main.tf, what every workload role and log group shares; its fields are declared in modules/lambda_function/variables.tf."
  type        = any
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
  description = "The consumer section of tofu/pipeline.json. Checked in modules/settings."
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
}
