"""The schema's migrations: one head, known to the code that skips Alembic when at it, and the
tables they make are the tables the models describe."""

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event, text
from sqlmodel import SQLModel

import admin.models  # noqa: F401 (registers the tables)
from admin.core.config import Settings
from admin.core.db import HEAD_REVISION, alembic_config, comparable_schema, make_engine, migrate, schema_revision
from admin.repositories.machines import get_machine, list_machines, upsert_statements
from admin.services.fleet import FleetFilter
from tests.helpers.servers import BACKENDS


def test_head_revision_constant_matches_the_migrations(tmp_path):
    script = ScriptDirectory.from_config(alembic_config(Settings(data_dir=tmp_path)))
    assert script.get_heads() == [HEAD_REVISION]


@pytest.fixture(params=BACKENDS)
def settings(request, tmp_path) -> Settings:
    # PostgreSQL with a locale collation, as on most servers: there byte order has to be asked for.
    url = request.getfixturevalue("postgres").create(icu_locale="en") if request.param == "postgres" else ""
    return Settings(_env_file=None, data_dir=tmp_path, database_url=url)


@pytest.mark.parametrize("where", ["data_dir", "database_url"])
def test_a_database_at_head_is_not_migrated_again(tmp_path, monkeypatch, where):
    """Every command migrates first; at head that must cost one query, not Alembic's import and
    run (most of a command's start-up), wherever the SQLite file is: under data_dir or named by
    DASHFLEET_DATABASE_URL."""
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}" if where == "database_url" else ""
    settings = Settings(_env_file=None, data_dir=tmp_path / "data", database_url=url)
    migrate(settings)
    import admin.core.db as db

    monkeypatch.setattr(db, "_upgrade", lambda _settings: pytest.fail("migrated again at head"))
    migrate(settings)


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


def test_fleet_is_listed_and_found_in_byte_order_by_the_unique_index(settings):
    """Listings sort by machine id in byte order on both backends (so pages agree), PostgreSQL's
    locale notwithstanding; the unique index gives that order without a sort and finds one machine
    with one probe, and upserts still find their row by it."""
    migrate(settings)
    engine = make_engine(settings)
    ids = ["b-2", "B-1", "a-3", "_x", "Z", "a-10"]
    executed: list[tuple] = []
    with engine.begin() as conn:
        org = conn.execute(text("INSERT INTO organization (name, created_at) VALUES ('o', 0) RETURNING id")).scalar()
        report, _, _ = upsert_statements(conn.dialect.name)
        row = {
            "org_id": org,
            "hardware_id": None,
            "hostname": None,
            "os": None,
            "last_seen": 1.0,
            "last_ping": None,
            "ts": 1.0,
            "report": "{}",
            "system": "{}",
            "cpu_percent": 1.0,
            "ram_percent": 1.0,
            "disk_percent": 1.0,
            "health_score": 100.0,
            "health_status": "ok",
        }
        conn.execute(report, [{**row, "machine_id": m} for m in ids])
        conn.execute(report, [{**row, "machine_id": "Z", "last_seen": 2.0}])  # an upsert, not a second row
        assert conn.execute(text("SELECT count(*), max(last_seen) FROM machine")).one() == (len(ids), 2.0)

        event.listen(conn, "before_cursor_execute", lambda _c, _cur, sql, params, *_: executed.append((sql, params)))
        _, rows = list_machines(conn, org_id=org, now=1.0, offline_after=300, flt=FleetFilter(), limit=100, offset=0)
        assert [r.machine_id for r in rows] == sorted(ids)  # str order is code point, i.e. UTF-8 byte order
        assert get_machine(conn, org_id=org, machine_id="a-3").machine_id == "a-3"
        assert get_machine(conn, org_id=org, machine_id="A-3") is None
        page_query, lookup = executed[-2], executed[-1]

        if conn.dialect.name == "postgresql":
            conn.execute(text("SET LOCAL enable_seqscan = off"))  # six rows: make the planner show its index
            conn.execute(text("SET LOCAL enable_bitmapscan = off"))
        explain = "EXPLAIN" if conn.dialect.name == "postgresql" else "EXPLAIN QUERY PLAN"
        plans = [
            " ".join(str(r[-1]) for r in conn.exec_driver_sql(f"{explain} {sql}", params))
            for sql, params in (page_query, lookup)
        ]
    engine.dispose()
    for plan in plans:
        assert "uq_machine_org_machine_id" in plan or "sqlite_autoindex_machine" in plan, plans
        assert "Sort" not in plan and "TEMP B-TREE" not in plan and "Filter" not in plan, plans
