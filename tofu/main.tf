data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

# The one settings file, also read by the local twin (docs/design.md section 7), and the one
# definition of the analytics tables (docs/design.md section 4), checked once.
module "settings" {
  source = "./modules/settings"

  pipeline = jsondecode(file("${path.module}/pipeline.json"))
  bounds   = jsondecode(file("${path.module}/pipeline.bounds.json")).bounds
  tables   = jsondecode(file(local.table_file_path))
}

locals {
  pipeline = module.settings.checked.pipeline

  table_file_path = "${path.module}/../sql/tables.json"
  table_file      = module.settings.checked.tables
  tables          = { for table in local.table_file.tables : table.name => table }

  # The Lambdas' names: Cargo binary, zip in dist/lambdas and function name after the prefix
  # (docs/design.md section 7), also read by the flake, xtask, the twin and CI.
  lambdas = jsondecode(file("${path.module}/lambdas.json"))

  name_prefix = "orderflow-${var.environment}"
  # IAM path of every workload role: the CI deploy role may only manage roles under it.
  iam_path = "/orderflow/${var.environment}/"

  dist_dir = startswith(var.lambda_dist_dir, "/") ? var.lambda_dist_dir : "${path.module}/${var.lambda_dist_dir}"

  # What every workload role and log group shares (the modules' `workload` variable).
  workload = {
    iam_path                 = local.iam_path
    permissions_boundary_arn = module.ci_access.workload_boundary_policy_arn
    kms_key_arn              = module.encryption.key_arn
    log_retention_days       = local.pipeline.retention.log_days
  }

  account_id = data.aws_caller_identity.current.account_id
  region     = data.aws_region.current.id
  partition  = data.aws_partition.current.partition
}

# SHA256SUMS is written by the same build as the zips; a mismatch means a partial or stale dist dir.
check "lambda_zips_match_sha256sums" {
  assert {
    condition = alltrue([
      for line in compact(split("\n", file("${local.dist_dir}/SHA256SUMS"))) :
      filesha256("${local.dist_dir}/${basename(regex("^[0-9a-f]{64}\\s+\\*?(\\S+)$", line)[0])}") == regex("^([0-9a-f]{64})", line)[0]
    ])
    error_message = "A zip in ${local.dist_dir} does not match its line in SHA256SUMS: rebuild with `nix build .#lambdas`."
  }
}

module "encryption" {
  source = "./modules/encryption"

  name_prefix = local.name_prefix
}

module "storage" {
  source = "./modules/storage"

  name_prefix        = local.name_prefix
  kms_key_arn        = module.encryption.key_arn
  retention_settings = local.pipeline.retention
  # The constant part of delivery.error_output_prefix, e.g. "errors/".
  error_prefix = split("{table}", local.pipeline.delivery.error_output_prefix)[0]
}

module "ci_access" {
  source = "./modules/ci_access"

  name_prefix                 = local.name_prefix
  environment                 = var.environment
  workload_iam_path           = local.iam_path
  github_repository           = var.github_repository
  create_github_oidc_provider = var.create_github_oidc_provider
  tofu_state_bucket           = var.tofu_state_bucket
  tofu_state_key              = var.tofu_state_key
  tofu_state_kms_key_arn      = var.tofu_state_kms_key_arn == "" ? null : var.tofu_state_kms_key_arn
  kms_key_arn                 = module.encryption.key_arn
  glue_database_name          = module.catalog.database_name
  data_bucket_arn             = module.storage.data_bucket_arn
}

module "stream" {
  source = "./modules/stream"

  name                = "${local.name_prefix}-orders"
  kms_key_arn         = module.encryption.key_arn
  stream_settings     = local.pipeline.stream
  enhanced_fan_out    = local.pipeline.consumer.enhanced_fan_out
  enhanced_fan_out_id = "${local.name_prefix}-consumer"
}

module "consumer" {
  source = "./modules/consumer"

  name_prefix             = local.name_prefix
  workload                = local.workload
  function_name           = "${local.name_prefix}-${local.lambdas.consumer}"
  lambda_zip              = "${local.dist_dir}/${local.lambdas.consumer}.zip"
  stream_arn              = module.stream.stream_arn
  stream_read_policy_json = module.stream.read_policy_json
  stream_consumer_arn     = module.stream.stream_consumer_arn
  settings                = local.pipeline.consumer
}

module "catalog" {
  source = "./modules/catalog"

  database_name              = "${local.table_file.database_prefix}${var.environment}"
  table_file_path            = local.table_file_path
  data_bucket_name           = module.storage.data_bucket_name
  partition_projection_years = local.pipeline.athena.partition_projection_years
}

module "delivery" {
  source   = "./modules/delivery"
  for_each = local.tables

  name_prefix             = local.name_prefix
  workload                = local.workload
  table_name              = each.key
  glue_database_name      = module.catalog.database_name
  glue_table_name         = module.catalog.table_names[each.key]
  transformer_name        = "${local.name_prefix}-${local.lambdas.transformers[each.key]}"
  lambda_zip              = "${local.dist_dir}/${local.lambdas.transformers[each.key]}.zip"
  stream_arn              = module.stream.stream_arn
  stream_read_policy_json = module.stream.read_policy_json
  data_bucket_arn         = module.storage.data_bucket_arn
  settings                = local.pipeline.delivery
}

module "analytics" {
  source = "./modules/analytics"

  name                = local.name_prefix
  database_name       = module.catalog.database_name
  results_bucket_name = module.storage.athena_results_bucket_name
  kms_key_arn         = module.encryption.key_arn
  athena_settings     = local.pipeline.athena
  named_queries_dir   = "${path.module}/../sql/queries"
}

module "ingestion_api" {
  source = "./modules/ingestion_api"

  name                       = "${local.name_prefix}-ingestion"
  workload                   = local.workload
  stream_name                = module.stream.stream_name
  stream_arn                 = module.stream.stream_arn
  order_schema_path          = "${path.module}/../crates/domain/schema/order.schema.json"
  api_settings               = local.pipeline.api
  manage_api_gateway_account = var.manage_api_gateway_account
  admin_iam_path             = module.ci_access.admin_iam_path
  # The stage waits for every delivery stream (they read the stream from LATEST at creation).
  delivery_stream_arns = [for delivery in module.delivery : delivery.delivery_stream_arn]
}

module "observability" {
  source = "./modules/observability"

  name_prefix           = local.name_prefix
  kms_key_arn           = module.encryption.key_arn
  alarm_email_addresses = var.alarm_email_addresses
  stream_name           = module.stream.stream_name
  consumer_function     = module.consumer.function_name
  on_failure_queue_name = module.consumer.on_failure_queue_name
  transformer_functions = { for table, delivery in module.delivery : table => delivery.function_name }
  delivery_streams      = { for table, delivery in module.delivery : table => delivery.delivery_stream_name }
  api_name              = module.ingestion_api.rest_api_name
  api_stage_name        = module.ingestion_api.stage_name
  # Alarm at half the time a record can wait before it is lost: the consumer's retry window
  # (maximum_record_age_seconds) or the stream's retention, whichever is shorter.
  iterator_age_threshold_ms = min(local.pipeline.consumer.maximum_record_age_seconds, local.pipeline.stream.retention_hours * 3600) * 1000 / 2
  # A record waits up to both buffer intervals (the transformer's, then the S3 one) before its
  # object is written: alarm at five times that (600 s with the defaults).
  delivery_freshness_threshold_s = 5 * (local.pipeline.delivery.processor_buffer_interval_seconds + local.pipeline.delivery.buffering_interval_seconds)
}
