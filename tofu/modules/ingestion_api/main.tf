# REST API writing orders straight into Kinesis (docs/design.md section 2):
#   POST /v1/orders        one order        -> PutRecord
#   POST /v1/orders/batch  {"orders": [...]} -> PutRecords
#   POST /orders           legacy {"StreamName","PartitionKey","Data"} envelope -> PutRecord
# Bodies are validated against models built from the order schema file; the stream name and the
# partition key (customer_id) are set here, on the server side.
data "aws_caller_identity" "current" {}
data "aws_region" "current" {}
data "aws_partition" "current" {}

locals {
  region = data.aws_region.current.id

  order_schema = jsondecode(file(var.order_schema_path))
  # The batch model embeds the order schema as its item schema; the order's definitions move to
  # the batch root so that its "#/definitions/..." references still resolve.
  batch_schema = {
    "$schema"   = local.order_schema["$schema"]
    title       = "orderflow order batch"
    type        = "object"
    required    = ["orders"]
    definitions = local.order_schema.definitions
    properties = {
      orders = {
        type     = "array"
        minItems = 1
        maxItems = var.api_settings.max_batch_orders
        items    = { for key, value in local.order_schema : key => value if !contains(["$schema", "definitions"], key) }
      }
    }
  }
  # Only the envelope is checked at the edge; the order inside Data is validated downstream.
  legacy_schema = {
    "$schema" = local.order_schema["$schema"]
    title     = "orderflow legacy PutRecord envelope"
    type      = "object"
    # StreamName is accepted and ignored: the request template always writes to the configured
    # stream, so existing producers work unchanged whatever name they send.
    required = ["PartitionKey", "Data"]
    properties = {
      StreamName   = { type = "string" }
      PartitionKey = { type = "string", minLength = 1, maxLength = 256 }
      Data         = { type = "string", minLength = 1, pattern = "^[A-Za-z0-9+/]+={0,2}$" }
    }
  }

  kinesis_uri = "arn:${data.aws_partition.current.partition}:apigateway:${local.region}:kinesis:action"

  # Kinesis answers client-side problems with HTTP 400 and an exception name in __type.
  kinesis_4xx_template = <<-VTL
    #set($type = "$!input.path('$.__type')")
    #if($type.contains('ProvisionedThroughputExceeded') || $type.contains('LimitExceeded') || $type.contains('Throttling'))
    #set($context.responseOverride.status = 429)
    {"message": "Too many requests: the stream is throttling writes, retry with backoff"}
    #elseif($type.contains('InvalidArgument') || $type.contains('Validation'))
    #set($context.responseOverride.status = 413)
    {"message": "Request too large for the stream"}
    #else
    {"message": "Internal server error"}
    #end
  VTL
  kinesis_5xx_template = <<-VTL
    {"message": "Bad gateway: the stream is unavailable, retry with backoff"}
  VTL

  routes = {
    single = {
      resource_id = aws_api_gateway_resource.v1_orders.id
      model       = aws_api_gateway_model.order.name
      action      = "PutRecord"
      statuses    = ["200", "400", "413", "429", "500", "502"]
      request     = <<-VTL
        {
          "StreamName": "${var.stream_name}",
          "PartitionKey": "$util.escapeJavaScript($input.path('$.customer_id'))",
          "Data": "$util.base64Encode($input.body)"
        }
      VTL
      response    = <<-VTL
        {"shard_id": "$input.path('$.ShardId')", "sequence_number": "$input.path('$.SequenceNumber')"}
      VTL
    }
    batch = {
      resource_id = aws_api_gateway_resource.v1_orders_batch.id
      model       = aws_api_gateway_model.order_batch.name
      action      = "PutRecords"
      statuses    = ["200", "207", "400", "413", "429", "500", "502"]
      request     = <<-VTL
        #set($orders = $input.path('$.orders'))
        {
          "StreamName": "${var.stream_name}",
          "Records": [
        #foreach($order in $orders)
            {
              "PartitionKey": "$util.escapeJavaScript($order.customer_id)",
              "Data": "$util.base64Encode($input.json("$.orders[$foreach.index]"))"
            }#if($foreach.hasNext),#end
        #end
          ]
        }
      VTL
      # PutRecords' own answer, in request order; 207 when any record was not written. Error
      # texts are free text: escapeJavaScript's \' is undone as for the legacy key below.
      response = <<-VTL
        #set($failed = $input.path('$.FailedRecordCount'))
        #if($failed > 0)
        #set($context.responseOverride.status = 207)
        #end
        {
          "failed_record_count": $failed,
          "records": [
        #foreach($record in $input.path('$.Records'))
        #if("$!record.ErrorCode" != "")
            {"error_code": "$util.escapeJavaScript($record.ErrorCode).replaceAll("\\'","'")", "error_message": "$util.escapeJavaScript($record.ErrorMessage).replaceAll("\\'","'")"}#if($foreach.hasNext),#end
        #else
            {"shard_id": "$record.ShardId", "sequence_number": "$record.SequenceNumber"}#if($foreach.hasNext),#end
        #end
        #end
          ]
        }
      VTL
    }
    legacy = {
      resource_id = aws_api_gateway_resource.legacy_orders.id
      model       = aws_api_gateway_model.legacy_put_record.name
      action      = "PutRecord"
      statuses    = ["200", "400", "413", "429", "500", "502"]
      # escapeJavaScript turns ' into \', which is not valid JSON: AWS's $util reference says to
      # undo it with .replaceAll("\\'","'") (a key such as o'brien otherwise fails at Kinesis).
      request = <<-VTL
        {
          "StreamName": "${var.stream_name}",
          "PartitionKey": "$util.escapeJavaScript($input.path('$.PartitionKey')).replaceAll("\\'","'")",
          "Data": "$util.escapeJavaScript($input.path('$.Data'))"
        }
      VTL
      # Existing producers get Kinesis' own PutRecord answer, as before.
      response = "$input.json('$')"
    }
  }

  # Integration responses: Kinesis 200 -> the route's success body; 4xx/5xx -> the templates above.
  integration_responses = merge([
    for route, config in local.routes : {
      "${route}.success" = { route = route, status = "200", pattern = null, template = config.response }
      "${route}.4xx"     = { route = route, status = "500", pattern = "4\\d{2}", template = local.kinesis_4xx_template }
      "${route}.5xx"     = { route = route, status = "502", pattern = "5\\d{2}", template = local.kinesis_5xx_template }
    }
  ]...)
  method_responses = merge([
    for route, config in local.routes : { for status in config.statuses : "${route}.${status}" => { route = route, status = status } }
  ]...)
}

