terraform {
  required_version = ">= 1.10"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 6.0"
    }
  }

  # Partial configuration: bucket, key and region come from `tofu init -backend-config=...`
  # (see README.md), so no bucket name or account id is committed.
  backend "s3" {
    use_lockfile = true
    encrypt      = true
  }
}

provider "aws" {
  region = var.aws_region

  default_tags {
    tags = {
      Project     = "orderflow"
      Environment = var.environment
      ManagedBy   = "opentofu"
    }
  }
}
