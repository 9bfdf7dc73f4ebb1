# Every check of the data files the configuration reads, in one place: the root module reads
# tofu/pipeline.json with its bounds (tofu/pipeline.bounds.json, which the twin checks too) and
# sql/tables.json, and passes them through this module, whose output fails the plan, naming each
# problem. The other modules take their parts from here and declare only their types.
locals {
  # tofu/pipeline.bounds.json as { key, bound } pairs. A key "section.*" stands for every key of
  # that section; a key named in full as well must pass both bounds.
  ranges = concat(
    [for key, bound in var.bounds : { key = key, bound = bound } if !endswith(key, ".*")],
    flatten([
      for key, bound in var.bounds : [
        for name in keys(var.pipeline[trimsuffix(key, ".*")]) : { key = "${trimsuffix(key, ".*")}.${name}", bound = bound }
      ] if endswith(key, ".*")
    ]),
  )
  # The value of each bounded setting, by its dotted path (two or three levels deep).
  values = {
    for key in distinct(local.ranges[*].key) : key => try(
      var.pipeline[split(".", key)[0]][split(".", key)[1]][split(".", key)[2]],
      var.pipeline[split(".", key)[0]][split(".", key)[1]],
    )
  }

  years  = var.pipeline.athena.partition_projection_years
  prefix = var.pipeline.delivery.prefix
  errors = var.pipeline.delivery.error_output_prefix

  problems = concat(
    [
      for range in local.ranges :
      "${range.key} is ${local.values[range.key]}: must be ${range.bound.whole ? "a whole number " : ""}${range.bound.max == null ? ">= ${range.bound.min}" : "${range.bound.min} to ${range.bound.max}"}${try(" and one of ${join(", ", range.bound.one_of)}", "")} (${range.bound.why})"
      if local.values[range.key] < range.bound.min || (range.bound.max != null && local.values[range.key] > coalesce(range.bound.max, 0)) || (range.bound.whole && floor(local.values[range.key]) != local.values[range.key]) || !contains(try(range.bound.one_of, [local.values[range.key]]), local.values[range.key])
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