resource "aws_api_gateway_rest_api" "this" {
  name           = var.name
  description    = "orderflow order ingestion: validated orders into the Kinesis stream"
  api_key_source = "HEADER"

  endpoint_configuration {
    types = ["REGIONAL"]
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_resource" "v1" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "v1"
}

resource "aws_api_gateway_resource" "v1_orders" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.v1.id
  path_part   = "orders"
}

resource "aws_api_gateway_resource" "v1_orders_batch" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_resource.v1_orders.id
  path_part   = "batch"
}

resource "aws_api_gateway_resource" "legacy_orders" {
  rest_api_id = aws_api_gateway_rest_api.this.id
  parent_id   = aws_api_gateway_rest_api.this.root_resource_id
  path_part   = "orders"
}

resource "aws_api_gateway_model" "order" {
  rest_api_id  = aws_api_gateway_rest_api.this.id
  name         = "Order"
  description  = "One order (crates/domain/schema/order.schema.json)"
  content_type = "application/json"
  schema       = file(var.order_schema_path)
}

resource "aws_api_gateway_model" "order_batch" {
  rest_api_id  = aws_api_gateway_rest_api.this.id
  name         = "OrderBatch"
  description  = "{\"orders\": [1..${var.api_settings.max_batch_orders} orders]}"
  content_type = "application/json"
  schema       = jsonencode(local.batch_schema)
}

resource "aws_api_gateway_model" "legacy_put_record" {
  rest_api_id  = aws_api_gateway_rest_api.this.id
  name         = "LegacyPutRecord"
  description  = "Legacy Kinesis PutRecord envelope; StreamName is ignored (the configured stream always wins)"
  content_type = "application/json"
  schema       = jsonencode(local.legacy_schema)
}

