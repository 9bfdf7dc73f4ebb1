variable "name" {
  description = "Name of the Kinesis data stream."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the stream."
  type        = string
}

variable "stream_settings" {
  description = "The stream section of tofu/pipeline.json."
  type = object({
    shard_count     = number
    retention_hours = number
  })

  validation {
    condition     = var.stream_settings.shard_count >= 1 && floor(var.stream_settings.shard_count) == var.stream_settings.shard_count
    error_message = "stream.shard_count must be a whole number >= 1."
  }

  validation {
    condition     = var.stream_settings.retention_hours >= 24 && var.stream_settings.retention_hours <= 8760
    error_message = "stream.retention_hours must be between 24 and 8760 (Kinesis limits)."
  }
}

variable "enhanced_fan_out" {
  description = "Register an enhanced fan-out consumer for the orders consumer Lambda, so it does not share the 5 reads/s and 2 MB/s per shard with the four Firehose streams."
  type        = bool
}

variable "enhanced_fan_out_id" {
  description = "Name of the enhanced fan-out consumer."
  type        = string
}
