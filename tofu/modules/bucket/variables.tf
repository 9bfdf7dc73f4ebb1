variable "name" {
  description = "The bucket's name (3-63 characters; the storage module derives it)."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key for SSE-KMS with a Bucket Key, or null for SSE-S3 (only the access-log bucket: S3 delivers server access logs to SSE-S3 buckets only)."
  type        = string
}

variable "log_target" {
  description = "Where the bucket's server access logs go (the log bucket and a key prefix), or null for the log bucket itself."
  type = object({
    bucket = string
    prefix = string
  })
}

variable "lifecycle_rules" {
  description = "The bucket's lifecycle rules: an id, an optional key prefix (none: the whole bucket) and the days after which current objects expire, noncurrent versions expire and incomplete multipart uploads are aborted (null: no such action)."
  type = list(object({
    id                   = string
    prefix               = optional(string)
    expiration_days      = optional(number)
    noncurrent_days      = optional(number)
    abort_multipart_days = optional(number)
  }))

  validation {
    condition     = length(var.lifecycle_rules) > 0
    error_message = "Every bucket needs at least one lifecycle rule (versioned buckets grow without one)."
  }
}

variable "policy_json" {
  description = "Statements the bucket policy has beside the TLS-only deny: an IAM policy document's JSON, or null."
  type        = string
  default     = null
}
