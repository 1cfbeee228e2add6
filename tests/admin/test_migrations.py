"""The schema's migrations: one head, known to the code that skips Alembic when at it, and the
tables they make are the tables the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import admin.models  # noqa: F401 (registers the tables)
from admin.core.config import Settings
from sqlalchemy import select, text

from admin.core.db import HEAD_REVISION, alembic_config, comparable_schema, make_engine, migrate, schema_revision
from admin.models.tables import Machine
from admin.repositories.machines import _binary_order, upsert_statements
from tests.conftest import BACKENDS


def test_head_revision_constant_matches_the_migrations(tmp_path):
    script = ScriptDirectory.from_config(alembic_config(Settings(data_dir=tmp_path)))
    assert script.get_heads() == [HEAD_REVISION]


@pytest.fixture(params=BACKENDS)
def settings(request, tmp_path) -> Settings:
    url = request.getfixturevalue("postgres").create() if request.param == "postgres" else ""
    return Settings(_env_file=None, data_dir=tmp_path, database_url=url)


# Alembic says it cannot compare the PostgreSQL-only expression index on SQLite; it is left out.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_migrated_schema_matches_the_models(settings):
    migrate(settings)
    engine = make_engine(settings)
    with engine.connect() as conn:
        assert schema_revision(conn) == HEAD_REVISION
        context = MigrationContext.configure(
            conn, opts={"include_object": comparable_schema(SQLModel.metadata, conn.dialect.name)}
        )
        assert compare_metadata(context, SQLModel.metadata) == []
    engine.dispose()
    migrate(settings)  # a second run at head changes nothing and does not fail


def test_fleet_order_is_served_by_the_unique_index(settings):
    """Listings sort by machine id in byte order (COLLATE "C" on PostgreSQL); the unique index must
    give that order without a sort, and upserts must still find their row by it."""
    migrate(settings)
    engine = make_engine(settings)
    with engine.begin() as conn:
        org = conn.execute(text("INSERT INTO organization (name, created_at) VALUES ('o', 0) RETURNING id")).scalar()
        report, _, _ = upsert_statements(conn.dialect.name)
        row = {"org_id": org, "machine_id": "m", "hardware_id": None, "hostname": None, "os": None, "last_seen": 1.0,
               "last_ping": None, "ts": 1.0, "report": "{}", "system": "{}", "cpu_percent": 1.0, "ram_percent": 1.0,
               "disk_percent": 1.0, "health_score": 100.0, "health_status": "ok"}
        conn.execute(report, [row, {**row, "last_seen": 2.0}])
        assert conn.execute(text("SELECT count(*), max(last_seen) FROM machine")).one() == (1, 2.0)
        query = select(Machine).where(Machine.org_id == org).order_by(_binary_order(conn, Machine.__table__.c.machine_id)).limit(100)
        compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
        explain = "EXPLAIN" if conn.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
        conn.execute(text("SET LOCAL enable_seqscan = off")) if conn.dialect.name == "postgresql" else None
        plan = " ".join(str(r) for r in conn.execute(text(f"{explain} {compiled}")))
    engine.dispose()
    assert "uq_machine_org_machine_id" in plan or "sqlite_autoindex_machine" in plan, plan
    assert "Sort" not in plan and "TEMP B-TREE" not in plan, plan
