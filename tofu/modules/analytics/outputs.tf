output "workgroup_name" {
  description = "Name of the Athena workgroup."
  value       = aws_athena_workgroup.this.name
}

output "named_query_ids" {
  description = "Named query id by query name (from sql/queries/*.sql)."
  value       = { for file, query in aws_athena_named_query.this : query.name => query.id }
}
