variable "name" {
  description = "Name of the Kinesis data stream."
  type        = string
}

variable "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the stream."
  type        = string
}

variable "stream_settings" {
  description = "The stream section of tofu/pipeline.json. Checked in modules/settings."
  type = object({
    shard_count     = number
    retention_hours = number
  })
}

variable "enhanced_fan_out" {
  description = "Register an enhanced fan-out consumer for the orders consumer Lambda, so it does not share the 5 reads/s and 2 MB/s per shard with the four Firehose streams."
  type        = bool
}

variable "enhanced_fan_out_id" {
  description = "Name of the enhanced fan-out consumer."
  type        = string
}
