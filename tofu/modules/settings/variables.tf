variable "pipeline" {
  description = "tofu/pipeline.json, decoded."
  type        = any
}

variable "tables" {
  description = "sql/tables.json, decoded: the database prefix and the tables' names are checked here."
  type        = any
}

variable "bounds" {
  description = "The bounds object of tofu/pipeline.bounds.json, decoded: setting => { min, max, whole, why }."
  type        = any
}
