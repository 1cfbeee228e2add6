"""History buckets: the samples of a 5-minute or an hour, rolled up (services/history.py)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, SmallInteger
from sqlmodel import Field, SQLModel

from common.constants import MACHINE_ID_MAX_LENGTH

# The metrics a bucket keeps, as (bucket column prefix, sample column).
BUCKET_METRICS = (
    ("cpu", "cpu_percent"),
    ("ram", "ram_percent"),
    ("disk", "disk_percent"),
    ("score", "health_score"),
)


class HistoryBucket(SQLModel, table=True):
    """One machine's samples over `width` seconds from `ts`: per metric the min, the max, the mean
    and how many readings it had (a null sensor is no reading: it lowers no mean). A bucket exists
    only where there were samples, so an offline gap stays a gap."""

    __tablename__ = "history_bucket"
    # The key is the row: without a rowid SQLite stores each bucket once, not once more in an index.
    # The second index serves retention (each tier's oldest buckets, across all machines).
    __table_args__ = (Index("ix_history_bucket_width_ts", "width", "ts"), {"sqlite_with_rowid": False})

    org_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    machine_id: str = Field(primary_key=True, max_length=MACHINE_ID_MAX_LENGTH)
    width: int = Field(sa_column=Column(SmallInteger, primary_key=True, autoincrement=False))  # 300 or 3600
    ts: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))  # start, Unix time
    samples: int
    cpu_min: float | None = None
    cpu_max: float | None = None
    cpu_avg: float | None = None
    cpu_count: int = 0
    ram_min: float | None = None
    ram_max: float | None = None
    ram_avg: float | None = None
    ram_count: int = 0
    disk_min: float | None = None
    disk_max: float | None = None
    disk_avg: float | None = None
    disk_count: int = 0
    score_min: float | None = None
    score_max: float | None = None
    score_avg: float | None = None
    score_count: int = 0


class HistoryRollup(SQLModel, table=True):
    """Where the rollup stands (one row): samples up to `done_id` are in the buckets; `seen_id` is the
    newest sample id seen at `seen_at`, rolled up once it has had time to commit (ids are handed out
    before their transactions commit, so a newer id may be visible before an older one)."""

    __tablename__ = "history_rollup"

    id: int = Field(default=1, primary_key=True)
    done_id: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    seen_id: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    seen_at: float = 0.0
