"""The loop's business logic: plan (schedule), retrieve, process. Called by defs/ and the CLI."""
