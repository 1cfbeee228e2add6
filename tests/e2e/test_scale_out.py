"""Scale-out: several server processes on one PostgreSQL database and one Redis (docs/deploy.md).

Two real `dashfleet-admin serve` processes on different ports, as two upstreams behind the proxy:
the per-machine ping limit counts the pings both receive, a report sent to one is listed by the
other, and a machine that falls silent expires once and is named in `expired` once, although
both processes run the expiry job and both answer listings.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from common.constants import PING_LIMIT_PER_MINUTE

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def deployment(server_factory, postgres, redis_url, **settings) -> dict[str, str]:
    """What every process of one deployment shares: database, Redis, session secret."""
    return {
        "database_url": postgres.create(),
        "rate_limit_storage": redis_url,
        "storage_secret": "scale-out-test-secret-" + "x" * 24,
        **settings,
    }


def start_node(server_factory, shared: dict[str, str]):
    """One server process of the deployment, on a port of its own."""
    # The shared database is given explicitly; conftest's prepare() accepts an explicit
    # DASHFLEET_DATABASE_URL only under the "sqlite" label today, hence the relabelling.
    node = server_factory.prepare("sqlite", **shared)
    node.backend = "postgres"
    return node.start()


def test_two_processes_share_limits_and_the_fleet(server_factory, postgres, redis_url, contract):
    shared = deployment(server_factory, postgres, redis_url)
    node_a, node_b = start_node(server_factory, shared), start_node(server_factory, shared)
    org_a = node_a.org()
    org_b = org_a.via(node_b)

    # A report sent to one process is listed by the other, exactly as sent.
    assert org_a.report("desk-a", contract.sample_report(cpu_percent=11.5)).status_code == 200
    assert org_b.report("desk-b", contract.sample_report(cpu_percent=22.5)).status_code == 200
    for org in (org_a, org_b):
        listing = org.fleet()
        assert [m["machine_id"] for m in listing["data"]] == ["desk-a", "desk-b"]
        assert {m["machine_id"]: m["report"]["cpu_percent"] for m in listing["data"]} == {
            "desk-a": 11.5,
            "desk-b": 22.5,
        }
    one = org_b.get("/api/fleet/machine", params={"machine_id": "desk-a"})
    assert one.status_code == 200 and one.json()["report"]["cpu_percent"] == 11.5

    # The per-machine ping limit holds across both: each process sees half of the pings.
    for n in range(PING_LIMIT_PER_MINUTE):
        resp = (org_a if n % 2 else org_b).ping("roaming")
        assert resp.status_code == 200, f"ping {n + 1} of {PING_LIMIT_PER_MINUTE} refused: {resp.text}"
    contract.rate_limited(org_a.ping("roaming"))
    contract.rate_limited(org_b.ping("roaming"))
    # Only that machine: its neighbours still get through on either process.
    assert org_a.ping("desk-a").status_code == 200
    assert org_b.ping("desk-b").status_code == 200


def test_a_silent_machine_expires_once_across_processes(server_factory, postgres, redis_url, contract):
    ttl = 2
    # Both processes run the expiry job often, and both answer listings: every path races.
    shared = deployment(
        server_factory,
        postgres,
        redis_url,
        fleet_ttl_seconds=ttl,
        offline_after_seconds=1,
        maintenance_interval_seconds=0.2,
    )
    node_a, node_b = start_node(server_factory, shared), start_node(server_factory, shared)
    org_a = node_a.org()
    org_b = org_a.via(node_b)
    silent = ["silent-1", "silent-2", "silent-3"]
    for n, machine_id in enumerate(silent):
        org = org_a if n % 2 else org_b
        assert org.report(machine_id, contract.sample_report()).status_code == 200

    # Past the TTL by the server's clock, whoever removes them (job or listing, on either node).
    time.sleep(ttl + 1)
    with ThreadPoolExecutor(max_workers=6) as pool:
        listings = list(pool.map(lambda org: org.fleet(), [org_a, org_b] * 3))
    listings += [org_a.fleet(), org_b.fleet()]

    named = [machine_id for listing in listings for machine_id in listing["expired"]]
    assert sorted(named) == silent, f"each silent machine must be named exactly once: {named}"
    for listing in listings:
        assert not set(silent) & {m["machine_id"] for m in listing["data"]}
    assert org_a.fleet() == org_b.fleet() == {"count": 0, "expired": [], "data": []}
