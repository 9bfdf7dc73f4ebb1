variable "name_prefix" {
  description = "Prefix of every resource name the deployment manages, e.g. orderflow-prod."
  type        = string
}

variable "environment" {
  description = "Environment name (tags and the GitHub environment/branch the deploy role trusts are per environment)."
  type        = string
}

variable "workload_iam_path" {
  description = "IAM path of the workload roles the deploy role may create and pass (e.g. /orderflow/prod/). Made from the environment, which tofu/variables.tf checks."
  type        = string
}

variable "github_repository" {
  description = "GitHub repository (owner/name) trusted by the roles. Checked in tofu/variables.tf."
  type        = string
}

variable "deploy_environment" {
  description = "GitHub environment whose jobs may assume the deploy role (the environment's protection rules, reviewers and deployment branches, guard every deploy)."
  type        = string
  default     = "prod"
}

variable "plan_branch" {
  description = "Branch whose workflows may assume the read-only plan role."
  type        = string
  default     = "main"
}

variable "create_github_oidc_provider" {
  description = "Create the GitHub OIDC provider (false: look up the account's existing one)."
  type        = bool
}

variable "tofu_state_bucket" {
  description = "Bucket of the OpenTofu state."
  type        = string
}

variable "tofu_state_key" {
  description = "Key of the OpenTofu state object."
  type        = string
}

variable "tofu_state_kms_key_arn" {
  description = "KMS key of the state bucket, or null for SSE-S3."
  type        = string
  default     = null
}

variable "kms_key_arn" {
  description = "The environment's customer-managed key (workloads may use only this key)."
  type        = string
}

variable "glue_database_name" {
  description = "Glue database of the analytics tables."
  type        = string
}

variable "data_bucket_arn" {
  description = "ARN of the data lake bucket."
  type        = string
}
