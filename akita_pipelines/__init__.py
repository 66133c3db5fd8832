"""Akita Pipelines: the data-integration backbone of a Customer Success platform."""

__version__ = "0.1.0"
