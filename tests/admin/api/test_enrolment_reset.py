"""Resetting a machine's enrolment through the API (`POST /api/fleet/machine/enrolment/reset`,
admin keys) and `dashfleet-admin enrolment reset|list`: the same service the web UI's settings use.

Real server over HTTP, on SQLite and PostgreSQL (`server`), keys made with the real CLI. The web
UI's side (a viewer cannot reset) is tests/admin/ui/test_enrolment_settings.py.
"""

from __future__ import annotations

import pytest

from tests.admin.api.test_enrolment import machine_key

RESET = "/api/fleet/machine/enrolment/reset"


@pytest.fixture
def enrol_key(org) -> str:
    return org.server.make_key(org.name, "enroll")["api_key"]


@pytest.fixture
def admin_key(org) -> dict:
    return org.server.make_key(org.name, "admin")


def reset(org, key: str, machine_id: object):
    return org.post(RESET, params={"machine_id": machine_id}, key=key)


def live_machine_keys(org) -> list[str]:
    keys = org.server.cli_json("key", "list", "--org", org.name)["keys"]
    return [k["machine_id"] for k in keys if k["machine_id"] is not None and k["revoked_at"] is None]


def audit_actions(org, admin: str) -> list[dict]:
    resp = org.get("/api/audit", key=admin, params={"action": "machine.enrolment_reset"})
    assert resp.status_code == 200, resp.text
    return resp.json()["data"]


def test_an_admin_key_resets_an_enrolment_and_it_is_audited(org, enrol_key, admin_key, contract):
    key = machine_key(org, enrol_key, "pc-1", "hw-1")
    assert org.report("pc-1", key=key).status_code == 200
    before = org.machine("pc-1")

    resp = reset(org, admin_key["api_key"], "pc-1")
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"ok": True, "machine_id": "pc-1", "revoked_keys": 1}
    contract.unauthorized(org.report("pc-1", key=key))  # revoked at once
    assert org.machine("pc-1")["report"] == before["report"]  # the machine and its data stay
    assert live_machine_keys(org) == []
    # Any hardware may now take the id (a replaced computer).
    other = machine_key(org, enrol_key, "pc-1", "hw-new")
    assert org.report("pc-1", key=other).status_code == 200

    # Unknown: 404 (nothing written); known but never enrolled (an organisation key's): 200, nothing revoked.
    assert reset(org, admin_key["api_key"], "pc-legacy").status_code == 404
    assert org.report("pc-legacy").status_code == 200
    assert reset(org, admin_key["api_key"], "pc-legacy").json()["revoked_keys"] == 0

    entries = audit_actions(org, admin_key["api_key"])
    assert [e["target"] for e in entries] == ["machine pc-legacy", "machine pc-1"]
    assert entries[1]["actor"] == f"key {admin_key['key_id']}" and entries[1]["detail"] == {"revoked_keys": 1}


def test_the_route_is_in_the_openapi_schema(server):
    route = server.openapi()["paths"][RESET]["post"]
    assert "admin" in route["summary"] and {"200", "403", "404", "422"} <= set(route["responses"])


def test_keys_without_the_admin_scope_cannot_reset(org, enrol_key, contract):
    key = machine_key(org, enrol_key, "pc-1")
    read_agent = org.api_key  # the organisation's agent + read key
    read_only = org.server.make_key(org.name, "read")["api_key"]
    agent_only = org.server.make_key(org.name, "agent")["api_key"]
    for refused in (read_agent, read_only, agent_only, enrol_key, key):
        contract.error(reset(org, refused, "pc-1"), 403)
    contract.unauthorized(org.server.http.post(RESET, params={"machine_id": "pc-1"}))
    contract.unauthorized(reset(org, "api_" + "x" * 43, "pc-1"))
    assert org.report("pc-1", key=key).status_code == 200  # still enrolled
    assert live_machine_keys(org) == ["pc-1"]


def test_another_organisation_cannot_reset_or_learn_of_a_machine(server, contract):
    ours, theirs = server.org(), server.org()
    key = machine_key(ours, server.make_key(ours.name, "enroll")["api_key"], "pc-1")
    their_admin = server.make_key(theirs.name, "admin")["api_key"]
    unknown = contract.error(reset(theirs, their_admin, "pc-1"), 404)
    # The same answer as for an id nobody has: nothing tells that it exists elsewhere.
    assert contract.error(reset(theirs, their_admin, "pc-nobody"), 404).keys() == unknown.keys()
    assert ours.report("pc-1", key=key).status_code == 200
    assert live_machine_keys(ours) == ["pc-1"]
    assert audit_actions(theirs, their_admin) == []
    assert audit_actions(ours, server.make_key(ours.name, "admin")["api_key"]) == []


def test_bad_machine_ids_get_422_and_change_nothing(org, enrol_key, admin_key, contract):
    key = machine_key(org, enrol_key, "pc-1")
    for bad in ("", "m" * 201, "pc\x00"):
        contract.error(reset(org, admin_key["api_key"], bad), 422)
    contract.error(org.post(RESET, key=admin_key["api_key"]), 422)  # no machine id at all
    assert org.report("pc-1", key=key).status_code == 200
    assert audit_actions(org, admin_key["api_key"]) == []


def test_the_cli_lists_and_resets_enrolments(org, enrol_key, admin_key, contract):
    key = machine_key(org, enrol_key, "pc <1>", "hw-1")
    listed = org.server.cli_json("enrolment", "list", "--org", org.name)["machines"]
    assert [(m["machine_id"], m["hardware_id"]) for m in listed] == [("pc <1>", "hw-1")]
    assert key not in str(listed) and key[:12] == listed[0]["key_prefix"]  # never the key itself

    done = org.server.cli_json("enrolment", "reset", "--org", org.name, "pc <1>")
    assert done == {"machine_id": "pc <1>", "revoked_keys": 1}
    contract.unauthorized(org.report("pc <1>", key=key))
    assert org.server.cli_json("enrolment", "list", "--org", org.name)["machines"] == []
    entry = audit_actions(org, admin_key["api_key"])[0]
    assert entry["actor"].startswith("cli ") and entry["target"] == "machine pc <1>"


def test_the_cli_refuses_bad_input_and_changes_nothing(server, org, enrol_key, contract):
    key = machine_key(org, enrol_key, "pc-1")
    other = server.org()
    cases = (
        (["--org", org.name, "pc-nobody"], "pc-nobody"),
        (["--org", other.name, "pc-1"], "pc-1"),  # another organisation's machine is unknown there
        (["--org", "no-such-org-x", "pc-1"], "no-such-org-x"),
        (["--org", org.name, ""], "machine id"),
        (["--org", org.name, "m" * 201], "machine id"),
        (["pc-1"], "--org"),
    )
    for args, said in cases:
        done = server.cli("enrolment", "reset", *args)
        assert done.returncode != 0 and said in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
    assert org.report("pc-1", key=key).status_code == 200
    assert live_machine_keys(org) == ["pc-1"]
    assert audit_actions(org, server.make_key(org.name, "admin")["api_key"]) == []
