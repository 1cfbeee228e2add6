"""Engine creation and schema migration (Alembic), shared by the server and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Column, Connection, Engine, MetaData, create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from admin.core.config import Settings

if TYPE_CHECKING:  # Alembic is imported only when a migration is to run (start-up time)
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
            cur = dbapi_conn.cursor()
            # WAL lets readers run beside the writer; NORMAL keeps every commit across a crash
            # of the process (WAL's guarantee) and syncs at checkpoints.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()
            # SQLite's lower() folds ASCII only: "any case" searches and filters must also match
            # "BÜRO" with "büro", as PostgreSQL's lower() does.
            dbapi_conn.create_function("lower", 1, _lower, deterministic=True)

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def comparable_schema(metadata: MetaData, dialect: str) -> Callable[..., bool]:
    """Alembic's `include_object` for comparing `metadata` with a `dialect` database: Alembic
    honours neither SQLAlchemy's per-dialect DDL (`ddl_if`) nor compares expression indexes (such
    as the machine table's "C"-collated one on PostgreSQL), so both are left out of the comparison."""
    expression_indexes = {
        index.name
        for table in metadata.tables.values()
        for index in table.indexes
        if any(not isinstance(e, Column) for e in index.expressions)
    }

    def include(obj: object, name: str | None, type_: str, reflected: bool, compare_to: object) -> bool:
        if type_ == "index" and name in expression_indexes:
            return False
        # What ddl_if() recorded; SQLAlchemy has no public accessor for it.
        only_on = getattr(getattr(obj, "_ddl_if", None), "dialect", None)
        return reflected or only_on is None or only_on == dialect

    return include


def alembic_config(settings: Settings) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["settings"] = settings
    return cfg


# The newest migration in admin/migrations/versions (a test checks they agree). Knowing it lets
# every command skip importing Alembic (most of a CLI command's start-up) when nothing is to do.
HEAD_REVISION = "0014_alert_rule_enabled"


def _at_head(settings: Settings) -> bool:
    url = make_url(settings.sqlalchemy_url)
    if url.get_backend_name() == "sqlite" and not (url.database and Path(url.database).exists()):
        return False  # connecting would create an empty file: Alembic makes it, with its schema
    engine = make_engine(settings)
    try:
        with engine.connect() as conn:
            return schema_revision(conn) == HEAD_REVISION
    except SQLAlchemyError:
        return False  # no schema yet, or no database: let Alembic create it or say what is wrong
    finally:
        engine.dispose()


class MigrationFailed(Exception):
    """Alembic could not bring the schema to this version (e.g. a newer version wrote it)."""


def migrate(settings: Settings) -> None:
    """Create or upgrade the schema to the newest revision (every command runs this first)."""
    if _at_head(settings):
        return
    from alembic.util.exc import CommandError

    try:
        _upgrade(settings)
    except CommandError as exc:
        raise MigrationFailed(str(exc)) from None


def _upgrade(settings: Settings) -> None:
    from alembic import command

    if not settings.sqlalchemy_url.startswith("sqlite"):
        command.upgrade(alembic_config(settings), "head")  # env.py takes an advisory lock
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(settings.data_dir / ".migrate.lock"):
        command.upgrade(alembic_config(settings), "head")


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Processes sharing one SQLite file migrate one at a time (POSIX; elsewhere no lock)."""
    try:
        import fcntl
    except ImportError:  # Windows: run one server process per SQLite file
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def schema_revision(conn: Connection) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
