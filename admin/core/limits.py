"""Rate limits on the `limits` library: in memory by default, in Redis to share across processes."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.storage import storage_from_string
from limits.aio.strategies import MovingWindowRateLimiter

from common.constants import PING_LIMIT_PER_MINUTE, REPORT_LIMIT_PER_MINUTE

CONFIG_LIMIT = parse("100/minute")  # per client address (the contract)
PING_LIMIT = parse(f"{PING_LIMIT_PER_MINUTE}/minute")  # per machine of an organisation
REPORT_LIMIT = parse(f"{REPORT_LIMIT_PER_MINUTE}/minute")  # per machine: room for a queue catch-up
FLEET_LIST_LIMIT = parse("600/minute")  # per API key; the contract's floor is 300
LOGIN_LIMIT = parse("10/minute")  # per e-mail address and per client address


@dataclass(frozen=True)
class Refusal:
    retry_after: int


def _async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


class RateLimiter:
    def __init__(self, storage_uri: str) -> None:
        options = {"implementation": "redispy"} if "redis" in storage_uri else {}
        self._storage = storage_from_string(_async_uri(storage_uri), **options)
        # A moving window is exact: no burst across a minute boundary gets more than the limit.
        self._strategy = MovingWindowRateLimiter(self._storage)

    async def hit(self, item: RateLimitItem, *identifiers: object) -> Refusal | None:
        """Count one request; a Refusal (with seconds to wait) when over the limit."""
        keys = [str(i) for i in identifiers]
        if await self._strategy.hit(item, *keys):
            return None
        stats = await self._strategy.get_window_stats(item, *keys)
        return Refusal(retry_after=max(1, math.ceil(stats.reset_time - time.time())))

    async def reset(self) -> None:
        await self._storage.reset()
