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
  description = "local.workload of tofu/main.tf, what every workload role and log group shares; its fields are declared in modules/lambda_function/variables.tf."
  type        = any
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
  description = "The api section of tofu/pipeline.json. Checked in modules/settings."
  type = object({
    rate_limit       = number
    burst_limit      = number
    quota_per_day    = number
    max_batch_orders = number
  })
}

variable "manage_api_gateway_account" {
  description = "Set the region-wide API Gateway CloudWatch Logs role (one per account and region)."
  type        = bool
}

variable "admin_iam_path" {
  description = "IAM path of roles only an administrator's apply may change (the CI roles' path); the region-wide logging role is created there, without the workload boundary. The ci_access module's admin_iam_path."
  type        = string
}

variable "delivery_stream_arns" {
  description = "ARNs of the Firehose delivery streams reading the orders stream. The stage (the only way in) is created after them: a delivery stream reads a Kinesis source from LATEST at creation, so orders accepted before it exists would never reach S3."
  type        = list(string)
}
