# Every check of the data files the configuration reads, in one place: the root module reads
# tofu/pipeline.json with its bounds (tofu/pipeline.bounds.json, which the twin checks too) and
# sql/tables.json, and passes them through this module, whose output fails the plan, naming each
# problem. The other modules take their parts from here and declare only their types.
locals {
  # tofu/pipeline.bounds.json: setting => bounds. A key "section.*" stands for every key of
  # that section.
  fixed = { for key, bound in var.bounds : key => bound if !endswith(key, ".*") }
  spread = merge([
    for key, bound in var.bounds : {
      for name in keys(var.pipeline[trimsuffix(key, ".*")]) : "${trimsuffix(key, ".*")}.${name}" => bound
    } if endswith(key, ".*")
  ]...)
  all_ranges = merge(local.fixed, local.spread)
  # The value of each bounded setting, by its dotted path (two or three levels deep).
  values = {
    for key in keys(local.all_ranges) : key => try(
      var.pipeline[split(".", key)[0]][split(".", key)[1]][split(".", key)[2]],
      var.pipeline[split(".", key)[0]][split(".", key)[1]],
    )
  }

  years  = var.pipeline.athena.partition_projection_years
  prefix = var.pipeline.delivery.prefix
  errors = var.pipeline.delivery.error_output_prefix

  problems = concat(
    [
      for key, range in local.all_ranges :
      "${key} is ${local.values[key]}: must be ${range.whole ? "a whole number " : ""}${range.max == null ? ">= ${range.min}" : "${range.min} to ${range.max}"} (${range.why})"
      if local.values[key] < range.min || (range.max != null && local.values[key] > coalesce(range.max, 0)) || (range.whole && floor(local.values[key]) != local.values[key])
    ],
    local.years.first <= local.years.last ? [] : ["athena.partition_projection_years: first (${local.years.first}) is after last (${local.years.last})"],
    contains(["TRIM_HORIZON", "LATEST"], var.pipeline.consumer.starting_position) ? [] : ["consumer.starting_position is ${var.pipeline.consumer.starting_position}: must be TRIM_HORIZON or LATEST"],
    strcontains(local.prefix, "{table}") && strcontains(local.errors, "{table}") && strcontains(local.errors, "!{firehose:error-output-type}") ? [] : ["delivery.prefix and delivery.error_output_prefix must contain {table}; the error prefix also !{firehose:error-output-type}"],
  )

  # sql/tables.json: names that become Glue, S3 and IAM names and SQL identifiers needing no quotes.
  table_problems = concat(
    can(regex("^[a-z][a-z0-9_]*$", var.tables.database_prefix)) ? [] : ["database_prefix ${jsonencode(var.tables.database_prefix)} must be lower-case letters, digits and underscores, starting with a letter"],
    [for table in var.tables.tables : "table name ${jsonencode(table.name)} must be lower-case letters and underscores" if !can(regex("^[a-z][a-z_]*$", table.name))],
  )
  messages = concat(
    length(local.problems) == 0 ? [] : ["tofu/pipeline.json: ${join("; ", local.problems)}"],
    length(local.table_problems) == 0 ? [] : ["sql/tables.json: ${join("; ", local.table_problems)}"],
  )
}
