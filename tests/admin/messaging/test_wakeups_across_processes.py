"""Two server processes of one deployment: an agent waits on one, an admin sends through the other,
and the held request returns with the item long before its wait ends (PostgreSQL LISTEN/NOTIFY, or
Redis pub/sub when the processes share a SQLite file and Redis). Without a shared channel it would
wait until its poll ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.admin.messaging.conftest import FLAGS_ON, Tenant, make_tenant

WAIT = 20


def _wait_and_send(tenant_a: Tenant, tenant_b: Tenant) -> float:
    """An agent waits on process B; a message is sent through process A. Seconds it took."""
    (desk,) = tenant_a.machines("desk")
    tenant_b.inbox(desk)  # B has answered this machine once (its caches are warm)
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(tenant_b.inbox, desk, WAIT)
        time.sleep(1.5)  # the request is held on B
        assert not waiting.done()
        started = time.monotonic()
        message_id = tenant_a.message([desk])
        items = waiting.result(timeout=WAIT + 5)["items"]
        took = time.monotonic() - started
    assert [i["message"]["message_id"] for i in items] == [message_id]
    return took


def _node(server_factory, shared: dict[str, str]):
    node = server_factory.prepare("sqlite", **shared)
    return node.start()


@pytest.mark.postgres
def test_postgres_notify_wakes_an_agent_waiting_on_another_process(server_factory, postgres):
    shared = {"database_url": postgres.create(), "storage_secret": "w" * 40, **FLAGS_ON}
    node_a, node_b = _node(server_factory, shared), _node(server_factory, shared)
    tenant_a = make_tenant(node_a)
    tenant_b = Tenant(tenant_a.org.via(node_b), tenant_a.admin_key, tenant_a.read_key)
    took = _wait_and_send(tenant_a, tenant_b)
    assert took < WAIT / 2, f"the wake-up did not cross processes (returned after {took:.1f} s)"


@pytest.mark.redis
def test_redis_pubsub_wakes_an_agent_waiting_on_another_process(server_factory, redis_url, tmp_path):
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    shared = {"database_url": database, "rate_limit_storage": redis_url, "storage_secret": "w" * 40, **FLAGS_ON}
    node_a = _node(server_factory, shared)
    node_b = _node(server_factory, shared)
    tenant_a = make_tenant(node_a)
    tenant_b = Tenant(tenant_a.org.via(node_b), tenant_a.admin_key, tenant_a.read_key)
    took = _wait_and_send(tenant_a, tenant_b)
    assert took < WAIT / 2, f"the wake-up did not cross processes (returned after {took:.1f} s)"


@pytest.mark.redis
async def test_redis_wake_ups_stay_within_their_database(redis_url):
    """Redis's pub/sub ignores database numbers: two deployments sharing one Redis on databases of
    their own must not wake each other's agents (the channel names the database)."""
    from admin.services.wakeups import Wakeups

    base, _, db = redis_url.rpartition("/")
    other_db = f"{base}/{(int(db) + 1) % 16}"
    sender, same, other = Wakeups(redis_url=redis_url), Wakeups(redis_url=redis_url), Wakeups(redis_url=other_db)
    for node in (sender, same, other):
        await node.start()
    try:
        with same.waiting(1, "desk") as same_event, other.waiting(1, "desk") as other_event:
            for _ in range(50):  # the listeners subscribe in the background: send until one hears
                await sender.wake(1, ["desk"])
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(same_event.wait(), 0.1)
                    break
            assert same_event.is_set(), "a wake-up did not reach a process on the same database"
            await sender.wake(1, ["desk"])
            await asyncio.sleep(0.5)  # as long again as the same-database process needed, and more
            assert not other_event.is_set(), "a wake-up crossed to another Redis database"
    finally:
        for node in (sender, same, other):
            await node.stop()
