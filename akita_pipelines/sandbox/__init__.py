"""Local emulators of the providers' real APIs, with a seeded world, OAuth, limits, faults."""
