output "deploy_role_arn" {
  description = "ARN of the role the deploy workflow assumes (repository variable AWS_DEPLOY_ROLE_ARN)."
  value       = aws_iam_role.ci["deploy"].arn
}

output "plan_role_arn" {
  description = "ARN of the read-only role the main-branch plan assumes (repository variable AWS_PLAN_ROLE_ARN)."
  value       = aws_iam_role.ci["plan"].arn
}

output "workload_boundary_policy_arn" {
  description = "ARN of the permissions boundary every workload role carries."
  value       = aws_iam_policy.workload_boundary.arn
}

output "oidc_provider_arn" {
  description = "ARN of the GitHub OIDC provider."
  value       = local.oidc_provider_arn
}

output "admin_iam_path" {
  description = "IAM path of the CI roles, their policies and other administrator-managed roles (the deploy role can read, not change, what lives there)."
  value       = local.ci_path
}