resource "aws_api_gateway_request_validator" "body" {
  rest_api_id           = aws_api_gateway_rest_api.this.id
  name                  = "body"
  validate_request_body = true
}

resource "aws_api_gateway_method" "this" {
  for_each = local.routes

  rest_api_id          = aws_api_gateway_rest_api.this.id
  resource_id          = each.value.resource_id
  http_method          = "POST"
  authorization        = "NONE"
  api_key_required     = true
  request_validator_id = aws_api_gateway_request_validator.body.id
  request_models = {
    "application/json" = each.value.model
  }
}

resource "aws_api_gateway_integration" "this" {
  for_each = local.routes

  rest_api_id             = aws_api_gateway_rest_api.this.id
  resource_id             = each.value.resource_id
  http_method             = aws_api_gateway_method.this[each.key].http_method
  type                    = "AWS"
  integration_http_method = "POST"
  uri                     = "${local.kinesis_uri}/${each.value.action}"
  credentials             = aws_iam_role.kinesis.arn
  # Only application/json bodies reach the templates; anything else is refused with 415.
  passthrough_behavior = "NEVER"
  request_parameters = {
    "integration.request.header.Content-Type" = "'application/x-amz-json-1.1'"
  }
  request_templates = {
    "application/json" = each.value.request
  }
}

resource "aws_api_gateway_method_response" "this" {
  for_each = local.method_responses

  rest_api_id = aws_api_gateway_rest_api.this.id
  resource_id = local.routes[each.value.route].resource_id
  http_method = aws_api_gateway_method.this[each.value.route].http_method
  status_code = each.value.status
  response_models = {
    "application/json" = "Empty"
  }
}

resource "aws_api_gateway_integration_response" "this" {
  for_each = local.integration_responses

  rest_api_id       = aws_api_gateway_rest_api.this.id
  resource_id       = local.routes[each.value.route].resource_id
  http_method       = aws_api_gateway_method.this[each.value.route].http_method
  status_code       = aws_api_gateway_method_response.this["${each.value.route}.${each.value.status}"].status_code
  selection_pattern = each.value.pattern
  response_templates = {
    "application/json" = each.value.template
  }

  depends_on = [aws_api_gateway_integration.this]
}

# Gateway response templates are not run through VTL (no $util.escapeJavaScript): variables are
# substituted as they are. $context.error.messageString is the only error variable AWS documents
# as already quoted; $context.error.validationErrorString is raw validator text that quotes the
# offending values (double quotes, and parts of the client's body), so inside "..." it can make
# the body invalid JSON. The detail is therefore not echoed; clients get a well-formed body of the
# same shape. API Gateway Developer Guide, "x-amazon-apigateway-gateway-responses.responseTemplates
# object" and the $context variable reference ($context.error.messageString).
resource "aws_api_gateway_gateway_response" "bad_request_body" {
  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = "BAD_REQUEST_BODY"
  status_code   = "400"
  response_templates = {
    "application/json" = "{\"message\": $context.error.messageString, \"errors\": [$context.error.messageString]}"
  }
}

resource "aws_api_gateway_gateway_response" "request_too_large" {
  rest_api_id   = aws_api_gateway_rest_api.this.id
  response_type = "REQUEST_TOO_LARGE"
  status_code   = "413"
  response_templates = {
    "application/json" = "{\"message\": $context.error.messageString}"
  }
}

# --- API Gateway -> Kinesis role ----------------------------------------------------------------

