"""Rate limits: exact moving windows, in this process's memory or shared through Redis.

Redis (`redis://...`, to share limits between server processes) uses the `limits` library. The
in-memory default is a small sliding log of its own: `limits`' in-memory storage re-scans every
key it holds, handing each to a worker thread, whenever a hit finds no scan running, which at
10,000 machines cost more CPU than the rest of the report route together (docs/benchmarks.md).
"""

from __future__ import annotations

import math
import time
from bisect import bisect_right
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

CONFIG_LIMIT = parse("100/minute")  # per client address (the contract)
FLEET_LIST_LIMIT = parse("600/minute")  # per API key; the contract's floor is 300
LOGIN_LIMIT = parse("10/minute")  # per e-mail address and per client address
# Per machine of an organisation: a long-polling agent asks a few times a minute; each delivery
# has a handful of state changes, and a backlog after an absence may hold many deliveries.
INBOX_LIMIT = parse("120/minute")
DELIVERY_STATE_LIMIT = parse("600/minute")
SWEEP_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class Refusal:
    retry_after: int


class _MemoryLog:
    """Per key, the times of the hits still inside the window: at most `amount` of them, and
    for a well-behaved agent one or two. Exact: never more than `amount` in any window."""

    def __init__(self) -> None:
        # Lists, not deques: a deque costs ~600 bytes even for the one or two hits most keys hold.
        self._hits: dict[str, list[float]] = {}
        self._next_sweep = time.monotonic() + SWEEP_EVERY_SECONDS

    async def hit(self, item: RateLimitItem, key: str) -> Refusal | None:
        now = time.monotonic()
        window = item.get_expiry()
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = []
        expired = bisect_right(hits, now - window)
        if expired:
            del hits[:expired]
        if len(hits) >= item.amount:
            return Refusal(retry_after=max(1, math.ceil(hits[0] + window - now)))
        hits.append(now)
        if now >= self._next_sweep:
            self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        # Keys whose newest hit left every window (the longest is a minute) are forgotten.
        self._hits = {k: v for k, v in self._hits.items() if v and v[-1] > now - SWEEP_EVERY_SECONDS}
        self._next_sweep = now + SWEEP_EVERY_SECONDS


class _SharedLog:
    """The same limits kept in Redis (the `limits` library's moving window), for several processes."""

    def __init__(self, storage_uri: str) -> None:
        uri = storage_uri if storage_uri.startswith("async+") else f"async+{storage_uri}"
        self._strategy = MovingWindowRateLimiter(storage_from_string(uri, implementation="redispy"))

    async def hit(self, item: RateLimitItem, key: str) -> Refusal | None:
        if await self._strategy.hit(item, key):
            return None
        stats = await self._strategy.get_window_stats(item, key)
        return Refusal(retry_after=max(1, math.ceil(stats.reset_time - time.time())))


class RateLimiter:
    """Counts hits; `ping` and `report` are the per-machine limits of Settings."""

    def __init__(self, storage_uri: str, *, ping_per_minute: int, report_per_minute: int) -> None:
        self.ping = parse(f"{ping_per_minute}/minute")  # per machine of an organisation
        self.report = parse(f"{report_per_minute}/minute")  # per machine: room for a queue catch-up
        self._log = _MemoryLog() if storage_uri.startswith("memory://") else _SharedLog(storage_uri)

    async def hit(self, item: RateLimitItem, *identifiers: object) -> Refusal | None:
        """Count one request; a Refusal (with seconds to wait) when over the limit."""
        # The limit's own text keeps different limits on the same identifiers apart.
        key = "/".join([str(item), *map(str, identifiers)])
        return await self._log.hit(item, key)
