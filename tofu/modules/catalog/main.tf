# The Glue database and one table per entry of sql/tables.json: columns, types and partition keys
# come from that file, so the catalog, the transformers and the local twin cannot drift apart.
locals {
  table_file = jsondecode(file(var.table_file_path))
  tables     = { for table in local.table_file.tables : table.name => table }

  # Partition projection (no crawler, no MSCK REPAIR): Athena computes partitions from these
  # rules. The table file's partition keys are, in path order, the calendar year, month and day
  # of order_date (docs/design.md section 4); their names come from the file, their ranges from here.
  # Type "integer" with "digits" zero-pads, so month 6 is the path segment month=06, which is what
  # the transformers emit. A "date" projection would need one combined column (dt=2024-06-08);
  # integer ranges keep year, month and day as separate filterable string columns.
  calendar_projection = [
    { range = "${var.partition_projection_years.first},${var.partition_projection_years.last}", digits = 4 },
    { range = "1,12", digits = 2 },
    { range = "1,31", digits = 2 },
  ]
  partition_keys = local.table_file.partition_keys
  projection = merge(
    { "projection.enabled" = "true" },
    merge([
      for index, key in local.partition_keys : {
        "projection.${key.name}.type"   = "integer"
        "projection.${key.name}.range"  = local.calendar_projection[index].range
        "projection.${key.name}.digits" = tostring(local.calendar_projection[index].digits)
      }
    ]...),
  )
  location_suffix = join("/", [for key in local.partition_keys : "${key.name}=$${${key.name}}"])
}

resource "aws_glue_catalog_database" "this" {
  name        = var.database_name
  description = "orderflow analytics tables (sql/tables.json)"
}

resource "aws_glue_catalog_table" "this" {
  for_each = local.tables

  name          = each.key
  database_name = aws_glue_catalog_database.this.name
  description   = each.value.comment
  table_type    = "EXTERNAL_TABLE"

  lifecycle {
    precondition {
      condition     = length(local.partition_keys) == length(local.calendar_projection)
      error_message = "sql/tables.json must have exactly the year, month and day partition keys the projection describes."
    }
  }

  parameters = merge(local.projection, {
    "EXTERNAL"                  = "TRUE"
    "classification"            = "parquet"
    "parquet.compression"       = "SNAPPY"
    "storage.location.template" = "s3://${var.data_bucket_name}/${each.key}/${local.location_suffix}/"
  })

  storage_descriptor {
    location      = "s3://${var.data_bucket_name}/${each.key}/"
    input_format  = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
    output_format = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"

    ser_de_info {
      serialization_library = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
      parameters = {
        "serialization.format" = "1"
      }
    }

    dynamic "columns" {
      for_each = each.value.columns
      content {
        name    = columns.value.name
        type    = columns.value.type
        comment = lookup(columns.value, "comment", null)
      }
    }
  }

  dynamic "partition_keys" {
    for_each = local.partition_keys
    content {
      name    = partition_keys.value.name
      type    = partition_keys.value.type
      comment = lookup(partition_keys.value, "comment", null)
    }
  }
}
