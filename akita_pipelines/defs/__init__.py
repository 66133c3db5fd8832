"""Dagster lives here and only here: partitions, assets, sensors, jobs, resources."""
