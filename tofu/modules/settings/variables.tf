variable "pipeline" {
  description = "tofu/pipeline.json, decoded."
  type        = any
}

variable "bounds" {
  description = "The bounds object of tofu/pipeline.bounds.json, decoded: setting => { min, max, whole, why }."
  type        = any
}
