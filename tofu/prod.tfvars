# The prod deployment's settings: the one source for the administrator's first apply and for both
# workflows (deploy.yml applies with `-var-file=prod.tfvars`, ci.yml plans with it), so a CI run
# applies exactly what the administrator applied. Change prod by changing this file in a pull
# request. Not here, on purpose:
#   - where the deployment lives (aws_region, tofu_state_bucket, tofu_state_key) and
#     tofu_state_kms_key_arn: account-specific (an ARN holds the account id) and needed by the
#     workflows before OpenTofu runs (credentials, `tofu init -backend-config`), so they are the
#     repository variables AWS_REGION, TOFU_STATE_BUCKET, TOFU_STATE_KEY and TOFU_STATE_KMS_KEY_ARN,
#     exported as TF_VAR_... by the workflows and by the first apply (tofu/README.md);
#   - github_repository: the workflows pass the repository they run in (github.repository).
# No secrets belong in this file.

environment = "prod"

# false when the account already has GitHub's OIDC provider (one per URL and account).
create_github_oidc_provider = true

# false when another stack owns the region's API Gateway account setting (its CloudWatch role).
manage_api_gateway_account = true

# Team addresses (each must confirm the SNS subscription). This file is committed: prefer a
# distribution list to personal addresses.
alarm_email_addresses = []
