"""Alembic environment: the URL comes from Settings, the target schema from the SQLModel tables."""

from alembic import context
from sqlmodel import SQLModel

import admin.models  # noqa: F401  (registers the tables)
from admin.core.config import get_settings
from admin.core.db import make_engine

config = context.config
settings = config.attributes.get("settings") or get_settings()


def run_migrations_online() -> None:
    engine = make_engine(settings)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=SQLModel.metadata,
            render_as_batch=engine.dialect.name == "sqlite",  # SQLite alters tables by copying
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
