"""The server's own Prometheus metrics: requests, latencies, the write queue, the database pool,
web sessions, and backlogs of background work.

Several server processes on one host share `metrics_dir` (prometheus-client's multiprocess mode:
each process writes its values to memory-mapped files there, and a scrape of any process sums
them), so a scrape through a load balancer sees the whole host, not one process by chance.
prometheus-client picks its storage when it is first imported, from PROMETHEUS_MULTIPROC_DIR: so
`configure()` sets that variable before anything imports prometheus_client, and everything here
imports it lazily.

Backlogs (the notifier's outbox, queued deliveries) are rows in the database, the same whichever
process is asked: they are read at scrape time by the functions registered with `add_backlog`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram
    from sqlalchemy import Engine

    from admin.services.writer import GroupWriter

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_FILE_PID = re.compile(r"_(\d+)\.db$")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _clear_dead_processes(directory: Path) -> None:
    """Files of processes that are gone (and a previous process of our own pid) are removed: their
    live gauges must not count, and a host that restarts its server for a year must not collect a
    file per run. Counters then drop, which Prometheus reads as a counter reset (rate() handles it)."""
    for path in directory.glob("*.db"):
        match = _FILE_PID.search(path.name)
        if match and (int(match[1]) == os.getpid() or not _pid_alive(int(match[1]))):
            path.unlink(missing_ok=True)


@dataclass
class ServerMetrics:
    directory: Path
    requests: Counter
    latency: Histogram
    write_queue: Gauge
    write_batch: Histogram
    pool_checked_out: Gauge
    web_sessions: Gauge
    backlogs: dict[str, Callable[[], int]] = field(default_factory=dict)

    def add_backlog(self, name: str, count: Callable[[], int]) -> None:
        """`dashfleet_backlog{queue=name}`: a count of waiting rows, read at each scrape."""
        self.backlogs[name] = count

    def render(self) -> bytes:
        from prometheus_client import CollectorRegistry, generate_latest
        from prometheus_client.core import GaugeMetricFamily
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(self.directory))  # type: ignore[no-untyped-call]
        backlogs = self.backlogs

        class Backlogs:
            def collect(self) -> Any:
                family = GaugeMetricFamily("dashfleet_backlog", "Rows waiting for background work", labels=["queue"])
                for name, count in backlogs.items():
                    family.add_metric([name], count())
                yield family

        if backlogs:
            registry.register(Backlogs())
        return generate_latest(registry)


_metrics: ServerMetrics | None = None


def configure(directory: Path) -> ServerMetrics:
    """Once per process, before prometheus_client is imported anywhere (see the module's doc)."""
    global _metrics
    if _metrics is not None:
        return _metrics
    directory.mkdir(parents=True, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    _clear_dead_processes(directory)
    from prometheus_client import Counter, Gauge, Histogram

    _metrics = ServerMetrics(
        directory=directory,
        requests=Counter(
            "dashfleet_http_requests", "HTTP requests answered", ["route", "method", "status"], registry=None
        ),
        latency=Histogram(
            "dashfleet_http_request_duration_seconds",
            "Time from a request's arrival to the end of its answer",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=None,
        ),
        write_queue=Gauge(
            "dashfleet_write_queue_depth",
            "Reports and heartbeats waiting for the group writer's next commit",
            multiprocess_mode="livesum",
            registry=None,
        ),
        write_batch=Histogram(
            "dashfleet_write_batch_size",
            "Writes committed together by the group writer",
            buckets=(1, 2, 5, 10, 25, 50, 100, 250, 500, 1000),
            registry=None,
        ),
        pool_checked_out=Gauge(
            "dashfleet_db_connections_in_use",
            "Database connections checked out of the pool",
            multiprocess_mode="livesum",
            registry=None,
        ),
        web_sessions=Gauge(
            "dashfleet_web_sessions_active",
            "Browser tabs connected to the web UI",
            multiprocess_mode="livesum",
            registry=None,
        ),
    )
    return _metrics


def get() -> ServerMetrics | None:
    """The process's metrics, or None when they are off (no DASHFLEET_METRICS_TOKEN)."""
    return _metrics


def mark_process_dead() -> None:
    """At a clean shutdown: this process's live gauges stop counting at once."""
    if _metrics is not None:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), str(_metrics.directory))  # type: ignore[no-untyped-call]


def instrument(metrics: ServerMetrics, engine: Engine, writer: GroupWriter) -> None:
    """Hooks the process's moving parts to their gauges; nothing is polled."""
    from sqlalchemy import event

    def on_batch(size: int, waiting: int) -> None:
        metrics.write_batch.observe(size)
        metrics.write_queue.set(waiting)

    writer.observer = on_batch
    event.listen(engine, "checkout", lambda *_: metrics.pool_checked_out.inc())
    event.listen(engine, "checkin", lambda *_: metrics.pool_checked_out.dec())
