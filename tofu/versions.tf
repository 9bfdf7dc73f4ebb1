terraform {
  required_version = ">= 1.10"

  required_providers {
    # Both majors: the configuration validates, applies and re-plans empty on 5.100 (the provider
    # `cargo xtask rehearse` runs where only a 5.x mirror exists) and is written for 6.x, which a
    # fresh `tofu init` picks (the newest release below 7.0). The region is read as
    # `data.aws_region.current.id`, the region name in both majors: 6.0 deprecated `name` and added
    # `region`, which 5.x lacks (provider CHANGELOG 6.0.0, hashicorp/terraform-provider-aws#42131;
    # registry docs of data source aws_region, versions 5.100.0 and 6.0.0).
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.100, < 7.0"
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
