"""What the API returns (and the web UI shows): the public shapes, in one module.

The services build and return these; the API routes declare them as `response_model`, so the
OpenAPI schema documents the real shapes. A machine's `report` and `system` are kept exactly as the
agent sent them (unknown fields included: newer agents may send more), so they stay open objects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Connection = Literal["online", "offline"]
HealthStatus = Literal["ok", "warning", "critical"]


class AwayOut(BaseModel):
    """A clean stop the agent announced (POST /api/agent/goodbye): expected offline, no alert."""

    since: float = Field(description="server Unix time of the goodbye")
    expected_back: float | None = Field(description="when it said it would be back; null: not said")


class MachineOut(BaseModel):
    """The contract's Machine: one entry of a fleet listing, or one machine."""

    id: str = Field(description="the same string as machine_id")
    machine_id: str
    org_id: int
    hardware_id: str | None
    hostname: str | None
    os: str | None = Field(description="as Python's platform.system() names it: Linux, Windows, Darwin")
    status: Connection = Field(description="offline when not heard from for more than OFFLINE_AFTER_SECONDS")
    last_seen: float = Field(description="server Unix time of the last contact (report or heartbeat)")
    last_ping: float | None = Field(description="server Unix time of the last heartbeat")
    ts: float | None = Field(description="server Unix time of the last report")
    health_score: float | None = Field(description="0-100, scored by the server; null until a report arrives")
    health_status: HealthStatus | None
    away: AwayOut | None = Field(None, description="set while the machine is away by its own word (not offline)")
    report: dict[str, Any] = Field(description="the last report as the agent sent it; {} until one arrives")
    system: dict[str, Any] = Field(description="the machine's OS metadata from its last report")


class FleetOut(BaseModel):
    count: int = Field(description="machines matching the filters (all pages)")
    expired: list[str] = Field(description="machines removed for silence since the previous listing, named once")
    data: list[MachineOut]


class HistorySample(BaseModel):
    ts: float = Field(description="when it was measured (Unix time)")
    cpu_percent: float | None
    ram_percent: float | None
    disk_percent: float | None
    score: float | None = Field(description="the health score of that report")


class HistoryOut(BaseModel):
    machine_id: str
    samples: list[HistorySample] = Field(description="oldest first")
    next_offset: int | None = Field(None, description="the offset of the next page; null after the last")


class HistoryBucket(BaseModel):
    ts: float = Field(description="the bucket's start (Unix time)")
    cpu_percent: float | None
    ram_percent: float | None
    disk_percent: float | None
    samples: int = Field(description="how many samples the bucket averages")


class HistoryBucketsOut(BaseModel):
    machine_id: str
    bucket_seconds: int
    buckets: list[HistoryBucket] = Field(description="oldest first; buckets without samples are left out")


class DeletedOut(BaseModel):
    ok: Literal[True] = True
    deleted: str = Field(description="the machine id")


class EnrolmentResetOut(BaseModel):
    ok: Literal[True] = True
    machine_id: str
    revoked_keys: int = Field(description="the machine's own keys revoked now (0: it was not enrolled)")


class ReportAccepted(BaseModel):
    ok: Literal[True] = True
    machine_id: str
    timestamp: float = Field(description="server Unix time at receipt")
    dropped_fields: int | None = Field(
        None, description="unknown report fields not kept (beyond 1 KiB of them, docs/security.md); absent when none"
    )


class ErrorOut(BaseModel):
    """The body of every error the API answers."""

    error: str
    detail: list[dict[str, Any]] | None = None  # invalid input (422): where and what, per problem


class HistoryRangeBucket(BaseModel):
    """A chart point: every metric's mean (`cpu_percent`, as in `bucket_seconds` answers), min, max
    and how many readings it holds (a sensor the agent could not read is no reading)."""

    ts: float = Field(description="the bucket's start (Unix time)")
    samples: int = Field(description="how many samples the bucket holds")
    cpu_percent: float | None
    cpu_min: float | None
    cpu_max: float | None
    cpu_count: int
    ram_percent: float | None
    ram_min: float | None
    ram_max: float | None
    ram_count: int
    disk_percent: float | None
    disk_min: float | None
    disk_max: float | None
    disk_count: int
    score: float | None = Field(description="the mean health score")
    score_min: float | None
    score_max: float | None
    score_count: int


class HistoryRangeOut(BaseModel):
    machine_id: str
    range: Literal["hour", "day", "week", "month", "year"]
    tier: Literal["raw", "5m", "1h"] = Field(description="what the buckets were read from: samples or a rollup")
    bucket_seconds: int
    since: float = Field(description="the start of the first bucket the range covers (Unix time)")
    until: float = Field(description="the server's time of the answer (Unix time)")
    buckets: list[HistoryRangeBucket] = Field(description="oldest first; a bucket without samples is left out")
