"""The alerts API's rules of access and input, on the shared server (both databases): who may
see and change what, organisation isolation, bad input refused with nothing changed, secrets never
shown again."""

from __future__ import annotations

import time

import pytest

from tests.admin.alerts.conftest import AlertOrg, make_alert_org


@pytest.fixture
def alert_org(server) -> AlertOrg:
    return make_alert_org(server)


def state(a: AlertOrg) -> dict:
    """Everything the organisation's alert settings hold, as an admin sees it."""
    return {what: a.admin("GET", f"/api/alerts/{what}").json()["data"] for what in ("channels", "rules", "silences")}


def test_scopes_read_sees_admin_changes(alert_org, contract):
    org = alert_org.org  # agent + read
    body = {"name": "x", "kind": "webhook", "url": "https://example.com/hook"}
    contract.error(org.post("/api/alerts/channels", json=body), 403)
    contract.error(org.post("/api/alerts/rules", json={"name": "r", "kind": "offline"}), 403)
    now = time.time()
    contract.error(org.post("/api/alerts/silences", json={"all": True, "starts": now, "ends": now + 60}), 403)
    assert state(alert_org) == {"channels": [], "rules": [], "silences": []}
    channel = alert_org.channel(**body)
    rule = alert_org.rule(name="r", kind="offline", channels=[channel])
    contract.error(org.request("DELETE", f"/api/alerts/rules/{rule}"), 403)
    contract.error(org.request("PATCH", f"/api/alerts/rules/{rule}", json={"name": "z"}), 403)
    contract.error(org.request("DELETE", f"/api/alerts/channels/{channel}"), 403)
    contract.error(org.post(f"/api/alerts/channels/{channel}/test"), 403)
    contract.error(org.post("/api/alerts/acknowledge", json={"rule_id": rule, "machine_id": "m"}), 403)
    assert [r["name"] for r in org.get("/api/alerts/rules").json()["data"]] == ["r"]  # read may see
    contract.unauthorized(org.get("/api/alerts", key="api_" + "x" * 43))
    contract.unauthorized(org.server.http.get("/api/alerts"))
    agent_only = org.server.make_key(org.name, "agent")["api_key"]
    contract.error(org.get("/api/alerts", key=agent_only), 403)
    contract.error(org.post("/api/agent/goodbye", json={"machine_id": "m"}, key=alert_org.admin_key), 403)


def test_organisations_are_isolated(server, alert_org, contract):
    other = make_alert_org(server)
    assert other.org.report("theirs").status_code == 200
    channel = other.channel(name="theirs", kind="webhook", url="https://example.com/t", secret="s")
    rule = other.rule(name="theirs", kind="cpu", threshold=50, channels=[channel])
    now = time.time()
    silence = other.admin("POST", "/api/alerts/silences", json={"all": True, "starts": now, "ends": now + 60})
    silence_id = silence.json()["silence_id"]
    before = state(other)

    mine = alert_org
    assert state(mine) == {"channels": [], "rules": [], "silences": []}
    contract.error(mine.admin("PATCH", f"/api/alerts/rules/{rule}", json={"name": "mine"}), 404)
    contract.error(mine.admin("DELETE", f"/api/alerts/rules/{rule}"), 404)
    contract.error(mine.admin("PATCH", f"/api/alerts/channels/{channel}", json={"name": "mine"}), 404)
    contract.error(mine.admin("DELETE", f"/api/alerts/channels/{channel}"), 404)
    contract.error(mine.admin("POST", f"/api/alerts/channels/{channel}/test"), 404)
    contract.error(mine.admin("DELETE", f"/api/alerts/silences/{silence_id}"), 404)
    body = {"name": "r", "kind": "cpu", "threshold": 50, "channels": [channel]}
    contract.error(mine.admin("POST", "/api/alerts/rules", json=body), 404)  # their channel
    body = {"name": "r", "kind": "cpu", "threshold": 50, "machine_ids": ["theirs"]}
    contract.error(mine.admin("POST", "/api/alerts/rules", json=body), 404)  # their machine
    body = {"machine_ids": ["theirs"], "starts": now, "ends": now + 60}
    contract.error(mine.admin("POST", "/api/alerts/silences", json=body), 404)
    contract.error(mine.org.post("/api/agent/goodbye", json={"machine_id": "theirs"}), 404)
    assert mine.org.get("/api/alerts/history").json() == {"count": 0, "data": []}
    assert state(mine) == {"channels": [], "rules": [], "silences": []}
    assert state(other) == before
    assert other.org.machine("theirs")["away"] is None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("rules", {"name": "r", "kind": "cpu"}),  # no threshold
        ("rules", {"name": "r", "kind": "offline", "threshold": 5}),
        ("rules", {"name": "r", "kind": "cpu", "threshold": 101}),
        ("rules", {"name": "r", "kind": "cpu", "threshold": 50, "clear_below": 60}),
        ("rules", {"name": "r", "kind": "disk", "threshold": 50, "for_seconds": -1}),
        ("rules", {"name": "r", "kind": "load", "threshold": 50}),
        ("rules", {"name": "", "kind": "offline"}),
        ("rules", {"name": "r", "kind": "offline", "severity": "page"}),
        ("channels", {"name": "c", "kind": "webhook", "url": "ftp://example.com/x"}),
        ("channels", {"name": "c", "kind": "webhook"}),
        ("channels", {"name": "c", "kind": "email", "to": ["not an address"]}),
        ("channels", {"name": "c", "kind": "apprise", "urls": []}),
        ("channels", {"name": "c", "kind": "sms", "url": "https://x"}),
        ("silences", {"all": True, "starts": 100, "ends": 50}),
        ("silences", {"starts": 100, "ends": 500}),  # neither machines nor all
        ("silences", {"all": True, "starts": 0, "ends": 8 * 86400, "weekly": True}),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(alert_org, contract, path, body):
    before = state(alert_org)
    contract.error(alert_org.admin("POST", f"/api/alerts/{path}", json=body), 422)
    assert state(alert_org) == before


