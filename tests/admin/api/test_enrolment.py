"""Enrolment: an enrol key buys each machine a key of its own, which speaks only for that machine.

Real server over HTTP, on SQLite and PostgreSQL (`server`), keys made with the real CLI.
"""

from __future__ import annotations

import pytest

ENROLL = "/api/agent/enroll"


def enrol(org, enrol_key: str, machine_id: object, hardware_id: object = "hw-1"):
    return org.post(ENROLL, json={"machine_id": machine_id, "hardware_id": hardware_id}, key=enrol_key)


@pytest.fixture
def enrol_key(org) -> str:
    made = org.server.make_key(org.name, "enroll")
    assert made["scopes"] == ["enroll"]
    return made["api_key"]


def machine_key(org, enrol_key: str, machine_id: str, hardware_id: str = "hw-1") -> str:
    resp = enrol(org, enrol_key, machine_id, hardware_id)
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert body["machine_id"] == machine_id and body["agent_key"].startswith("api_") and body["key_id"] > 0
    return body["agent_key"]


def test_an_enrolled_machine_speaks_for_itself_only(org, enrol_key, contract):
    key = machine_key(org, enrol_key, "pc-1")
    assert org.machine_ids() == ["pc-1"]  # enrolment is the machine's first contact
    assert org.machine("pc-1")["hardware_id"] == "hw-1"

    assert org.report("pc-1", key=key).status_code == 200
    assert org.ping("pc-1", key=key).status_code == 200
    # Another machine id, existing or new: 403, and nothing stored for it.
    assert org.report("pc-2").status_code == 200  # made by the organisation key
    before = org.machine("pc-2")
    for machine_id in ("pc-2", "pc-new", "PC-1", "pc-1 "):
        body = contract.error(org.report(machine_id, contract.sample_report(cpu_percent=99), key=key), 403)
        assert "machine" in body["error"]
        contract.error(org.ping(machine_id, key=key), 403)
    assert org.machine_ids() == ["pc-1", "pc-2"]
    assert org.machine("pc-2") == {**before, "status": org.machine("pc-2")["status"]}
    # Its scope is `agent` alone: it reads nothing, deletes nothing, enrols nothing.
    contract.error(org.get("/api/fleet", key=key), 403)
    contract.error(org.get("/api/fleet/machine", params={"machine_id": "pc-1"}, key=key), 403)
    contract.error(org.request("DELETE", "/api/fleet/machine", params={"machine_id": "pc-1"}, key=key), 403)
    contract.error(enrol(org, key, "pc-3"), 403)
    assert org.machine_ids() == ["pc-1", "pc-2"]


def test_the_enrol_key_only_enrols(org, enrol_key, contract):
    contract.error(org.report("pc-1", key=enrol_key), 403)
    contract.error(org.ping("pc-1", key=enrol_key), 403)
    contract.error(org.get("/api/fleet", key=enrol_key), 403)
    contract.error(org.get("/api/fleet/machine/history", params={"machine_id": "pc-1"}, key=enrol_key), 403)
    contract.error(org.request("DELETE", "/api/fleet/machine", params={"machine_id": "pc-1"}, key=enrol_key), 403)
    org.assert_empty()


def test_keys_without_the_enroll_scope_cannot_enrol(org, contract):
    admin = org.server.make_key(org.name, "admin", "read", "agent")["api_key"]
    for key in (org.api_key, admin):
        contract.error(enrol(org, key, "pc-1"), 403)
    contract.unauthorized(org.server.http.post(ENROLL, json={"machine_id": "pc-1", "hardware_id": "hw"}))
    org.assert_empty()


def test_an_enroll_key_has_no_other_scope(org):
    done = org.server.cli("key", "create", "--org", org.name, "--scope", "enroll", "--scope", "agent")
    assert done.returncode != 0 and "enroll" in done.stderr and "Traceback" not in done.stderr
    keys = org.server.cli_json("key", "list", "--org", org.name)["keys"]
    assert [k["scopes"] for k in keys] == [["agent", "read"]]  # nothing was made


def test_a_takeover_is_refused_and_changes_nothing(org, enrol_key, contract):
    key = machine_key(org, enrol_key, "pc-1", "hw-1")
    assert org.report("pc-1", key=key).status_code == 200
    before = org.machine("pc-1")
    body = contract.error(enrol(org, enrol_key, "pc-1", "hw-other"), 409)
    assert "hardware" in body["error"]
    assert org.report("pc-1", key=key).status_code == 200  # the rightful key still works
    assert org.machine("pc-1")["hardware_id"] == before["hardware_id"] == "hw-1"
    keys = org.server.cli_json("key", "list", "--org", org.name)["keys"]
    assert [k["machine_id"] for k in keys if k["revoked_at"] is None] == [None, None, "pc-1"]


def test_a_reinstall_gets_a_new_key_and_the_old_one_is_revoked(org, enrol_key, contract):
    old = machine_key(org, enrol_key, "pc-1", "hw-1")
    assert org.report("pc-1", key=old).status_code == 200
    new = machine_key(org, enrol_key, "pc-1", "hw-1")
    assert new != old
    contract.unauthorized(org.report("pc-1", key=old))
    contract.unauthorized(org.ping("pc-1", key=old))
    assert org.report("pc-1", key=new).status_code == 200


