"""Domain types, error taxonomy and clock. Standard library only."""
