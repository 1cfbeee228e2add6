"""An organisation's machines in Prometheus's text format (GET /api/fleet/metrics).

A Prometheus server scrapes this every 15-60 s per organisation, and one scrape of 10,000 machines
is 60,000 samples: the text is rendered once and kept for `fleet_metrics_cache_seconds`, so several
scrapers (HA pairs, Grafana Agent beside Prometheus) cost one query between them. A sensor with no
value (never reported, or unreadable) has no sample, Prometheus's way of saying "unknown".
"""

from __future__ import annotations

import time
from typing import Any

from cachetools import TTLCache
from sqlalchemy import Engine

from admin.core.config import Settings
from admin.repositories import machines as repo

UP_HELP = "1 when the server heard from the machine within OFFLINE_AFTER_SECONDS"
SEEN = "dashfleet_machine_last_seen_timestamp_seconds"
# (metric name, help, row column); the row's first three columns are the labels, then last_seen.
GAUGES = (
    ("dashfleet_machine_cpu_percent", "CPU use in the last report, percent", "cpu_percent"),
    ("dashfleet_machine_ram_percent", "RAM use in the last report, percent", "ram_percent"),
    ("dashfleet_machine_disk_percent", "Fullest disk in the last report, percent", "disk_percent"),
    ("dashfleet_machine_health_score", "Health score in the last report, 0-100", "health_score"),
)


def _escape(value: str) -> str:
    if "\\" not in value and '"' not in value and "\n" not in value:
        return value  # nearly every id and hostname: no copies made
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render_text(rows: list[Any], now: float, offline_after: float) -> bytes:
    """The exposition text of these machine rows. Written here rather than through
    prometheus_client's collectors: for 10,000 machines (60,000 samples) those took 0.7 s of CPU
    on this machine, this about a tenth of that (docs/benchmarks.md, "Prometheus metrics"), because
    each machine's label set is escaped once and shared by its six samples, and each metric's
    lines are one comprehension over plain tuples. Values are written as Python's shortest
    round-trip form of the float, as prometheus_client writes them.
    tests/admin/api/test_metrics.py parses the output with prometheus_client's own parser."""
    cutoff = now - offline_after
    machines = [
        (
            f'{{machine_id="{_escape(r.machine_id)}",hostname="{_escape(r.hostname or "")}",'
            f'os="{_escape(r.os or "")}"}} ',
            r.last_seen,
            *(getattr(r, column) for _, _, column in GAUGES),
        )
        for r in rows
    ]
    out: list[str] = [f"# HELP dashfleet_machine_up {UP_HELP}\n# TYPE dashfleet_machine_up gauge\n"]
    out += [f"dashfleet_machine_up{m[0]}{'1.0' if m[1] >= cutoff else '0.0'}\n" for m in machines]
    out.append(f"# HELP {SEEN} Server time of the last contact\n# TYPE {SEEN} gauge\n")
    out += [f"{SEEN}{m[0]}{float(m[1])!r}\n" for m in machines]
    for index, (name, text, _) in enumerate(GAUGES, start=2):
        out.append(f"# HELP {name} {text}\n# TYPE {name} gauge\n")
        out += [f"{name}{m[0]}{float(m[index])!r}\n" for m in machines if m[index] is not None]
    return "".join(out).encode()


class FleetMetrics:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self._cache: TTLCache[int, bytes] | None = (
            TTLCache(maxsize=10_000, ttl=settings.fleet_metrics_cache_seconds)
            if settings.fleet_metrics_cache_seconds > 0
            else None
        )

    def render(self, *, org_id: int) -> bytes:
        if self._cache is not None and (cached := self._cache.get(org_id)) is not None:
            return cached
        now = time.time()
        with self.engine.connect() as conn:
            rows = list(repo.metric_rows(conn, org_id=org_id))
        text = render_text(rows, now, self.settings.offline_after_seconds)
        if self._cache is not None:
            self._cache[org_id] = text
        return text
