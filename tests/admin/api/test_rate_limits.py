"""Rate limits: per client address for /api/config, per machine of an organisation for agents.

Each test uses its own client address (X-Forwarded-For, which the server trusts from 127.0.0.1) or
its own organisation, so filling a limit here never starves another test.
"""

from common.constants import PING_LIMIT_PER_MINUTE


def test_config_allows_100_a_minute_per_client_address(server, contract, new_address):
    client = server.http
    for n in range(100):
        resp = client.get("/api/config", headers={"X-Forwarded-For": new_address})
        assert resp.status_code == 200, f"request {n + 1} of 100 refused: {resp.status_code} {resp.text}"

    refused = client.get("/api/config", headers={"X-Forwarded-For": new_address})
    contract.rate_limited(refused)
    assert "FLEET_TTL_SECONDS" not in refused.json()

    # Another address is not affected, nor is the public status page.
    other = "192.0.2.{}".format(int(new_address.rsplit(".", 1)[1]))
    assert client.get("/api/config", headers={"X-Forwarded-For": other}).status_code == 200
    assert client.get("/api/status", headers={"X-Forwarded-For": new_address}).status_code == 200


def test_ping_limit_is_per_machine_not_per_address(server, contract, new_address):
    org, other_org = server.org(), server.org()
    office = {"X-Forwarded-For": new_address}
    for n in range(PING_LIMIT_PER_MINUTE):
        resp = org.ping("busy", headers=office)
        assert resp.status_code == 200, f"ping {n + 1} of {PING_LIMIT_PER_MINUTE} refused: {resp.text}"

    contract.rate_limited(org.ping("busy", headers=office))
    # Another machine of the same organisation behind the same address still gets through,
    assert org.ping("quiet", headers=office).status_code == 200
    # and so does a machine of another organisation that happens to have the same id.
    assert other_org.ping("busy", headers=office).status_code == 200


def test_a_whole_office_behind_one_address_is_not_limited(org, new_address):
    office = {"X-Forwarded-For": new_address}
    machines = 2 * PING_LIMIT_PER_MINUTE + 10
    for n in range(machines):
        resp = org.ping(f"desk-{n:03d}", headers=office)
        assert resp.status_code == 200, f"machine {n} refused: {resp.status_code} {resp.text}"
    assert org.fleet()["count"] == machines


def test_listing_allows_at_least_300_a_minute_per_key(org):
    for n in range(300):
        resp = org.get("/api/fleet", params={"limit": 1})
        assert resp.status_code == 200, f"listing {n + 1} of 300 refused: {resp.status_code}"


# Sharing limits between processes through Redis: tests/e2e/test_scale_out.py (PostgreSQL + Redis).
