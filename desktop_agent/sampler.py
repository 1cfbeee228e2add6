"""Turns the collectors' readings into a common.schemas.Report with its health score.

The report is validated by the same strict model the server uses, so the agent never queues
something the server would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from common.health import Health, compute_health
from common.schemas import Report
from desktop_agent import collectors

REQUIRED = ("cpu_percent", "ram_percent", "disk_percent")


@dataclass(frozen=True)
class Sample:
    report: Report
    health: Health

    def as_payload(self) -> dict:
        """The report as JSON-ready data, without the fields that were not available."""
        return self.report.model_dump(mode="json", exclude_none=True)


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
    # The three percentages are required by the wire format. A failed one is sent as 0 and named
    # in `unavailable` (an extra field the server keeps), so the report still arrives and nobody
    # mistakes the 0 for a reading.
    unavailable = [key for key in REQUIRED if values[key] is None]
    percents = {key: round(min(100.0, max(0.0, value or 0.0)), 1) for key, value in values.items()}
    health = compute_health(**percents)
    health_info = health.as_dict()
    if unavailable:
        health_info["reasons"] = health_info["reasons"] + [f"{key} unavailable" for key in unavailable]

    data: dict = {
        **percents,
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "ram_used_gib": round(mem.used_gib, 2) if mem else None,
        "ram_total_gib": round(mem.total_gib, 2) if mem else None,
        "disk_used_gib": round(dsk.used_gib, 2) if dsk else None,
        "disk_total_gib": round(dsk.total_gib, 2) if dsk else None,
        "uptime_seconds": round(uptime) if uptime is not None else None,
        "uptime_hms": collectors.format_hms(uptime) if uptime is not None else None,
        "health": health_info,
        "system": collectors.system_info(state_dir),
    }
    if unavailable:
        data["unavailable"] = unavailable
    return Sample(report=Report.model_validate(data), health=health)
