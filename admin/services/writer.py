"""Group commit for the hot path: reports, heartbeats and the agents' delivery state changes wait
for a shared transaction.

Requests hand their rows (or a unit of work, `run`) to one writer and await its commit; while a
batch is being written, the next one gathers. Under load a single transaction carries many reports
(batch throughput); when idle a report is written at once (no added latency). Nothing is
acknowledged before it is committed, and a write the database refuses fails alone: the batch is
then written item by item.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from admin.repositories.machines import upsert_statements
from common.constants import SAMPLE_MIN_SPACING_SECONDS

log = logging.getLogger(__name__)
DEADLOCK_RETRIES = 3
RETRYABLE_SQLSTATES = {"40P01", "40001"}  # PostgreSQL: deadlock detected, serialization failure
P = TypeVar("P")
R = TypeVar("R")
# Work on many requests' payloads at once, in one transaction: one result per payload, in order.
BatchWork = Callable[[Connection, list[P]], list[R]]


@dataclass
class _Write:
    machine: dict[str, Any] | None  # the machine row to upsert (None: a unit of work only)
    sample: dict[str, Any] | None  # a history sample (reports only)
    future: asyncio.Future[Any]
    also: Callable[[Connection], None] | None = None  # more rows of this write (alert changes)
    error: BaseException | None = None
    order: tuple[int, str] = (0, "")  # (org_id, machine_id): rows are locked in this order
    work: BatchWork[Any, Any] | None = None  # a unit of work (`run`) and its payload
    payload: Any = None
    result: Any = None  # the work's result for this payload, handed to the caller once committed


class GroupWriter:
    def __init__(self, engine: Engine, *, sample_spacing: float = SAMPLE_MIN_SPACING_SECONDS) -> None:
        self.engine = engine
        self._report_stmt, self._ping_stmt, self._sample_stmt = upsert_statements(engine.dialect.name, sample_spacing)
        # One thread: SQLite has one writer anyway, and batches stay in arrival order.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dashfleet-writer")
        self._pending: list[_Write] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Told (batch size, writes still waiting) as each batch starts: the server's metrics.
        self.observer: Callable[[int, int], None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="dashfleet-group-writer")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._pending:
            await self._flush(self._swap())
        self._executor.shutdown(wait=True)

    async def write_report(
        self, row: dict[str, Any], sample: dict[str, Any], also: Callable[[Connection], None] | None = None
    ) -> None:
        await self._submit(row, sample, also)

    async def write_ping(self, row: dict[str, Any], also: Callable[[Connection], None] | None = None) -> None:
        await self._submit(row, None, also)

    async def run(self, work: BatchWork[P, R], payload: P, *, org_id: int, machine_id: str) -> R:
        """`work(conn, payloads)` in the next batch's transaction, with the payloads of every request
        that handed the same `work` to that batch; this payload's result once the batch committed.

        Work must not raise for a refusal it wants the rest of its writes kept with (return it as
        that payload's result): an exception rolls the batch back, and only a database error is
        then retried item by item; any other fails the whole batch. It may run more than once (a
        batch retried after a deadlock, or item by item): it reads what it decides on in the same
        transaction."""
        return await self._submit(None, None, None, (org_id, machine_id), work, payload)  # type: ignore[no-any-return]

    def _submit(
        self,
        machine: dict[str, Any] | None,
        sample: dict[str, Any] | None,
        also: Callable[[Connection], None] | None,
        order: tuple[int, str] | None = None,
        work: BatchWork[Any, Any] | None = None,
        payload: Any = None,
    ) -> asyncio.Future[Any]:
        future = asyncio.get_running_loop().create_future()
        if order is None:
            assert machine is not None  # a report or a heartbeat
            order = (machine["org_id"], machine["machine_id"])
        self._pending.append(_Write(machine, sample, future, also, order=order, work=work, payload=payload))
        self._wakeup.set()
        return future

    def _swap(self) -> list[_Write]:
        batch, self._pending = self._pending, []
        return batch

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._pending:
                batch = self._swap()
                if self.observer is not None:
                    self.observer(len(batch), len(self._pending))
                await self._flush(batch)

    async def _flush(self, batch: list[_Write]) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._write, batch)
        except Exception as exc:
            log.exception("group commit of %d writes failed", len(batch))
            for item in batch:
                item.error = item.error or exc
        for item in batch:
            if not item.future.done():
                if item.error is None:
                    item.future.set_result(item.result)
                else:
                    item.future.set_exception(item.error)

    def _write(self, batch: list[_Write]) -> None:
        try:
            self._commit(batch)
        except DBAPIError as exc:
            if len(batch) == 1 or isinstance(exc, OperationalError):
                raise  # unreachable database: the whole batch fails the same way
            # One row the database refuses must not fail the others: write them one by one.
            for item in batch:
                try:
                    self._commit([item])
                except DBAPIError as item_exc:
                    item.error = item_exc

    def _commit(self, batch: list[_Write]) -> None:
        # Each statement takes its rows in machine order, so two server processes writing to one
        # PostgreSQL lock rows in the same order; a deadlock that still happens (a report and a
        # heartbeat crossing) is detected by PostgreSQL and the batch is retried.
        ordered = sorted(batch, key=lambda item: item.order)
        reports = [item.machine for item in ordered if item.machine is not None and item.sample is not None]
        samples = [item.sample for item in ordered if item.machine is not None and item.sample is not None]
        pings = [item.machine for item in ordered if item.machine is not None and item.sample is None]
        for attempt in range(DEADLOCK_RETRIES + 1):
            try:
                with self.engine.begin() as conn:
                    if reports:
                        conn.execute(self._report_stmt, reports)
                        conn.execute(self._sample_stmt, samples)
                    if pings:
                        conn.execute(self._ping_stmt, pings)
                    works: dict[BatchWork[Any, Any], list[_Write]] = {}
                    for item in ordered:  # alert state changes, in the same transaction as their cause
                        if item.also is not None:
                            item.also(conn)
                        if item.work is not None:
                            works.setdefault(item.work, []).append(item)
                    for work, items in works.items():  # each unit of work once, on all its payloads
                        for item, result in zip(items, work(conn, [i.payload for i in items]), strict=True):
                            item.result = result
                return
            except OperationalError as exc:
                if attempt == DEADLOCK_RETRIES or getattr(exc.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                    raise
                log.warning("write batch hit %s; retrying", getattr(exc.orig, "sqlstate", None))
