"""The Akita database: schema, migrations and repositories. No dagster here."""
