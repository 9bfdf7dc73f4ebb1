output "rest_api_id" {
  description = "Id of the REST API."
  value       = aws_api_gateway_rest_api.this.id
}

output "rest_api_name" {
  description = "Name of the REST API (the ApiName dimension of its metrics)."
  value       = aws_api_gateway_rest_api.this.name
}

output "stage_name" {
  description = "Name of the deployed stage."
  value       = aws_api_gateway_stage.this.stage_name
}

output "stage_invoke_url" {
  description = "Base URL: POST <url>/v1/orders, <url>/v1/orders/batch, <url>/orders (legacy)."
  value       = aws_api_gateway_stage.this.invoke_url
}

output "api_key_id" {
  description = "Id of the default API key (its value: aws apigateway get-api-key --api-key <id> --include-value)."
  value       = aws_api_gateway_api_key.this.id
}

output "usage_plan_id" {
  description = "Id of the usage plan; attach further producer keys to it."
  value       = aws_api_gateway_usage_plan.this.id
}
