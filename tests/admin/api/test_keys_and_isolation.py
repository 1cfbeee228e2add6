"""Keys, scopes, revocation and organisation isolation on every protected endpoint."""

import secrets

import pytest

# Every endpoint that needs a key, with a request that would succeed with the right one.
PROTECTED = [
    ("GET", "/api/fleet", {}),
    ("GET", "/api/fleet/public", {}),
    (
        "POST",
        "/api/fleet/report",
        {"json": {"machine_id": "intruder", "report": {"cpu_percent": 1, "ram_percent": 1, "disk_percent": 1}}},
    ),
    ("POST", "/api/fleet/ping", {"json": {"machine_id": "intruder"}}),
    ("GET", "/api/fleet/machine", {"params": {"machine_id": "pc-1"}}),
    ("GET", "/api/fleet/machine/history", {"params": {"machine_id": "pc-1"}}),
    ("DELETE", "/api/fleet/machine", {"params": {"machine_id": "pc-1"}}),
    ("POST", "/api/agent/enroll", {"json": {"machine_id": "intruder", "hardware_id": "hw"}}),
]
ENDPOINT_IDS = [f"{method} {path}" for method, path, _ in PROTECTED]


@pytest.fixture(scope="module")
def victim(server):
    """An organisation with one machine, which nothing in this module may change."""
    org = server.org()
    assert org.report("pc-1").status_code == 200
    before = org.fleet()
    yield org
    assert org.fleet() == before, "a refused request changed the organisation's fleet"


def bad_authorizations(valid_key: str) -> dict[str, str | None]:
    unknown = "api_" + secrets.token_urlsafe(32)
    tampered = valid_key[:-1] + ("A" if valid_key[-1] != "A" else "B")
    return {
        "missing": None,
        "empty": "",
        "scheme only": "Bearer",
        "basic auth": "Basic dXNlcjpwYXNz",
        "valid key, other scheme": f"Token {valid_key}",
        "valid key, no scheme": valid_key,
        "valid key twice": f"Bearer {valid_key} {valid_key}",
        "too short": "Bearer api_abc",
        "no prefix": "Bearer " + secrets.token_urlsafe(32),
        "unknown": f"Bearer {unknown}",
        "tampered": f"Bearer {tampered}",
        "sql": "Bearer api_' OR '1'='1",
    }


@pytest.mark.parametrize("method,path,kwargs", PROTECTED, ids=ENDPOINT_IDS)
def test_missing_malformed_or_unknown_keys_get_401(victim, contract, method, path, kwargs):
    for label, authorization in bad_authorizations(victim.api_key).items():
        headers = {} if authorization is None else {"Authorization": authorization}
        resp = victim.server.http.request(method, path, headers=headers, **kwargs)
        assert resp.status_code == 401, f"{label}: {resp.status_code} {resp.text[:300]}"
        contract.unauthorized(resp)


def test_public_listing_needs_a_key_and_then_equals_the_listing(victim, contract):
    resp = victim.server.http.get("/api/fleet/public")
    contract.unauthorized(resp)
    assert "pc-1" not in resp.text

    public = victim.get("/api/fleet/public")
    assert public.status_code == 200
    assert public.json() == victim.fleet()
    assert public.json()["data"][0]["machine_id"] == "pc-1"
    assert victim.get("/api/fleet/public", params={"q": "nothing"}).json()["count"] == 0


def test_agent_key_reports_but_cannot_read(server, contract):
    org = server.org()
    agent_key = server.make_key(org.name, "agent")
    assert agent_key["scopes"] == ["agent"]
    key = agent_key["api_key"]
    assert org.report("pc-1", key=key).status_code == 200
    assert org.ping("pc-2", key=key).status_code == 200
    for path in ("/api/fleet", "/api/fleet/public"):
        body = contract.error(org.get(path, key=key), 403)
        assert "data" not in body
    contract.error(org.get("/api/fleet/machine", params={"machine_id": "pc-1"}, key=key), 403)
    assert org.machine_ids() == ["pc-1", "pc-2"]


