output "pipeline" {
  description = "tofu/pipeline.json, once every setting is within bounds (the plan fails here, naming each one that is not)."
  value       = var.pipeline

  precondition {
    condition     = length(local.problems) == 0
    error_message = "tofu/pipeline.json: ${join("; ", local.problems)}."
  }
}
