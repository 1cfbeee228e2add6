"""Turns the collectors' readings into a report (the wire format of common.schemas.Report) with
its health score from common.health.

The report is a plain dict, not a pydantic model: pydantic and the schema's validators cost about
10 MiB of RSS, a third of the agent's budget. What the agent builds is well-formed by construction
(percentages clamped to 0..100 and rounded, texts clipped to the schema's limit, no NaN), and the
tests validate it with the server's own model (common.schemas.ReportIn), so the two cannot drift.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from common.health import Health, compute_health
from desktop_agent import collectors

REQUIRED = ("cpu_percent", "ram_percent", "disk_percent")


@dataclass(frozen=True)
class Sample:
    report: dict[str, Any]
    health: Health

    @property
    def unavailable(self) -> tuple[str, ...]:
        """The sensors that could not be read (sent as null)."""
        return tuple(key for key in REQUIRED if self.report.get(key) is None)

    def as_payload(self) -> dict[str, Any]:
        """The report as it goes on the wire (a copy: the queue and the server get their own)."""
        return dict(self.report)


def _percent(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None  # unknown: never a 0 % that would read as an idle, healthy sensor
    return round(min(100.0, max(0.0, value)), 1)


def _gib(value: float) -> float:
    return round(max(0.0, value), 2)


def take_sample(state_dir: str | None = None) -> Sample:
    """One reading of this machine; never raises because a sensor failed."""
    mem = collectors.memory()
    dsk = collectors.disk()
    uptime = collectors.uptime_seconds()
    values = {
        "cpu_percent": collectors.cpu_percent(),
        "ram_percent": mem.percent if mem else None,
        "disk_percent": dsk.percent if dsk else None,
    }
    # The three percentages are required by the wire format; a sensor that could not be read is
    # sent as null (unknown), so the report still arrives and nobody mistakes it for a reading.
    percents = {key: _percent(value) for key, value in values.items()}
    health = compute_health(**percents)

    report: dict[str, Any] = {
        **percents,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "health": health.as_dict(),
        "system": dict(collectors.system_info(state_dir)),
    }
    if mem:
        report.update(ram_used_gib=_gib(mem.used_gib), ram_total_gib=_gib(mem.total_gib))
    if dsk:
        report.update(disk_used_gib=_gib(dsk.used_gib), disk_total_gib=_gib(dsk.total_gib))
    if uptime is not None:
        report.update(uptime_seconds=round(uptime), uptime_hms=collectors.format_hms(uptime))
    return Sample(report=report, health=health)
