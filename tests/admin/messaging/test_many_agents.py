"""Many agents at once, as a send to a fleet wakes them: their inboxes are read together and their
state changes share the writer's transactions (docs/benchmarks.md, "Messages and commands"). Each
must still get exactly its own machine's items and its own answer, organisations apart."""

from __future__ import annotations

import asyncio
import secrets

import httpx

from tests.admin.messaging.conftest import make_tenant

AGENTS = 40


async def _wait_for_inbox(client: httpx.AsyncClient, key: str, machine_id: str) -> list[dict]:
    resp = await client.get(
        "/api/agent/inbox", params={"machine_id": machine_id, "wait": 20}, headers={"Authorization": f"Bearer {key}"}
    )
    assert resp.status_code == 200, resp.text
    return resp.json()["items"]


async def _post(client: httpx.AsyncClient, key: str, delivery_id: str, machine_id: str, state: str) -> httpx.Response:
    return await client.post(
        f"/api/agent/deliveries/{delivery_id}",
        json={"machine_id": machine_id, "state": state},
        headers={"Authorization": f"Bearer {key}"},
    )


async def _waiting_until_woken(server, tenants, machines) -> tuple[list, list]:
    """Every machine of both organisations waits on its inbox; one send per organisation wakes them."""
    limits = httpx.Limits(max_connections=4 * AGENTS)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        waits = [
            asyncio.ensure_future(_wait_for_inbox(client, tenant.org.api_key, m))
            for tenant in tenants
            for m in machines
        ]
        await asyncio.sleep(2.0)  # all of them waiting (the server answers a poll at once if it had items)
        first, second = tenants
        message_id = await asyncio.to_thread(first.message, machines, title="first organisation")
        command_id = await asyncio.to_thread(second.command, machines)
        inboxes = await asyncio.gather(*waits)
    return [message_id, command_id], inboxes


def test_a_send_wakes_every_waiting_agent_with_its_own_items_and_each_state_change_gets_its_answer(msg_server):
    first, second = make_tenant(msg_server), make_tenant(msg_server)
    machines = [f"many-{i:02d}-{secrets.token_hex(3)}" for i in range(AGENTS)]
    for tenant in (first, second):  # the same machine ids in both organisations
        for machine_id in machines:
            assert tenant.org.ping(machine_id).status_code == 200

    (message_id, command_id), inboxes = asyncio.run(_waiting_until_woken(msg_server, [first, second], machines))

    firsts, seconds = inboxes[:AGENTS], inboxes[AGENTS:]
    assert all(len(items) == 1 and items[0]["message"]["message_id"] == message_id for items in firsts)
    assert all(len(items) == 1 and items[0]["command"]["command_id"] == command_id for items in seconds)
    mine = [items[0]["delivery_id"] for items in firsts]
    theirs = [items[0]["delivery_id"] for items in seconds]
    assert len(set(mine + theirs)) == 2 * AGENTS  # one delivery per machine and organisation

    async def all_at_once() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=msg_server.url, timeout=60) as client:
            key = first.org.api_key
            posts = []
            for n, machine_id in enumerate(machines):
                posts.append(_post(client, key, mine[n], machine_id, "delivered"))
                posts.append(_post(client, key, mine[n], machine_id, "delivered"))  # a retried request
                posts.append(_post(client, key, theirs[n], machine_id, "delivered"))  # the other organisation's
                posts.append(_post(client, key, mine[(n + 1) % AGENTS], machine_id, "delivered"))  # another machine's
            return await asyncio.gather(*posts)

    answers = asyncio.run(all_at_once())
    for n in range(AGENTS):
        own, again, other_org, other_machine = answers[4 * n : 4 * n + 4]
        assert (own.status_code, own.json()) == (200, {"ok": True, "state": "delivered"})
        assert (again.status_code, again.json()) == (200, {"ok": True, "state": "delivered"})
        assert other_org.status_code == 404 and other_org.json() == {"error": "no such delivery for this machine"}
        assert other_machine.status_code == 404
    assert set(first.states("message", message_id).values()) == {"delivered"}
    assert set(second.states("command", command_id).values()) == {"queued"}  # nothing moved theirs
    # The same state posted for a delivery already further on is refused, not applied twice.
    assert first.post_state(mine[0], machines[0], "acknowledged").status_code == 200
    back = first.post_state(mine[0], machines[0], "delivered")
    assert back.status_code == 409 and back.json()["state"] == "acknowledged"
