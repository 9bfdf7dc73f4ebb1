# Where the transformer's resources lived before the lambda_function module: an applied stack
# moves them in its state instead of replacing them.

moved {
  from = aws_cloudwatch_log_group.transformer
  to   = module.transformer.aws_cloudwatch_log_group.this
}

moved {
  from = aws_iam_role.transformer
  to   = module.transformer.aws_iam_role.this
}

moved {
  from = aws_iam_role_policy.transformer
  to   = module.transformer.aws_iam_role_policy.this
}

moved {
  from = aws_lambda_function.transformer
  to   = module.transformer.aws_lambda_function.this
}
