output "database_name" {
  description = "Name of the Glue database."
  value       = aws_glue_catalog_database.this.name
}

output "table_names" {
  description = "Glue table name by table-file name (identical; a map so callers can look tables up)."
  value       = { for name, table in aws_glue_catalog_table.this : name => table.name }
}
