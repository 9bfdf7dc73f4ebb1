variable "name_prefix" {
  description = "Prefix of every resource name, e.g. orderflow-prod."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for the data and Athena results buckets."
  type        = string
}

variable "retention_settings" {
  description = "The retention section of tofu/pipeline.json. Checked in modules/settings."
  type = object({
    log_days                 = number
    error_objects_days       = number
    athena_results_days      = number
    noncurrent_versions_days = number
    access_logs_days         = number
  })
}

variable "error_prefix" {
  description = "Key prefix shared by the Firehose error output of every table (its objects expire after retention_settings.error_objects_days)."
  type        = string

  validation {
    condition     = length(var.error_prefix) > 0 && endswith(var.error_prefix, "/")
    error_message = "error_prefix must be a non-empty prefix ending in /, or the expiry rule would cover the whole bucket."
  }
}
