variable "database_name" {
  description = "Glue database name (database_prefix from sql/tables.json + environment, e.g. orderflow_prod; both checked in modules/settings)."
  type        = string
}

variable "table_file_path" {
  description = "Path of sql/tables.json, the one definition of the analytics tables (columns with Glue types, partition keys)."
  type        = string
}

variable "data_bucket_name" {
  description = "Bucket holding the tables' Parquet files under <table>/."
  type        = string
}

variable "partition_projection_years" {
  description = "First and last year the partition projection enumerates (athena.partition_projection_years in tofu/pipeline.json, which the twin's SQL reads too). Rows whose order_date falls outside are stored but invisible to Athena; a wider range makes queries without a year filter slower. Checked in modules/settings."
  type = object({
    first = number
    last  = number
  })
}
