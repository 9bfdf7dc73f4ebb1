output "checked" {
  description = "{ pipeline, tables }: tofu/pipeline.json and sql/tables.json, once both pass every check (the plan fails here, naming each problem)."
  value       = { pipeline = var.pipeline, tables = var.tables }

  precondition {
    condition     = length(local.messages) == 0
    error_message = "${join(". ", local.messages)}."
  }
}
