"""Alembic environment: runs on the connection `lifecycle.schema.upgrade` hands over."""

from alembic import context

connection = context.config.attributes["connection"]
connection.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS lifecycle")
context.configure(
    connection=connection,
    version_table_schema="lifecycle",
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
