"""A rule that leaves machines (deleted, or narrowed to fewer machines) tells what it fired there
"resolved", once, through the outbox (real server, real webhook receiver, both databases); a
silence holds that notice back until it ends; others (read keys, other organisations) change
nothing and cause no notice."""

from __future__ import annotations

import time

from tests.admin.alerts.conftest import make_alert_org
from tests.helpers.api import sample_report


def hot(org, *machine_ids: str) -> None:
    for machine_id in machine_ids:
        assert org.report(machine_id, sample_report(cpu_percent=97)).status_code == 200


def firing_on(alert_org, webhook, tag: str, *machine_ids: str) -> tuple[str, int]:
    """A CPU rule posting to the webhook at a path of its own, told firing on `machine_ids`."""
    path = f"/{tag}-{alert_org.org.name}"
    channel = alert_org.channel(name="hook", kind="webhook", url=webhook.url + path)
    rule = alert_org.rule(name="CPU hot", kind="cpu", threshold=90, channels=[channel])
    hot(alert_org.org, *machine_ids)
    webhook.wait_for(lambda b: len(b) == len(machine_ids), path)
    return path, rule


def test_deleting_a_rule_tells_its_firing_alerts_resolved_once(alert_org, webhook, alerting):
    path = f"/del-{alert_org.org.name}"
    channel = alert_org.channel(name="hook", kind="webhook", url=webhook.url + path, secret="k")
    rule = alert_org.rule(name="CPU hot", kind="cpu", threshold=90, severity="critical", channels=[channel])
    quiet = alert_org.rule(name="Pending", kind="cpu", threshold=90, for_seconds=3600, channels=[channel])
    org = alert_org.org
    hot(org, "desk-a", "desk-b")
    fired = webhook.wait_for(lambda b: len(b) == 2, path)
    assert {b["machine_id"] for b in fired} == {"desk-a", "desk-b"}

    # Others cannot delete it: a read key is refused, another organisation's admin finds nothing.
    assert org.request("DELETE", f"/api/alerts/rules/{rule}").status_code == 403
    stranger = make_alert_org(alerting)
    assert stranger.admin("DELETE", f"/api/alerts/rules/{rule}").status_code == 404
    assert {a["machine_id"] for a in alert_org.firing()} == {"desk-a", "desk-b"}

    resp = alert_org.admin("DELETE", f"/api/alerts/rules/{rule}")
    assert resp.status_code == 200, resp.text
    bodies = webhook.wait_for(lambda b: len(b) == 4, path)
    resolved = bodies[2:]
    assert [b["event"] for b in resolved] == ["resolved", "resolved"]
    assert {b["machine_id"] for b in resolved} == {"desk-a", "desk-b"}
    assert all(b["rule"] == "CPU hot" and b["severity"] == "critical" for b in resolved)
    assert alert_org.firing() == []
    # Once: deleting again is 404 and tells nothing; a pending alert of another rule was never told.
    assert alert_org.admin("DELETE", f"/api/alerts/rules/{rule}").status_code == 404
    assert alert_org.admin("DELETE", f"/api/alerts/rules/{quiet}").status_code == 200
    time.sleep(1.5)
    assert len(webhook.accepted(path)) == 4
    history = org.get("/api/alerts/history").json()["data"]
    assert sorted(e["event"] for e in history) == ["firing", "firing", "resolved", "resolved"]
    assert all(d["state"] == "sent" for e in history for d in e["deliveries"])
    audit = alert_org.admin("GET", "/api/audit").json()["data"]
    [entry] = [e for e in audit if e["action"] == "alert_rule.delete" and e["target"] == f"rule {rule}"]
    assert entry["detail"]["resolved"] == 2


def test_narrowing_a_rule_resolves_the_machines_it_leaves(alert_org, webhook):
    path, rule = firing_on(alert_org, webhook, "narrow", "keep-me", "drop-me")
    resp = alert_org.admin("PATCH", f"/api/alerts/rules/{rule}", json={"machine_ids": ["keep-me"]})
    assert resp.status_code == 200, resp.text
    [resolved] = webhook.wait_for(lambda b: len(b) == 3, path)[2:]
    assert (resolved["event"], resolved["machine_id"]) == ("resolved", "drop-me")
    assert [a["machine_id"] for a in alert_org.firing()] == ["keep-me"]
    time.sleep(1)
    assert len(webhook.accepted(path)) == 3


def test_a_rule_deleted_inside_a_silence_tells_resolved_at_its_end(alert_org, webhook):
    path, rule = firing_on(alert_org, webhook, "silenced", "quiet-pc", "loud-pc")
    now = time.time()
    window = {"machine_ids": ["quiet-pc"], "starts": now, "ends": now + 4, "comment": "maintenance"}
    assert alert_org.admin("POST", "/api/alerts/silences", json=window).status_code == 201
    assert alert_org.admin("DELETE", f"/api/alerts/rules/{rule}").status_code == 200
    # loud-pc is not silenced: told at once. quiet-pc is: its resolution waits for the silence's end.
    [first] = webhook.wait_for(lambda b: len(b) == 3, path)[2:]
    assert (first["event"], first["machine_id"]) == ("resolved", "loud-pc")
    if time.time() < window["ends"]:  # (on a very slow machine the window may be over already)
        assert len(webhook.accepted(path)) == 3
    [last] = webhook.wait_for(lambda b: len(b) == 4, path)[3:]
    assert time.time() >= window["ends"], "told inside the silence"
    assert (last["event"], last["machine_id"]) == ("resolved", "quiet-pc")
    time.sleep(1)
    assert len(webhook.accepted(path)) == 4


def test_turning_a_rule_off_resolves_its_alerts_once_and_on_again_starts_afresh(alert_org, webhook, alerting):
    path, rule = firing_on(alert_org, webhook, "off", "pc-1")
    org = alert_org.org
    # Only an admin of the organisation turns it off.
    assert org.request("PATCH", f"/api/alerts/rules/{rule}", json={"enabled": False}).status_code == 403
    stranger = make_alert_org(alerting)
    assert stranger.admin("PATCH", f"/api/alerts/rules/{rule}", json={"enabled": False}).status_code == 404
    assert alert_org.admin("PATCH", f"/api/alerts/rules/{rule}", json={"enabled": "maybe"}).status_code == 422
    assert [a["machine_id"] for a in alert_org.firing()] == ["pc-1"]

    resp = alert_org.admin("PATCH", f"/api/alerts/rules/{rule}", json={"enabled": False})
    assert resp.status_code == 200 and resp.json()["enabled"] is False, resp.text
    [resolved] = webhook.wait_for(lambda b: len(b) == 2, path)[1:]
    assert (resolved["event"], resolved["machine_id"]) == ("resolved", "pc-1")
    assert alert_org.firing() == []
    hot(org, "pc-1", "pc-2")  # off: nothing fires
    assert alert_org.admin("PATCH", f"/api/alerts/rules/{rule}", json={"name": "renamed"}).json()["enabled"] is False
    time.sleep(1)
    assert len(webhook.accepted(path)) == 2 and alert_org.firing() == []

    assert alert_org.admin("PATCH", f"/api/alerts/rules/{rule}", json={"enabled": True}).status_code == 200
    hot(org, "pc-2")
    [fired] = webhook.wait_for(lambda b: len(b) == 3, path)[2:]
    assert (fired["event"], fired["machine_id"], fired["rule"]) == ("firing", "pc-2", "renamed")
