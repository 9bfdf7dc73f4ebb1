locals {
  # fileset() of a missing directory is empty, so the queries are optional.
  query_files = fileset(var.named_queries_dir, "*.sql")
}

resource "aws_athena_workgroup" "this" {
  name          = var.name
  description   = "orderflow analytics; results encrypted, per-query scan limit enforced"
  state         = "ENABLED"
  force_destroy = false

  configuration {
    enforce_workgroup_configuration    = true
    publish_cloudwatch_metrics_enabled = true
    bytes_scanned_cutoff_per_query     = var.athena_settings.bytes_scanned_cutoff_per_query

    engine_version {
      selected_engine_version = "Athena engine version 3"
    }

    result_configuration {
      output_location = "s3://${var.results_bucket_name}/results/"

      encryption_configuration {
        encryption_option = "SSE_KMS"
        kms_key_arn       = var.kms_key_arn
      }
    }
  }
}

resource "aws_athena_named_query" "this" {
  for_each = local.query_files

  name      = trimsuffix(each.value, ".sql")
  workgroup = aws_athena_workgroup.this.id
  database  = var.database_name
  query     = file("${var.named_queries_dir}/${each.value}")
}
