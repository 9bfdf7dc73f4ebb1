variable "name" {
  description = "Name of the Athena workgroup."
  type        = string
}

variable "database_name" {
  description = "Glue database the named queries run against."
  type        = string
}

variable "results_bucket_name" {
  description = "Bucket for query results."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting query results."
  type        = string
}

variable "athena_settings" {
  description = "The athena section of tofu/pipeline.json."
  type = object({
    bytes_scanned_cutoff_per_query = number
  })

  validation {
    # Athena's minimum is 10 MB; the cutoff is the guard against accidental full scans.
    condition     = var.athena_settings.bytes_scanned_cutoff_per_query >= 10485760
    error_message = "athena.bytes_scanned_cutoff_per_query must be at least 10485760 (10 MB)."
  }
}

variable "named_queries_dir" {
  description = "Directory whose *.sql files become named queries (one per file, named after it). May be missing or empty."
  type        = string
}
