output "database_name" {
  description = "Name of the Glue database."
  value       = aws_glue_catalog_database.this.name
}

output "table_names" {
  description = "Glue table name by table-file name (identical; a map so callers can look tables up)."
  value       = { for name, table in aws_glue_catalog_table.this : name => table.name }
}

output "partition_key_names" {
  description = "Partition columns of every table, in path order (from sql/tables.json)."
  value       = [for key in local.partition_keys : key.name]
}