# No aws:SourceAccount/aws:SourceArn condition: API Gateway does not set them when it assumes an
# integration's credentials role, so such a condition denies every call (500 "API Gateway does not
# have permission to assume the provided role"; aws-solutions-library-samples/
# accelerated-intelligent-document-processing-on-aws pull request 479). The confused-deputy risk is
# covered otherwise: an integration can name only a role its creator may iam:PassRole, and API
# Gateway refuses roles of other accounts ("Cross-account pass role is not allowed",
# amazon-archives/aws-apigateway-importer issue 25).
# Trusted by both API Gateway roles: the integration role below and the logging role of the
# account setting (further down).
data "aws_iam_policy_document" "apigateway_assume" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["apigateway.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "kinesis" {
  statement {
    sid       = "PutRecords"
    actions   = ["kinesis:PutRecord", "kinesis:PutRecords"]
    resources = [var.stream_arn]
  }

  statement {
    sid       = "EncryptRecords"
    actions   = ["kms:GenerateDataKey"]
    resources = [var.workload.kms_key_arn]
    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["kinesis.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "kinesis" {
  name                 = "${var.name}-kinesis"
  path                 = var.workload.iam_path
  assume_role_policy   = data.aws_iam_policy_document.apigateway_assume.json
  permissions_boundary = var.workload.permissions_boundary_arn
}

resource "aws_iam_role_policy" "kinesis" {
  name   = "put-records"
  role   = aws_iam_role.kinesis.id
  policy = data.aws_iam_policy_document.kinesis.json
}

# --- deployment, stage, logs --------------------------------------------------------------------

resource "aws_api_gateway_deployment" "this" {
  rest_api_id = aws_api_gateway_rest_api.this.id

  # Any change to the API's shape or templates produces a new deployment.
  triggers = {
    redeployment = sha1(jsonencode([
      aws_api_gateway_resource.v1,
      aws_api_gateway_resource.v1_orders,
      aws_api_gateway_resource.v1_orders_batch,
      aws_api_gateway_resource.legacy_orders,
      aws_api_gateway_model.order,
      aws_api_gateway_model.order_batch,
      aws_api_gateway_model.legacy_put_record,
      aws_api_gateway_request_validator.body,
      aws_api_gateway_method.this,
      aws_api_gateway_integration.this,
      aws_api_gateway_method_response.this,
      aws_api_gateway_integration_response.this,
      aws_api_gateway_gateway_response.bad_request_body,
      aws_api_gateway_gateway_response.request_too_large,
    ]))
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [aws_api_gateway_integration_response.this]
}

resource "aws_cloudwatch_log_group" "access" {
  #checkov:skip=CKV_AWS_338:Access logs kept retention.log_days from tofu/pipeline.json (cost); the audit trail is CloudTrail's.
  name              = "/aws/apigateway/${var.name}/access"
  retention_in_days = var.workload.log_retention_days
  kms_key_id        = var.workload.kms_key_arn
}

# API Gateway creates this group on first use, without retention or encryption; creating it here
# sets both.
resource "aws_cloudwatch_log_group" "execution" {
  #checkov:skip=CKV_AWS_338:Execution logs (ERROR level only) kept retention.log_days from tofu/pipeline.json.
  name              = "API-Gateway-Execution-Logs_${aws_api_gateway_rest_api.this.id}/${var.stage_name}"
  retention_in_days = var.workload.log_retention_days
  kms_key_id        = var.workload.kms_key_arn
}

resource "aws_api_gateway_stage" "this" {
  #checkov:skip=CKV_AWS_73:X-Ray tracing would bill per traced request on a high-volume write path; access logs, execution errors and CloudWatch metrics cover it.
  #checkov:skip=CKV_AWS_120:Only POST writes: responses must never be cached.
  #checkov:skip=CKV2_AWS_29:No WAF web ACL in this stack (cost); every route needs an API key and the usage plan throttles and caps each key.
  #checkov:skip=CKV2_AWS_51:Producers authenticate with API keys over TLS; mutual TLS would need a custom domain and client PKI.
  rest_api_id   = aws_api_gateway_rest_api.this.id
  deployment_id = aws_api_gateway_deployment.this.id
  stage_name    = var.stage_name

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.access.arn
    format = jsonencode({
      requestId         = "$context.requestId"
      requestTime       = "$context.requestTime"
      ip                = "$context.identity.sourceIp"
      apiKeyId          = "$context.identity.apiKeyId"
      httpMethod        = "$context.httpMethod"
      resourcePath      = "$context.resourcePath"
      status            = "$context.status"
      responseLength    = "$context.responseLength"
      latencyMs         = "$context.responseLatency"
      integrationStatus = "$context.integration.status"
      integrationError  = "$context.integration.error"
      error             = "$context.error.message"
      # No $context.error.validationErrorString: it is unescaped validator text that quotes parts
      # of the body (invalid JSON inside "...", and no bodies in these logs).
      errorType = "$context.error.responseType"
    })
  }

  # Firehose "starts reading data from the LATEST position" of its Kinesis source (Firehose
  # developer guide, "Writing to Amazon Kinesis Firehose Using Kinesis Streams"): without the
  # delivery streams in place first, orders accepted in between would reach DynamoDB but never S3.
  depends_on = [aws_api_gateway_account.this, aws_cloudwatch_log_group.execution, var.delivery_stream_arns]
}

resource "aws_api_gateway_method_settings" "all" {
  #checkov:skip=CKV_AWS_225:Only POST writes: responses must never be cached.
  rest_api_id = aws_api_gateway_rest_api.this.id
  stage_name  = aws_api_gateway_stage.this.stage_name
  method_path = "*/*"

  settings {
    metrics_enabled        = true
    logging_level          = "ERROR"
    data_trace_enabled     = false
    caching_enabled        = false
    cache_data_encrypted   = true
    throttling_rate_limit  = var.api_settings.rate_limit
    throttling_burst_limit = var.api_settings.burst_limit
  }
}

# --- keys and usage plan ------------------------------------------------------------------------

resource "aws_api_gateway_api_key" "this" {
  name        = "${var.name}-default"
  description = "Default producer key; add one key per producer to the usage plan as needed."
  enabled     = true
}

resource "aws_api_gateway_usage_plan" "this" {
  name = var.name

  api_stages {
    api_id = aws_api_gateway_rest_api.this.id
    stage  = aws_api_gateway_stage.this.stage_name
  }

  throttle_settings {
    rate_limit  = var.api_settings.rate_limit
    burst_limit = var.api_settings.burst_limit
  }

  quota_settings {
    limit  = var.api_settings.quota_per_day
    period = "DAY"
  }
}

resource "aws_api_gateway_usage_plan_key" "this" {
  key_id        = aws_api_gateway_api_key.this.id
  key_type      = "API_KEY"
  usage_plan_id = aws_api_gateway_usage_plan.this.id
}

# --- region-wide logging role (optional) --------------------------------------------------------

# The account setting is one per region and serves every REST API and WebSocket API there, so its
# role must reach every API's log groups, not only this API's. Its actions are those of AWS's
# managed policy AmazonAPIGatewayPushToCloudWatchLogs (API Gateway Developer Guide, "Set up
# CloudWatch logging for REST APIs in API Gateway"; AWS Managed Policy Reference), written inline
# and scoped to this account and region. Being account-wide and outside the workload boundary, the
# role lives under the administrators' IAM path (var.admin_iam_path), which the CI deploy role can
# read but not change: the administrator's first apply creates it.
data "aws_iam_policy_document" "cloudwatch" {
  statement {
    sid = "WriteEveryApisLogs"
    actions = [
      "logs:CreateLogGroup",
      "logs:CreateLogStream",
      "logs:DescribeLogStreams",
      "logs:FilterLogEvents",
      "logs:GetLogEvents",
      "logs:PutLogEvents",
    ]
    # Every API's execution and access log groups (any name) and their streams, in this region.
    resources = ["arn:${data.aws_partition.current.partition}:logs:${local.region}:${data.aws_caller_identity.current.account_id}:log-group:*"]
  }

  statement {
    sid     = "FindLogGroups"
    actions = ["logs:DescribeLogGroups"]
    # DescribeLogGroups lists across the account: AWS accepts only "*".
    resources = ["*"]
  }
}

resource "aws_iam_role" "cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  name        = "${var.name}-cloudwatch"
  path        = var.admin_iam_path
  description = "Region-wide API Gateway CloudWatch Logs role (account setting), for every API in the region."
  # The integration role's trust policy: AWS's documented trust policy for this role has no
  # aws:SourceAccount condition either, and API Gateway is not documented to set it here.
  assume_role_policy = data.aws_iam_policy_document.apigateway_assume.json
}

resource "aws_iam_role_policy" "cloudwatch" {
  count = var.manage_api_gateway_account ? 1 : 0

  name   = "api-gateway-logs"
  role   = aws_iam_role.cloudwatch[0].id
  policy = data.aws_iam_policy_document.cloudwatch.json
}

resource "aws_api_gateway_account" "this" {
  count = var.manage_api_gateway_account ? 1 : 0

  cloudwatch_role_arn = aws_iam_role.cloudwatch[0].arn
  depends_on          = [aws_iam_role_policy.cloudwatch]
}
