"""The wire format between agent and server: reports, heartbeats and their limits.

Models are strict about types (a string is never a number, a bool never a percentage) and refuse
NaN and infinities, so nothing the server stores needs re-checking when it is shown. Unknown fields
are accepted and kept (newer agents may send more), within the server's body limit.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictFloat, StrictStr, model_validator
from pydantic_core import from_json

from common.constants import MACHINE_ID_MAX_LENGTH, SYSTEM_FIELD_MAX_LENGTH


def _check_machine_id(value: str) -> str:
    if not value.strip():
        raise ValueError("machine_id must not be blank")
    if not value.isprintable():
        raise ValueError("machine_id must contain printable characters only")
    return value


def _check_iso8601(value: str) -> str:
    from datetime import datetime

    try:
        # Python 3.11 parses the full ISO 8601 profile agents send, including a trailing "Z".
        datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("timestamp must be an ISO 8601 date and time") from None
    return value


# StrictFloat takes ints too, but never a bool or a numeric string.
# Stored and shown exactly as given: no stripping, no case folding.
MachineId = Annotated[
    StrictStr,
    Field(
        min_length=1, max_length=MACHINE_ID_MAX_LENGTH, description="Chosen by the agent or IT; unique per organisation"
    ),
    AfterValidator(_check_machine_id),
]
Number = Annotated[StrictFloat, Field(allow_inf_nan=False)]
Percent = Annotated[StrictFloat, Field(ge=0, le=100, allow_inf_nan=False)]
NonNegative = Annotated[StrictFloat, Field(ge=0, allow_inf_nan=False)]


def _no_nul(value: str) -> str:
    # Metadata lands in database columns, and PostgreSQL text cannot hold a NUL character.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


SystemText = Annotated[StrictStr, Field(max_length=SYSTEM_FIELD_MAX_LENGTH), AfterValidator(_no_nul)]
OptionalText = SystemText | None


def _has_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


class _OpenModel(BaseModel):
    """Keeps unknown fields, but never a NaN or an infinity (1e400 parses as one)."""

    model_config = ConfigDict(extra="allow")

    @model_validator(mode="after")
    def _extras_are_finite(self) -> _OpenModel:
        if self.model_extra and _has_non_finite(self.model_extra):
            raise ValueError("numbers must be finite (no NaN or infinity)")
        return self


class SystemInfo(_OpenModel):
    """OS metadata; `os` uses Python's platform.system() names: Linux, Windows, Darwin."""

    os: OptionalText = None
    os_version: OptionalText = None
    platform: OptionalText = None
    architecture: OptionalText = None
    python_version: OptionalText = None
    hardware_id: OptionalText = None
    agent_version: OptionalText = None
    hostname: OptionalText = None


class HealthInfo(_OpenModel):
    score: Annotated[StrictFloat, Field(ge=0, le=100, allow_inf_nan=False)] | None  # None: nothing readable
    status: Literal["ok", "warning", "critical"] | None
    reasons: Annotated[list[Annotated[StrictStr, Field(max_length=200)]], Field(max_length=16)] | None = None


class Report(_OpenModel):
    # Required, and null when the agent could not read the sensor (unknown, never a 0 %). Agents
    # of earlier versions send 0 and name the key in an extra `unavailable` list; the server reads
    # that as null (admin/services/fleet.py, with_unknown_sensors).
    cpu_percent: Percent | None
    ram_percent: Percent | None
    disk_percent: Percent | None
    timestamp: Annotated[StrictStr, Field(max_length=64), AfterValidator(_check_iso8601)] | None = None
    ram_used_gib: NonNegative | None = None
    ram_total_gib: NonNegative | None = None
    disk_used_gib: NonNegative | None = None
    disk_total_gib: NonNegative | None = None
    uptime_seconds: NonNegative | None = None
    uptime_hms: Annotated[StrictStr, Field(max_length=64)] | None = None
    health: HealthInfo | None = None
    system: SystemInfo | None = None


class ReportIn(BaseModel):
    """Body of POST /api/fleet/report."""

    model_config = ConfigDict(extra="ignore")

    machine_id: MachineId
    report: Report


class PingIn(BaseModel):
    """Body of POST /api/fleet/ping: a lightweight heartbeat."""

    model_config = ConfigDict(extra="ignore")

    machine_id: MachineId
    hardware_id: OptionalText = None
    # The agent's Unix time, used only to tell it how far its clock is off.
    timestamp: Number | None = None


class NonFiniteNumber(ValueError):
    """Well-formed apart from NaN or Infinity literals: a validation error (422), not bad JSON."""


def parse_json(body: bytes) -> object:
    """Strict JSON: the literals NaN and Infinity, which Python's json accepts, are refused."""
    try:
        return from_json(body, allow_inf_nan=False)
    except ValueError:
        try:
            from_json(body, allow_inf_nan=True)
        except ValueError:
            raise
        raise NonFiniteNumber("numbers must be finite (NaN and Infinity are not allowed)") from None


class PingOut(BaseModel):
    ok: Literal[True] = True
    timestamp: float
    server_time_offset: float | None = None
    # Present and true when a message or command waits for this machine (PROTOCOL-messages.md).
    inbox: bool | None = None