def test_read_key_lists_but_cannot_report(server, contract):
    org = server.org()
    read_key = server.make_key(org.name, "read")
    assert read_key["scopes"] == ["read"]
    key = read_key["api_key"]
    assert org.report("pc-1").status_code == 200
    contract.error(org.report("pc-2", key=key), 403)
    contract.error(org.ping("pc-3", key=key), 403)
    contract.error(org.report("pc-1", {"cpu_percent": 99, "ram_percent": 99, "disk_percent": 99}, key=key), 403)
    listing = org.get("/api/fleet", key=key).json()
    assert [m["machine_id"] for m in listing["data"]] == ["pc-1"]
    assert listing["data"][0]["report"]["cpu_percent"] != 99


def test_a_revoked_key_is_refused_at_once(server, victim, contract):
    org = server.org()
    spare = server.make_key(org.name, "agent", "read")
    # Revoking it in the name of another organisation fails and does nothing (the key was never
    # used before, so no cache can hide a wrong revocation).
    wrong = server.cli("key", "revoke", "--org", victim.name, str(spare["key_id"]))
    assert wrong.returncode != 0 and "Traceback" not in wrong.stderr
    assert org.report("pc-1", key=spare["api_key"]).status_code == 200
    assert org.get("/api/fleet", key=spare["api_key"]).status_code == 200  # now cached, if cached

    revoked = server.cli("key", "revoke", "--org", org.name, str(spare["key_id"]))
    assert revoked.returncode == 0, revoked.stderr

    # The command returns once every running server refuses the key: no waiting here.
    contract.unauthorized(org.get("/api/fleet", key=spare["api_key"]))
    contract.unauthorized(org.report("pc-2", key=spare["api_key"]))
    contract.unauthorized(org.ping("pc-3", key=spare["api_key"]))
    # The organisation's other key is untouched.
    assert org.machine_ids() == ["pc-1"]


def test_organisations_never_see_or_change_each_other(server, contract):
    org_a, org_b = server.org(), server.org()
    report_a = contract.sample_report(cpu_percent=11, system={"os": "Linux", "hostname": "a-host"})
    assert org_a.report("shared-id", report_a).status_code == 200
    assert org_a.report("a-only").status_code == 200

    # B sees nothing of A, by listing, filter, search, one machine or history.
    assert org_b.fleet() == {"count": 0, "expired": [], "data": []}
    assert org_b.fleet(q="a-")["count"] == 0 and org_b.fleet(os="linux")["count"] == 0
    assert org_b.get("/api/fleet/public").json()["count"] == 0
    for path in ("/api/fleet/machine", "/api/fleet/machine/history"):
        contract.error(org_b.get(path, params={"machine_id": "a-only"}), 404)

    # The same machine id in B is B's own machine; A's stays as it was.
    assert org_b.report("shared-id", contract.sample_report(cpu_percent=99)).status_code == 200
    assert org_b.ping("shared-id", hardware_id="b-hw").status_code == 200
    assert org_a.machine("shared-id")["report"] == report_a
    assert org_b.machine("shared-id")["report"]["cpu_percent"] == 99
    assert org_a.machine("shared-id")["org_id"] != org_b.machine("shared-id")["org_id"]
    assert org_a.fleet()["count"] == 2 and org_b.fleet()["count"] == 1

    # Even an admin key of B cannot delete A's machine.
    admin_b = server.make_key(org_b.name, "admin")["api_key"]
    contract.error(org_b.request("DELETE", "/api/fleet/machine", params={"machine_id": "a-only"}, key=admin_b), 404)
    assert org_a.machine_ids() == ["a-only", "shared-id"]
    history = org_a.get("/api/fleet/machine/history", params={"machine_id": "shared-id"}).json()
    assert len(history["samples"]) == 1
