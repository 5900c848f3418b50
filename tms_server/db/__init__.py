"""Database access: connection pools, transactions, and where the database comes from."""

from tms_server.db.pool import Database, DatabaseUnavailable, database_url, open_database

__all__ = ["Database", "DatabaseUnavailable", "database_url", "open_database"]
