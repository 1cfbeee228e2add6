"""Group commit for the hot path: reports and heartbeats wait for a shared transaction.

Requests hand their rows to one writer and await its commit; while a batch is being written,
the next one gathers. Under load a single transaction carries many reports (batch throughput);
when idle a report is written at once (no added latency). Nothing is acknowledged before it is
committed.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from admin.repositories.machines import upsert_statements

log = logging.getLogger(__name__)
DEADLOCK_RETRIES = 3
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure


@dataclass
class _Pending:
    reports: list[dict] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    pings: list[dict] = field(default_factory=list)
    waiters: list[asyncio.Future] = field(default_factory=list)


class GroupWriter:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._report_stmt, self._ping_stmt, self._sample_stmt = upsert_statements(engine.dialect.name)
        # One thread: SQLite has one writer anyway, and batches stay in arrival order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashfleet-writer")
        self._pending = _Pending()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dashfleet-group-writer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pending.waiters:
            await self._flush(self._swap())
        self._executor.shutdown(wait=True)

    def _submit(self, *, report: dict | None = None, sample: dict | None = None, ping: dict | None = None):
        fut = asyncio.get_running_loop().create_future()
        p = self._pending
        if report is not None:
            p.reports.append(report)
        if sample is not None:
            p.samples.append(sample)
        if ping is not None:
            p.pings.append(ping)
        p.waiters.append(fut)
        self._wakeup.set()
        return fut

    async def write_report(self, row: dict, sample: dict) -> None:
        await self._submit(report=row, sample=sample)

    async def write_ping(self, row: dict) -> None:
        await self._submit(ping=row)

    def _swap(self) -> _Pending:
        batch, self._pending = self._pending, _Pending()
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending.waiters:
                await self._flush(self._swap())

    async def _flush(self, batch: _Pending) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._write, batch)
        except Exception as exc:  # noqa: BLE001 - every waiter must hear how its write ended
            log.exception("group commit of %d writes failed", len(batch.waiters))
            for fut in batch.waiters:
                if not fut.done():
                    fut.set_exception(exc)
            return
        for fut in batch.waiters:
            if not fut.done():
                fut.set_result(None)

    def _write(self, batch: _Pending) -> None:
        # Each statement takes its rows in machine order, so two server processes writing to one
        # PostgreSQL lock rows in the same order; a deadlock that still happens (a report and a
        # heartbeat crossing) is detected by PostgreSQL and the batch is retried.
        by_machine = lambda row: (row["org_id"], row["machine_id"])  # noqa: E731
        reports, pings = sorted(batch.reports, key=by_machine), sorted(batch.pings, key=by_machine)
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                with self.engine.begin() as conn:
                    if reports:
                        conn.execute(self._report_stmt, reports)
                        conn.execute(self._sample_stmt, batch.samples)
                    if pings:
                        conn.execute(self._ping_stmt, pings)
                return
            except OperationalError as exc:
                if attempt == DEADLOCK_RETRIES or getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                    raise
                log.warning("write batch hit %s; retrying", exc.orig.sqlstate)
