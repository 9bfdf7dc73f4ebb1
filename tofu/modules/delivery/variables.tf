variable "name_prefix" {
  description = "Prefix of every resource name, e.g. orderflow-prod."
  type        = string
}

variable "transformer_name" {
  description = "The transformer Lambda's name: the prefix and the table's binary in tofu/lambdas.json."
  type        = string
}

variable "workload" {
  description = "local.workload of tofu/main.tf, what every workload role and log group shares; its fields are declared in modules/lambda_function/variables.tf."
  type        = any
}

variable "table_name" {
  description = "Analytics table this delivery stream feeds (a name from sql/tables.json, checked in modules/settings)."
  type        = string
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
  description = "The delivery section of tofu/pipeline.json. Checked in modules/settings."
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
}
