"""Wake-ups for long-polling agents: hints, never the truth (the rows are).

An agent waiting on its inbox holds an asyncio.Event here; creating an item for its machine sets
it, and the agent's request reads the database again. With several server processes, a send is
also published to the others through the engine the deployment already runs: PostgreSQL
LISTEN/NOTIFY when the database is PostgreSQL, else Redis pub/sub when the rate limits live in
Redis. Alone on SQLite there is nothing to publish to. A wake-up lost on the way (a listener
reconnecting) only delays a delivery until the agent's next poll; nothing ever loops over the
database waiting for rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from typing import Any

log = logging.getLogger(__name__)

CHANNEL = "dashfleet_inbox"
# PostgreSQL refuses NOTIFY payloads of 8,000 bytes and more: beyond this, the whole organisation's
# waiting agents are woken (each reads its own inbox and, finding nothing, waits again).
MAX_PAYLOAD_BYTES = 7000
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0)

Key = tuple[int, str]


class Wakeups:
    def __init__(self, *, postgres_url: str | None = None, redis_url: str | None = None) -> None:
        self._waiters: dict[Key, set[asyncio.Event]] = {}
        self._by_org: dict[int, int] = {}  # org -> how many waiters, to wake an org without a scan
        self._postgres_url = postgres_url
        self._redis_url = redis_url
        self._origin = secrets.token_hex(8)  # this process's own publications come back: skip them
        # Redis's pub/sub ignores database numbers: deployments sharing one Redis on databases of
        # their own (production and staging, say) would wake each other. The channel names the
        # database. (PostgreSQL's NOTIFY is per database already.)
        self._redis_channel = f"{CHANNEL}:{_redis_db(redis_url)}" if redis_url else CHANNEL
        self._listener: asyncio.Task[None] | None = None
        self._publisher: Any = None
        # Called with the organisation of every wake-up received from another process (the
        # messaging service drops what it cached about that organisation's queue).
        self.on_wake: Callable[[int], None] | None = None

    @property
    def shared(self) -> str:
        """How wake-ups reach other server processes: 'postgres', 'redis' or 'none'."""
        return "postgres" if self._postgres_url else "redis" if self._redis_url else "none"

    # -- waiting (one request) ------------------------------------------------------------------
    @contextlib.contextmanager
    def waiting(self, org_id: int, machine_id: str) -> Iterator[asyncio.Event]:
        """An event set when something may have arrived for the machine; registered before the
        caller reads the inbox, so an item created in between is never missed."""
        event = asyncio.Event()
        key = (org_id, machine_id)
        self._waiters.setdefault(key, set()).add(event)
        self._by_org[org_id] = self._by_org.get(org_id, 0) + 1
        try:
            yield event
        finally:
            events = self._waiters.get(key)
            if events is not None:
                events.discard(event)
                if not events:
                    del self._waiters[key]
            left = self._by_org[org_id] - 1
            if left:
                self._by_org[org_id] = left
            else:
                del self._by_org[org_id]

    @property
    def waiting_count(self) -> int:
        return sum(self._by_org.values())

    # -- waking ---------------------------------------------------------------------------------
    def wake_local(self, org_id: int, machine_ids: Iterable[str] | None) -> int:
        """Set the events of this process's waiters for these machines (None: the whole
        organisation). Returns how many were woken."""
        if org_id not in self._by_org:
            return 0
        if machine_ids is None:
            keys = [key for key in self._waiters if key[0] == org_id]
        else:
            keys = [(org_id, m) for m in machine_ids if (org_id, m) in self._waiters]
        woken = 0
        for key in keys:
            for event in self._waiters.get(key, ()):
                event.set()
                woken += 1
        return woken

    async def wake(self, org_id: int, machine_ids: Iterable[str] | None) -> None:
        """Wake the waiters for these machines here and in every other server process."""
        ids = None if machine_ids is None else list(machine_ids)
        self.wake_local(org_id, ids)
        if self.shared == "none":
            return
        payload = json.dumps({"origin": self._origin, "org": org_id, "machines": ids}, separators=(",", ":"))
        if len(payload.encode()) > MAX_PAYLOAD_BYTES:
            payload = json.dumps({"origin": self._origin, "org": org_id, "machines": None})
        try:
            await self._publish(payload)
        except Exception:
            log.warning("could not publish a wake-up to the other server processes", exc_info=True)

    def _received(self, payload: str) -> None:
        try:
            data = json.loads(payload)
            if data.get("origin") == self._origin:
                return
            org_id = int(data["org"])
            machines = data.get("machines")
            if self.on_wake is not None:
                self.on_wake(org_id)
            self.wake_local(org_id, None if machines is None else [str(m) for m in machines])
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed wake-up: %.200s", payload)

    # -- across processes ----------------------------------------------------------------------
    async def start(self) -> None:
        if self.shared != "none":
            self._listener = asyncio.get_running_loop().create_task(self._listen_forever(), name="dashfleet-wakeups")

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._publisher is not None:
            with contextlib.suppress(Exception):
                await self._publisher.close() if self.shared == "postgres" else await self._publisher.aclose()
            self._publisher = None

    async def _publish(self, payload: str) -> None:
        if self.shared == "postgres":
            import psycopg

            assert self._postgres_url is not None  # shared == "postgres" says so
            if self._publisher is None or self._publisher.closed:
                self._publisher = await psycopg.AsyncConnection.connect(self._postgres_url, autocommit=True)
            try:
                await self._publisher.execute("SELECT pg_notify(%s, %s)", (CHANNEL, payload))
            except psycopg.OperationalError:
                self._publisher = None  # reconnect next time
                raise
        else:
            import redis.asyncio as redis

            assert self._redis_url is not None  # shared == "redis" says so
            if self._publisher is None:
                self._publisher = redis.Redis.from_url(self._redis_url)
            await self._publisher.publish(self._redis_channel, payload)

    async def _listen_forever(self) -> None:
        failures = 0
        while True:
            try:
                if self.shared == "postgres":
                    await self._listen_postgres()
                else:
                    await self._listen_redis()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception:
                delay = RECONNECT_SECONDS[min(failures, len(RECONNECT_SECONDS) - 1)]
                failures += 1
                log.warning("wake-up listener lost its connection; reconnecting in %.0f s", delay, exc_info=True)
                await asyncio.sleep(delay)

    async def _listen_postgres(self) -> None:
        import psycopg

        assert self._postgres_url is not None
        async with await psycopg.AsyncConnection.connect(self._postgres_url, autocommit=True) as conn:
            await conn.execute(f"LISTEN {CHANNEL}")
            async for notice in conn.notifies():
                self._received(notice.payload)

    async def _listen_redis(self) -> None:
        import redis.asyncio as redis

        assert self._redis_url is not None
        client = redis.Redis.from_url(self._redis_url)
        try:
            async with client.pubsub() as pubsub:
                await pubsub.subscribe(self._redis_channel)
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        data = message["data"]
                        self._received(data.decode() if isinstance(data, bytes) else str(data))
        finally:
            await client.aclose()


def _redis_db(redis_url: str) -> int:
    """The database number a redis:// URL names (its path or `?db=`), 0 when it names none."""
    from redis.connection import parse_url

    return int(parse_url(redis_url).get("db", 0))  # type: ignore[no-untyped-call]


def libpq_url(sqlalchemy_url: str) -> str | None:
    """The database URL as psycopg takes it, when the database is PostgreSQL."""
    if not sqlalchemy_url.startswith("postgresql"):
        return None
    scheme, _, rest = sqlalchemy_url.partition("://")
    return f"postgresql://{rest}"
