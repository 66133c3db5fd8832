"""Normalise, match, link: pure functions over records. No I/O, no dagster, no database."""