def test_secrets_are_never_shown_again(alert_org):
    hook = alert_org.channel(name="hook", kind="webhook", url="https://example.com/h", secret="top-secret")
    alert_org.channel(name="chat", kind="apprise", urls=["ntfys://token-abc@ntfy.example.com/topic"])
    listed = alert_org.admin("GET", "/api/alerts/channels")
    assert "top-secret" not in listed.text and "token-abc" not in listed.text
    by_name = {c["name"]: c for c in listed.json()["data"]}
    assert by_name["hook"]["has_secret"] is True and by_name["chat"]["services"] == ["ntfys://…"]
    renamed = alert_org.admin("PATCH", f"/api/alerts/channels/{hook}", json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["has_secret"] is True  # kept
    assert "top-secret" not in renamed.text


def test_rules_are_listed_changed_and_deleted(alert_org, contract):
    rule = alert_org.rule(name="disk", kind="disk", threshold=90, for_seconds=60, severity="critical")
    changed = alert_org.admin("PATCH", f"/api/alerts/rules/{rule}", json={"threshold": 95, "clear_below": 85})
    assert changed.status_code == 200, changed.text
    assert {k: changed.json()[k] for k in ("threshold", "clear_below", "for_seconds", "severity")} == {
        "threshold": 95,
        "clear_below": 85,
        "for_seconds": 60,
        "severity": "critical",
    }
    before = state(alert_org)
    contract.error(alert_org.admin("PATCH", f"/api/alerts/rules/{rule}", json={"clear_below": 99}), 422)
    assert state(alert_org) == before
    assert alert_org.admin("DELETE", f"/api/alerts/rules/{rule}").status_code == 200
    contract.error(alert_org.admin("DELETE", f"/api/alerts/rules/{rule}"), 404)
    assert state(alert_org)["rules"] == []


def test_alert_routes_are_documented(server):
    paths = server.openapi()["paths"]
    for path in (
        "/api/alerts",
        "/api/alerts/rules",
        "/api/alerts/channels",
        "/api/alerts/silences",
        "/api/agent/goodbye",
    ):
        assert path in paths
        for operation in paths[path].values():
            assert operation["security"] == [{"apiKey": []}]


def test_a_machines_own_key_says_goodbye_only_for_its_machine(alert_org, contract):
    org = alert_org.org
    enrol_key = org.server.make_key(org.name, "enroll")["api_key"]
    keys = {}
    for machine_id in ("mine", "neighbour"):
        resp = org.post(
            "/api/agent/enroll", json={"machine_id": machine_id, "hardware_id": f"hw-{machine_id}"}, key=enrol_key
        )
        assert resp.status_code == 201, resp.text
        keys[machine_id] = resp.json()["agent_key"]
    contract.error(org.post("/api/agent/goodbye", json={"machine_id": "neighbour"}, key=keys["mine"]), 403)
    assert org.machine("neighbour")["away"] is None
    assert org.post("/api/agent/goodbye", json={"machine_id": "mine"}, key=keys["mine"]).status_code == 200
    assert org.machine("mine")["away"] is not None
