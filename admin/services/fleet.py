"""The fleet's rules: what a report and a heartbeat store, liveness, expiry, listing, retention.

Liveness and expiry use the server's clock at receipt, never the agent's timestamp.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic_core import to_json
from sqlalchemy import Engine

from admin.core.config import Settings
from admin.repositories import accounts as accounts_repo
from admin.repositories import history as history_repo
from admin.repositories import machines as repo
from admin.repositories import messaging as messaging_repo
from admin.services import audit
from admin.services.alert_engine import AlertEngine
from admin.services.audit import UNATTRIBUTED, Actor
from admin.services.errors import NotFound
from admin.services.public import (
    AwayOut,
    FleetOut,
    HistoryBucket,
    HistoryBucketsOut,
    HistoryOut,
    HistorySample,
    MachineOut,
)
from admin.services.writer import GroupWriter
from common.constants import SAMPLE_MAX_AGE_SECONDS, UNKNOWN_FIELDS_MAX_BYTES
from common.health import compute_health
from common.schemas import HealthInfo, Report, SystemInfo

HISTORY_MAX_HOURS = 24 * 7
TOMBSTONE_DAYS = 30  # a machine expired this long ago and never listed since is forgotten
SORT_KEYS = frozenset(repo.SORT_COLUMNS)  # what a listing may be sorted by


@dataclass(frozen=True)
class MachineAlerts:
    """What fires now on one machine, for the fleet table: how many alerts, and the worst severity."""

    firing: int
    worst: str  # "critical" or "warning"


@dataclass(frozen=True)
class FleetFilter:
    """What a listing is narrowed by; None is "any"."""

    os: str | None = None
    status: str | None = None  # "online" | "offline"
    q: str | None = None
    health: str | None = None  # "ok" | "warning" | "critical"


_KNOWN_FIELDS = {
    None: set(Report.model_fields),
    "system": set(SystemInfo.model_fields),
    "health": set(HealthInfo.model_fields),
}


def cap_unknown_fields(report: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """The report with its unknown fields (at any level the schema knows: the report, `system`,
    `health`) kept in the order sent while their JSON stays within UNKNOWN_FIELDS_MAX_BYTES, and how
    many were dropped. Known fields are bounded by the schema; unknown ones only by the body limit,
    and every listing returns them for every machine (security finding 1)."""
    budget = UNKNOWN_FIELDS_MAX_BYTES
    dropped = 0

    def keep(fields: dict[str, Any], known: set[str]) -> dict[str, Any]:
        nonlocal budget, dropped
        kept: dict[str, Any] = {}
        for name, value in fields.items():
            if name not in known:
                size = len(to_json({name: value})) - 2  # "name":value, without the braces
                if size > budget:
                    dropped += 1
                    continue
                budget -= size
            kept[name] = value
        return kept

    capped = keep(report, _KNOWN_FIELDS[None])
    for nested in ("system", "health"):
        if isinstance(capped.get(nested), dict):
            capped[nested] = keep(capped[nested], _KNOWN_FIELDS[nested])
    return (capped, dropped) if dropped else (report, 0)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


SENSORS = ("cpu_percent", "ram_percent", "disk_percent")


def with_unknown_sensors(report: dict[str, Any]) -> dict[str, Any]:
    """The report with a sensor the agent could not read as null. Agents of earlier versions send
    such a sensor as 0 and name it in an extra `unavailable` list (they must still be able to
    report); theirs is read the same way as today's null, so their 0 is never shown or scored as a
    reading. Every other field stays as sent."""
    unavailable = report.get("unavailable")
    if not isinstance(unavailable, list) or not unavailable:
        return report
    unknown = [key for key in SENSORS if key in unavailable]
    return {**report, **dict.fromkeys(unknown)} if unknown else report


def machine_row(
    *,
    org_id: int,
    machine_id: str,
    now: float,
    hardware_id: str | None = None,
    hostname: str | None = None,
    os: str | None = None,
    last_ping: float | None = None,
    ts: float | None = None,
    report: str = "{}",
    system: str = "{}",
    cpu_percent: float | None = None,
    ram_percent: float | None = None,
    disk_percent: float | None = None,
    health_score: float | None = None,
    health_status: str | None = None,
) -> dict[str, Any]:
    """A machine's row as the writer stores it (every column, so reports and heartbeats batch
    together): a heartbeat gives the ids and times, a report everything. What an upsert keeps of an
    existing row is the repository's rule (repositories/machines.py, upsert_statements)."""
    return {
        "org_id": org_id,
        "machine_id": machine_id,
        "hardware_id": hardware_id,
        "hostname": hostname,
        "os": os,
        "last_seen": now,
        "last_ping": last_ping,
        "ts": ts,
        "report": report,
        "system": system,
        "cpu_percent": cpu_percent,
        "ram_percent": ram_percent,
        "disk_percent": disk_percent,
        "health_score": health_score,
        "health_status": health_status,
    }


