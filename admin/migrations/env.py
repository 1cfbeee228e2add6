"""Alembic environment: the URL comes from Settings, the target schema from the SQLModel tables."""

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import admin.models  # noqa: F401  (registers the tables)
from admin.core.config import get_settings
from admin.core.db import comparable_schema, make_engine

MIGRATION_LOCK_KEY = 0x0DA5_F1EE7  # any constant shared by every DashFleet process
config = context.config
settings = config.attributes.get("settings") or get_settings()


def run_migrations_online() -> None:
    engine = make_engine(settings)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=engine.dialect.name == "sqlite",  # SQLite alters tables by copying
            include_object=comparable_schema(SQLModel.metadata, engine.dialect.name),  # autogenerate
        )
        with context.begin_transaction():
            if engine.dialect.name == "postgresql":
                # Server processes starting together on one database migrate one at a time; the
                # others wait, then find the schema current. (SQLite: a file lock in core/db.py.)
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
    engine.dispose()


run_migrations_online()
