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
  description = "The athena section of tofu/pipeline.json. Checked in modules/settings."
  type = object({
    bytes_scanned_cutoff_per_query = number
  })
}

variable "named_queries_dir" {
  description = "Directory whose *.sql files become named queries (one per file, named after it). May be missing or empty."
  type        = string
}
