"""The schema's migrations: one head, known to the code that skips Alembic when at it, and the
tables they make are the tables the models describe."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import admin.models  # noqa: F401 (registers the tables)
from admin.core.config import Settings
from admin.core.db import HEAD_REVISION, alembic_config, make_engine, migrate, schema_revision


def test_head_revision_constant_matches_the_migrations(tmp_path):
    script = ScriptDirectory.from_config(alembic_config(Settings(data_dir=tmp_path)))
    assert script.get_heads() == [HEAD_REVISION]


def test_migrated_schema_matches_the_models(tmp_path):
    settings = Settings(data_dir=tmp_path)
    migrate(settings)
    engine = make_engine(settings)
    with engine.connect() as conn:
        assert schema_revision(conn) == HEAD_REVISION
        assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
    engine.dispose()
    migrate(settings)  # a second run at head changes nothing and does not fail
