variable "environment" {
  description = "Deployment environment; part of every resource name (orderflow-<environment>-...) and of the Glue database name."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9]{1,11}$", var.environment))
    error_message = "environment must be 2-12 lower-case letters or digits, starting with a letter (it is used in S3 bucket, Glue and IAM names)."
  }
}

variable "aws_region" {
  description = "AWS region to deploy into, e.g. eu-central-1."
  type        = string

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.aws_region))
    error_message = "aws_region must be a region code such as eu-central-1."
  }
}

variable "lambda_dist_dir" {
  description = "Directory with the Lambda zips (one per Cargo binary, e.g. consumer.zip) and SHA256SUMS, as built by `nix build .#lambdas`. Relative paths are relative to this root module (tofu/)."
  type        = string
  default     = "../dist/lambdas"

  validation {
    condition     = length(trimspace(var.lambda_dist_dir)) > 0
    error_message = "lambda_dist_dir must not be empty."
  }
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose `prod` environment may assume the deploy role, and whose `main` branch may assume the read-only plan role."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must look like owner/name."
  }
}

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC identity provider. Set to false when the account already has one (there can be only one per URL); it is then looked up."
  type        = bool
  default     = true
}

variable "tofu_state_bucket" {
  description = "Name of the S3 bucket holding this configuration's state (the backend's bucket); the CI roles get access to the state object and its lock file only."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.tofu_state_bucket))
    error_message = "tofu_state_bucket must be a valid S3 bucket name."
  }
}

variable "tofu_state_key" {
  description = "Key of the state object in tofu_state_bucket (the backend's key)."
  type        = string
  default     = "orderflow/prod.tfstate"
}

variable "tofu_state_kms_key_arn" {
  description = "ARN of the KMS key encrypting the state bucket, if it uses SSE-KMS; null or empty when it uses SSE-S3 (the workflows pass the repository variable TOFU_STATE_KMS_KEY_ARN, empty when unset)."
  type        = string
  default     = null

  validation {
    condition     = var.tofu_state_kms_key_arn == null || var.tofu_state_kms_key_arn == "" || can(regex("^arn:aws[a-z-]*:kms:", var.tofu_state_kms_key_arn))
    error_message = "tofu_state_kms_key_arn must be a KMS key ARN, empty or null."
  }
}

variable "manage_api_gateway_account" {
  description = "Set the region-wide API Gateway account setting (the CloudWatch Logs role API Gateway logs with). There is one per account and region: set to false if another stack manages it."
  type        = bool
  default     = true
}

variable "alarm_email_addresses" {
  description = "E-mail addresses subscribed to the alarm topic (each must confirm the subscription)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for address in var.alarm_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+$", address))])
    error_message = "alarm_email_addresses must be e-mail addresses."
  }
}
