"""The audit log on a real server: entries written with each change (CLI and API), read through
GET /api/audit (admin keys of the organisation only), append-only, and verified by its hash chain."""

from __future__ import annotations

import sqlite3

import pytest

from tests.helpers.api import bearer


def audit(org, admin_key: str, **params: object) -> dict:
    resp = org.get("/api/audit", key=admin_key, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_cli_and_api_changes_are_logged_newest_first(server, org):
    admin_key = server.make_key(org.name, "admin")  # the CLI: logged as "cli <os user>"
    extra = server.make_key(org.name, "read")
    server.cli_json("key", "revoke", "--org", org.name, str(extra["key_id"]))
    assert org.report("pc-to-delete").status_code == 200
    resp = org.request("DELETE", "/api/fleet/machine", key=admin_key["api_key"], params={"machine_id": "pc-to-delete"})
    assert resp.status_code == 200, resp.text

    entries = audit(org, admin_key["api_key"])["data"]
    actions = [e["action"] for e in entries]
    # Newest first: the deletion, the revocation, the keys made, the organisation.
    assert actions[:4] == ["machine.delete", "key.revoke", "key.create", "key.create"]
    assert actions[-2:] == ["key.create", "org.create"]
    deletion, revocation = entries[0], entries[1]
    assert deletion["actor"] == f"key {admin_key['key_id']}" and deletion["address"] == "127.0.0.1"
    assert deletion["target"] == "machine pc-to-delete"
    assert revocation["actor"].startswith("cli ") and revocation["address"] is None
    assert revocation["target"] == f"key {extra['key_id']}" and revocation["detail"] == {"scopes": ["read"]}
    assert all(isinstance(e["at"], float) for e in entries)


def test_a_refused_change_leaves_no_entry(server, org):
    admin_key = server.make_key(org.name, "admin")["api_key"]
    before = audit(org, admin_key)["count"]
    assert server.cli("key", "revoke", "--org", org.name, "999999").returncode != 0
    gone = org.request("DELETE", "/api/fleet/machine", key=admin_key, params={"machine_id": "never-seen"})
    assert gone.status_code == 404
    assert audit(org, admin_key)["count"] == before


def test_filters_and_paging(server, org):
    admin_key = server.make_key(org.name, "admin")["api_key"]
    for _ in range(3):
        server.make_key(org.name, "read")
    keys_made = audit(org, admin_key, action="KEY.CREATE")  # any case, part of the action
    assert keys_made["count"] == 5 and {e["action"] for e in keys_made["data"]} == {"key.create"}
    page = audit(org, admin_key, action="key.create", limit=2, offset=1)
    assert page["count"] == 5 and page["data"] == keys_made["data"][1:3]
    assert audit(org, admin_key, actor="nobody-like-this")["count"] == 0
    assert audit(org, admin_key, since=keys_made["data"][0]["at"] + 1)["count"] == 0


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 1001}, {"offset": -1}, {"since": "yesterday"}, {"action": "x" * 201}]
)
def test_bad_paging_or_filters_are_422(server, org, contract, params):
    admin_key = server.make_key(org.name, "admin")["api_key"]
    contract.error(org.get("/api/audit", key=admin_key, params=params), 422)


def test_only_the_organisations_admin_keys_read_it(server, org, contract):
    other = server.org()
    other_admin = server.make_key(other.name, "admin")["api_key"]
    server.make_key(org.name, "read")
    # Another organisation's admin sees only its own organisation's entries.
    seen = audit(other, other_admin)["data"]
    assert all(org.name not in e["target"] for e in seen)
    assert {e["action"] for e in seen} <= {"org.create", "key.create"}
    resp = org.get("/api/audit")  # the organisation's own agent + read key
    assert resp.status_code == 403 and "admin" in resp.json()["error"]
    contract.unauthorized(server.http.get("/api/audit"))
    contract.unauthorized(server.http.get("/api/audit", headers=bearer("api_" + "x" * 43)))


def test_entries_cannot_be_updated_and_verify_finds_tampering(server_factory):
    server = server_factory()
    org = server.org("Audited")
    server.make_key(org.name, "read")
    server.make_key(org.name, "admin")
    assert server.cli_json("audit", "verify")["ok"] is True

    db = sqlite3.connect(server.workdir / "data" / "dashfleet.db")
    try:
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            db.execute("UPDATE audit_entry SET actor = 'someone else'")
        # Someone with the database file drops the trigger and rewrites history.
        db.execute("DROP TRIGGER audit_entry_append_only")
        (entry_id,) = db.execute(
            "SELECT id FROM audit_entry WHERE action = 'key.create' ORDER BY id LIMIT 1 OFFSET 1"
        ).fetchone()
        db.execute('UPDATE audit_entry SET detail = \'{"scopes": ["agent"]}\' WHERE id = ?', (entry_id,))
        db.commit()
    finally:
        db.close()
    done = server.cli("audit", "verify", "--org", "Audited")
    assert done.returncode != 0
    assert f"entry {entry_id}" in done.stderr and "changed after it was written" in done.stderr
    assert "Traceback" not in done.stderr


def test_verify_names_a_removed_entry(server_factory):
    server = server_factory()
    org = server.org("Gaps")
    for _ in range(3):
        server.make_key(org.name, "read")
    db = sqlite3.connect(server.workdir / "data" / "dashfleet.db")
    try:
        ids = [r[0] for r in db.execute("SELECT id FROM audit_entry ORDER BY id")]
        db.execute("DELETE FROM audit_entry WHERE id = ?", (ids[2],))
        db.commit()
    finally:
        db.close()
    done = server.cli("audit", "verify")
    assert done.returncode != 0 and f"entry {ids[3]}" in done.stderr and "removed" in done.stderr