class FleetService:
    def __init__(self, engine: Engine, settings: Settings, writer: GroupWriter) -> None:
        self.engine = engine
        self.settings = settings
        self.writer = writer
        self.alerts: AlertEngine | None = None  # set by AppServices: alert rules checked on arrival
        # Called with (org_id, machine_id) after a machine is deleted: caches forget it.
        self.deletion_hooks: list[Callable[[int, str], None]] = []

    # -- writes (hot path) ---------------------------------------------------------------
    async def record_report(self, *, org_id: int, machine_id: str, report: dict[str, Any], now: float) -> int:
        """Store the latest report and a history sample. `report` was validated by common.schemas
        and is kept as sent (an earlier agent's unreadable sensor as null), its unknown fields within
        UNKNOWN_FIELDS_MAX_BYTES: how many were dropped is returned."""
        report, dropped = cap_unknown_fields(with_unknown_sensors(report))
        system = report.get("system") or {}
        # The server scores every report itself (common.health), so the fleet is sorted and
        # counted by one formula whatever agent version sent it; the agent's own view stays in
        # the stored report.
        health = compute_health(report["cpu_percent"], report["ram_percent"], report["disk_percent"])
        row = machine_row(
            org_id=org_id,
            machine_id=machine_id,
            now=now,
            hardware_id=_text(system.get("hardware_id")),
            hostname=_text(system.get("hostname")),
            os=_text(system.get("os")),
            ts=now,
            report=to_json(report).decode(),
            system=to_json(system).decode(),
            cpu_percent=report["cpu_percent"],
            ram_percent=report["ram_percent"],
            disk_percent=report["disk_percent"],
            health_score=health.score,
            health_status=health.status,
        )
        sample = {
            "org_id": org_id,
            "machine_id": machine_id,
            "ts": self._sample_time(report, now),
            "cpu_percent": report["cpu_percent"],
            "ram_percent": report["ram_percent"],
            "disk_percent": report["disk_percent"],
            "health_score": health.score,
        }
        alerts = self.alerts
        changes = alerts.on_report(org_id, machine_id, report, now) if alerts else None
        if alerts is None or changes is None:
            await self.writer.write_report(row, sample)
            return dropped
        await self.writer.write_report(row, sample, alerts.writer_for(changes))
        alerts.remember(changes)
        return dropped

    def _sample_time(self, report: dict[str, Any], now: float) -> float:
        """When the sample was measured: the agent's own timestamp for a report that waited in its
        queue through an outage (so the chart shows it where it happened), else the receipt time.
        Only history uses it; liveness and expiry stay on the server's clock. A timestamp without
        a time zone, in the future, or older than the agent's queue can hold (SAMPLE_MAX_AGE_SECONDS)
        or the retention is not trusted: a key cannot backdate samples across the history."""
        stamp = report.get("timestamp")
        if not stamp:
            return now
        measured = datetime.fromisoformat(stamp)
        if measured.tzinfo is None:
            return now
        at = measured.timestamp()
        oldest = now - min(self.settings.history_1h_retention_days * 86400, SAMPLE_MAX_AGE_SECONDS)
        return at if oldest < at < now else now

    async def record_ping(self, *, org_id: int, machine_id: str, hardware_id: str | None, now: float) -> None:
        """Mark the machine alive; a machine first heard of by heartbeat is created empty."""
        alerts = self.alerts
        changes = alerts.on_ping(org_id, machine_id, now) if alerts else None
        await self.writer.write_ping(
            machine_row(org_id=org_id, machine_id=machine_id, now=now, hardware_id=hardware_id, last_ping=now),
            alerts.writer_for(changes) if alerts and changes else None,
        )
        if alerts and changes:
            alerts.remember(changes)

    # -- reads ---------------------------------------------------------------------------
    def status_of(self, last_seen: float, now: float) -> Literal["online", "offline"]:
        return "offline" if now - last_seen > self.settings.offline_after_seconds else "online"

    @staticmethod
    def away_of(row: Any, now: float) -> AwayOut | None:
        """An announced absence (the agent said goodbye): nothing heard since, return not overdue."""
        if row.goodbye_at is None or row.goodbye_at < row.last_seen:
            return None
        if row.expected_back is not None and now >= row.expected_back:
            return None
        return AwayOut(since=row.goodbye_at, expected_back=row.expected_back)

    def to_public(self, row: Any, now: float) -> MachineOut:
        """The contract's Machine from its stored row: what the API returns and the UI shows."""
        return MachineOut(
            id=row.machine_id,
            machine_id=row.machine_id,
            org_id=row.org_id,
            hardware_id=row.hardware_id,
            hostname=row.hostname,
            os=row.os,
            status=self.status_of(row.last_seen, now),
            last_seen=row.last_seen,
            last_ping=row.last_ping,
            ts=row.ts,
            health_score=row.health_score,
            health_status=row.health_status,
            away=self.away_of(row, now),
            report=json.loads(row.report),
            system=json.loads(row.system),
        )

    def expire(self, *, org_id: int | None, now: float) -> int:
        """Remove machines not seen within the TTL, leaving tombstones for the next listing."""
        cutoff = now - self.settings.fleet_ttl_seconds
        with self.engine.connect() as conn:
            if not repo.has_stale(conn, org_id=org_id, cutoff=cutoff):  # read-only in the usual case
                return 0
        with self.engine.begin() as conn:
            return repo.expire_stale(conn, org_id=org_id, cutoff=cutoff, now=now)

    def list_fleet(
        self,
        *,
        org_id: int,
        flt: FleetFilter = FleetFilter(),
        limit: int = 100,
        offset: int = 0,
        sort: str = "machine_id",
        descending: bool = False,
        take_expired: bool = True,
    ) -> FleetOut:
        """One page of the organisation's fleet, after removing its machines beyond the TTL.

        `take_expired` names each expired machine once, in the first listing that takes it (the
        API's); the web UI lists without taking, so it never hides an expiry from a script.
        """
        return self._list(org_id, flt, limit, offset, sort, descending, take_expired=take_expired, with_alerts=False)[0]

    def list_fleet_with_alerts(
        self, *, org_id: int, flt: FleetFilter, limit: int, offset: int, sort: str, descending: bool
    ) -> tuple[FleetOut, dict[str, MachineAlerts]]:
        """The web UI's page of the fleet (nothing expired is taken) with each listed machine's
        alerts, read in the page's own query (the API's Machine is the contract's and has no alerts)."""
        return self._list(org_id, flt, limit, offset, sort, descending, take_expired=False, with_alerts=True)

    def _list(
        self,
        org_id: int,
        flt: FleetFilter,
        limit: int,
        offset: int,
        sort: str,
        descending: bool,
        *,
        take_expired: bool,
        with_alerts: bool,
    ) -> tuple[FleetOut, dict[str, MachineAlerts]]:
        now = time.time()
        self.expire(org_id=org_id, now=now)
        expired: list[str] = []
        if take_expired:
            with self.engine.connect() as conn:
                pending = repo.has_tombstones(conn, org_id=org_id)
            if pending:
                with self.engine.begin() as conn:
                    expired = repo.take_tombstones(conn, org_id=org_id, limit=self.settings.expired_list_max)
        with self.engine.connect() as conn:
            count, rows = repo.list_machines(
                conn,
                org_id=org_id,
                now=now,
                offline_after=self.settings.offline_after_seconds,
                flt=flt,
                limit=limit,
                offset=offset,
                sort=sort,
                descending=descending,
                with_alerts=with_alerts,
            )
        alerts = (
            {
                r.machine_id: MachineAlerts(r.alerts_firing, "critical" if r.alerts_critical else "warning")
                for r in rows
                if r.alerts_firing
            }
            if with_alerts
            else {}
        )
        return FleetOut(count=count, expired=expired, data=[self.to_public(r, now) for r in rows]), alerts

    def summary(self, *, org_id: int) -> dict[str, int]:
        with self.engine.connect() as conn:
            return repo.counts(conn, org_id=org_id, now=time.time(), offline_after=self.settings.offline_after_seconds)

    def os_names(self, *, org_id: int) -> list[str]:
        with self.engine.connect() as conn:
            return repo.distinct_os(conn, org_id=org_id)

    def machine(self, *, org_id: int, machine_id: str) -> MachineOut:
        now = time.time()
        self.expire(org_id=org_id, now=now)
        with self.engine.connect() as conn:
            row = repo.get_machine(conn, org_id=org_id, machine_id=machine_id)
        if row is None:
            raise NotFound("no machine with that id in this organisation")
        return self.to_public(row, now)

    def _require_machine(self, *, org_id: int, machine_id: str) -> None:
        """NotFound for an unknown or another organisation's machine (its history is not ours)."""
        with self.engine.connect() as conn:
            if repo.get_machine(conn, org_id=org_id, machine_id=machine_id) is None:
                raise NotFound("no machine with that id in this organisation")

    def history(
        self, *, org_id: int, machine_id: str, hours: float, limit: int | None = None, offset: int = 0
    ) -> HistoryOut:
        """Samples of the last `hours`, oldest first; with `limit`, one page from `offset` and the
        offset of the next (None after the last)."""
        self._require_machine(org_id=org_id, machine_id=machine_id)
        since = time.time() - hours * 3600
        with self.engine.connect() as conn:
            rows = repo.history(
                conn,
                org_id=org_id,
                machine_id=machine_id,
                since=since,
                limit=None if limit is None else limit + 1,  # one more tells whether a next page exists
                offset=offset,
            )
        more = limit is not None and len(rows) > limit
        return HistoryOut(
            machine_id=machine_id,
            samples=[
                HistorySample(
                    ts=r.ts,
                    cpu_percent=r.cpu_percent,
                    ram_percent=r.ram_percent,
                    disk_percent=r.disk_percent,
                    score=r.health_score,
                )
                for r in (rows[:limit] if more else rows)
            ],
            next_offset=offset + limit if more and limit is not None else None,
        )

    def history_bucketed(self, *, org_id: int, machine_id: str, hours: float, bucket_seconds: int) -> HistoryBucketsOut:
        """The API's bucketed history: means per `bucket_seconds`."""
        buckets = self.history_buckets(org_id=org_id, machine_id=machine_id, hours=hours, width=bucket_seconds)
        return HistoryBucketsOut(
            machine_id=machine_id, bucket_seconds=bucket_seconds, buckets=[HistoryBucket(**b) for b in buckets]
        )

    def history_buckets(self, *, org_id: int, machine_id: str, hours: float, width: float) -> list[dict[str, Any]]:
        """History averaged per `width` seconds, for charts (the web UI): `ts` is the bucket's start,
        `samples` how many reports it averages."""
        self._require_machine(org_id=org_id, machine_id=machine_id)
        since = time.time() - hours * 3600
        with self.engine.connect() as conn:
            rows = repo.history_buckets(conn, org_id=org_id, machine_id=machine_id, since=since, width=width)
        return [
            {"ts": int(b) * width, "cpu_percent": cpu, "ram_percent": ram, "disk_percent": disk, "samples": n}
            for b, cpu, ram, disk, n in rows
        ]

    def delete_machine(self, *, org_id: int, machine_id: str, actor: Actor | str = UNATTRIBUTED) -> None:
        """Remove the machine, its history and its own keys (an enrolled agent is cut off: its
        machine id is free for other hardware to enrol)."""
        with self.engine.begin() as conn:
            if not repo.delete_machine(conn, org_id=org_id, machine_id=machine_id):
                raise NotFound("no machine with that id in this organisation")
            history_repo.delete_machine(conn, org_id=org_id, machine_id=machine_id)
            audit.record(conn, org_id=org_id, actor=actor, action="machine.delete", target=f"machine {machine_id}")
            # What waited for it will never be delivered: cancelled, in the same transaction.
            messaging_repo.cancel_queued(conn, org_id=org_id, now=time.time(), machine_id=machine_id)
            accounts_repo.revoke_machine_keys(conn, org_id=org_id, machine_id=machine_id, now=time.time())
        for hook in self.deletion_hooks:
            hook(org_id, machine_id)

    # -- background maintenance ------------------------------------------------------------
    def maintain(self) -> dict[str, int]:
        """Expiry for every organisation; run by a background job. (History retention is the
        rollup's, services/history.py: a sample is deleted only once it is rolled up.)"""
        now = time.time()
        expired = self.expire(org_id=None, now=now)
        with self.engine.begin() as conn:
            repo.prune_tombstones(conn, before=now - TOMBSTONE_DAYS * 86400)
        return {"expired": expired}