def test_deleting_a_machine_revokes_its_keys_and_frees_its_id(org, enrol_key, contract):
    key = machine_key(org, enrol_key, "pc-1", "hw-1")
    admin = org.server.make_key(org.name, "admin")["api_key"]
    assert org.request("DELETE", "/api/fleet/machine", params={"machine_id": "pc-1"}, key=admin).status_code == 200
    contract.unauthorized(org.report("pc-1", key=key))
    contract.unauthorized(org.ping("pc-1", key=key))
    assert "pc-1" not in org.machine_ids()
    # Other hardware may now take the id.
    other = machine_key(org, enrol_key, "pc-1", "hw-2")
    assert org.report("pc-1", key=other).status_code == 200


def test_revoking_the_enrol_key_leaves_enrolled_machines_working(org, contract):
    made = org.server.make_key(org.name, "enroll")
    key = machine_key(org, made["api_key"], "pc-1")
    revoked = org.server.cli("key", "revoke", "--org", org.name, str(made["key_id"]))
    assert revoked.returncode == 0, revoked.stderr
    contract.unauthorized(enrol(org, made["api_key"], "pc-2"))
    assert org.report("pc-1", key=key).status_code == 200
    assert org.ping("pc-1", key=key).status_code == 200
    # A new enrol key (a rotation) enrols the next machines; the first keeps its key.
    rotated = org.server.make_key(org.name, "enroll")["api_key"]
    second = machine_key(org, rotated, "pc-2")
    assert org.report("pc-2", key=second).status_code == 200
    assert org.report("pc-1", key=key).status_code == 200


def test_organisations_enrol_apart(server, contract):
    org_a, org_b = server.org(), server.org()
    key_a = machine_key(org_a, server.make_key(org_a.name, "enroll")["api_key"], "shared", "hw-a")
    # The same machine id and hardware in B is B's own machine: no 409, no effect on A.
    key_b = machine_key(org_b, server.make_key(org_b.name, "enroll")["api_key"], "shared", "hw-b")
    assert org_a.report("shared", contract.sample_report(cpu_percent=11), key=key_a).status_code == 200
    assert org_b.report("shared", contract.sample_report(cpu_percent=22), key=key_b).status_code == 200
    assert org_a.machine("shared")["report"]["cpu_percent"] == 11
    assert org_b.machine("shared")["report"]["cpu_percent"] == 22
    assert org_a.machine("shared")["hardware_id"] == "hw-a"


BAD_BODIES = {
    "no hardware id": {"machine_id": "pc-1"},
    "blank hardware id": {"machine_id": "pc-1", "hardware_id": "  "},
    "empty hardware id": {"machine_id": "pc-1", "hardware_id": ""},
    "hardware id not a string": {"machine_id": "pc-1", "hardware_id": 42},
    "hardware id too long": {"machine_id": "pc-1", "hardware_id": "h" * 257},
    "hardware id with NUL": {"machine_id": "pc-1", "hardware_id": "h\x00w"},
    "no machine id": {"hardware_id": "hw"},
    "blank machine id": {"machine_id": " ", "hardware_id": "hw"},
    "machine id too long": {"machine_id": "m" * 201, "hardware_id": "hw"},
    "machine id not a string": {"machine_id": ["pc"], "hardware_id": "hw"},
    "a list": ["pc-1", "hw"],
}


def test_bad_enrolments_get_4xx_and_change_nothing(org, enrol_key, contract):
    for label, body in BAD_BODIES.items():
        resp = org.post(ENROLL, json=body, key=enrol_key)
        contract.error(resp, 422)
        assert resp.status_code == 422, label
    for raw in (b"not json", b'{"machine_id": "pc-1", "hardware_id": ', b""):
        resp = org.post(ENROLL, content=raw, key=enrol_key, headers={"Content-Type": "application/json"})
        contract.error(resp, 400, 422)
    org.assert_empty()
    keys = org.server.cli_json("key", "list", "--org", org.name)["keys"]
    assert all(k["machine_id"] is None for k in keys)


def test_an_organisation_can_refuse_unbound_keys(org, enrol_key, contract):
    key = machine_key(org, enrol_key, "pc-1")
    assert org.report("pc-legacy").status_code == 200  # an upgrading agent with the organisation key
    shown = org.server.cli_json("org", "set", org.name)
    assert shown["require_enrolment"] is False and shown["machine_quota"] is None

    assert org.server.cli_json("org", "set", org.name, "--require-enrolment")["require_enrolment"] is True
    before = org.machine("pc-legacy")
    for resp in (org.report("pc-legacy", contract.sample_report(cpu_percent=99)), org.ping("pc-legacy")):
        body = contract.error(resp, 403)
        assert "enrol" in body["error"]
    assert org.machine("pc-legacy")["report"] == before["report"]
    assert org.report("pc-1", key=key).status_code == 200  # enrolled machines carry on
    assert org.get("/api/fleet").status_code == 200  # reading is not refused

    assert org.server.cli_json("org", "set", org.name, "--no-require-enrolment")["require_enrolment"] is False
    assert org.report("pc-legacy").status_code == 200


def test_org_set_refuses_bad_values_and_unknown_organisations(org):
    for args in (["--machine-quota", "0"], ["--machine-quota", "many"], ["--machine-quota", "-5"]):
        done = org.server.cli("org", "set", org.name, *args)
        assert done.returncode != 0 and "Traceback" not in done.stderr and done.stderr.strip(), args
    done = org.server.cli("org", "set", "no-such-org-x", "--require-enrolment")
    assert done.returncode != 0 and "no-such-org-x" in done.stderr
    assert org.server.cli_json("org", "set", org.name) == {
        "org_id": org.server.cli_json("org", "set", org.name)["org_id"],
        "name": org.name,
        "require_enrolment": False,
        "machine_quota": None,
    }
