"""The Akita database as a Dagster resource."""


from dagster import ConfigurableResource
from pydantic import Field
from sqlalchemy import Engine

from akita_pipelines.db.engine import cached_engine, default_database_url


class AkitaDatabase(ConfigurableResource):  # type: ignore[type-arg]
    """Connects to the Akita database.

    Leave ``url`` empty to use ``$AKITA_DATABASE_URL`` (read at run time, so a password in it
    never shows in the UI's resource config) or the embedded SQLite default.
    """

    url: str | None = Field(default=None, description="SQLAlchemy URL; empty = environment")

    def database_url(self) -> str:
        return self.url or default_database_url()

    def engine(self) -> Engine:
        return cached_engine(self.database_url())
