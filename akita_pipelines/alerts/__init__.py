"""Alerts: the incident policy, the outbox in the database, and delivery channels."""
