"""Connectors to the providers. Never imports dagster or the database layer."""
