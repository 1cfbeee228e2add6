"""Alerts end to end on a real server: rules fire and resolve on reports and on silence, silences
hold notices back and tell what still fires at their end, a goodbye keeps a machine from an offline
alert, metric alerts are unknown while their machine is offline; webhooks and e-mail are real."""

from __future__ import annotations

import time

from tests.admin.alerts.receivers import verify
from tests.helpers.api import sample_report


def test_cpu_rule_fires_and_resolves_with_hysteresis(alert_org, webhook):
    hook = f"{webhook.url}/cpu-{alert_org.org.name}"
    channel = alert_org.channel(name="ops hook", kind="webhook", url=hook, secret="s3cret")
    alert_org.rule(name="CPU hot", kind="cpu", threshold=90, clear_below=70, severity="critical", channels=[channel])
    org = alert_org.org

    assert org.report("desk-1", sample_report(cpu_percent=50)).status_code == 200
    assert alert_org.firing() == []
    started = time.monotonic()
    assert org.report("desk-1", sample_report(cpu_percent=95)).status_code == 200
    [alert] = alert_org.wait_state("desk-1", "firing")
    assert alert["rule"] == "CPU hot" and alert["value"] == 95 and alert["severity"] == "critical"
    [posted] = webhook.wait_for(lambda b: len(b) == 1, f"/cpu-{org.name}")
    assert time.monotonic() - started < 15
    assert set(posted) == {"id", "event", "rule", "severity", "machine_id", "value", "at"}
    assert posted["event"] == "firing" and posted["machine_id"] == "desk-1" and posted["value"] == 95
    [raw] = [p for p in webhook.posts if p["path"] == f"/cpu-{org.name}"]
    assert verify("s3cret", raw["raw"], raw["signature"]), "the HMAC signature must match the body"

    # Between the clear level and the threshold it keeps firing (no flapping), and says nothing.
    assert org.report("desk-1", sample_report(cpu_percent=80)).status_code == 200
    assert org.report("desk-1", sample_report(cpu_percent=92)).status_code == 200
    time.sleep(1)
    assert [a["state"] for a in alert_org.firing()] == ["firing"]
    assert len(webhook.accepted(f"/cpu-{org.name}")) == 1

    assert org.report("desk-1", sample_report(cpu_percent=60)).status_code == 200
    bodies = webhook.wait_for(lambda b: len(b) == 2, f"/cpu-{org.name}")
    assert bodies[1]["event"] == "resolved" and bodies[1]["id"] != bodies[0]["id"]
    assert alert_org.firing() == []
    history = org.get("/api/alerts/history").json()
    assert [e["event"] for e in history["data"]] == ["resolved", "firing"]
    assert all(d["state"] == "sent" for e in history["data"] for d in e["deliveries"])


def test_for_seconds_waits_then_fires_without_another_report(alert_org, webhook):
    path = f"/ram-{alert_org.org.name}"
    channel = alert_org.channel(name="hook", kind="webhook", url=webhook.url + path)
    alert_org.rule(name="RAM full", kind="ram", threshold=80, for_seconds=1, channels=[channel])
    org = alert_org.org
    assert org.report("desk-2", sample_report(ram_percent=85)).status_code == 200
    assert alert_org.firing() == []  # pending is not firing
    # A dip below the threshold starts the wait again.
    assert org.report("desk-2", sample_report(ram_percent=50)).status_code == 200
    assert org.report("desk-2", sample_report(ram_percent=85)).status_code == 200
    became_due = time.monotonic() + 1
    [posted] = webhook.wait_for(lambda b: len(b) == 1, path)
    assert time.monotonic() >= became_due - 0.2, "fired before for_seconds"
    assert posted["event"] == "firing" and posted["rule"] == "RAM full"


def test_offline_rule_fires_and_resolves_when_heard_again(alert_org, webhook):
    path = f"/off-{alert_org.org.name}"
    channel = alert_org.channel(name="hook", kind="webhook", url=webhook.url + path)
    alert_org.rule(name="Offline", kind="offline", for_seconds=0, channels=[channel])
    org = alert_org.org
    assert org.ping("laptop").status_code == 200
    [alert] = alert_org.wait_state("laptop", "firing")
    assert alert["value"] is None
    assert org.machine("laptop")["status"] == "offline"
    assert org.ping("laptop").status_code == 200
    bodies = webhook.wait_for(lambda b: len(b) == 2, path)
    assert [b["event"] for b in bodies] == ["firing", "resolved"]
    assert alert_org.firing() == []


def test_metric_alert_is_unknown_while_offline(alert_org, webhook):
    path = f"/unk-{alert_org.org.name}"
    channel = alert_org.channel(name="hook", kind="webhook", url=webhook.url + path)
    alert_org.rule(name="Disk full", kind="disk", threshold=90, channels=[channel])
    org = alert_org.org
    assert org.report("srv", sample_report(disk_percent=97)).status_code == 200
    alert_org.wait_state("srv", "firing")
    alert_org.wait_state("srv", "unknown")  # silent past OFFLINE_AFTER_SECONDS
    assert [b["event"] for b in webhook.accepted(path)] == ["firing"], "unknown is not a resolution"
    # Back, and still full: firing again, without telling the channel a second time.
    assert org.report("srv", sample_report(disk_percent=97)).status_code == 200
    alert_org.wait_state("srv", "firing")
    time.sleep(0.8)
    assert [b["event"] for b in webhook.accepted(path)] == ["firing"]
    assert org.report("srv", sample_report(disk_percent=40)).status_code == 200
    webhook.wait_for(lambda b: [x["event"] for x in b] == ["firing", "resolved"], path)


def test_silence_holds_notices_and_tells_what_still_fires_once(alert_org, webhook):
    path = f"/sil-{alert_org.org.name}"
    channel = alert_org.channel(name="hook", kind="webhook", url=webhook.url + path)
    alert_org.rule(name="CPU", kind="cpu", threshold=90, channels=[channel])
    org = alert_org.org
    for machine_id in ("a", "b", "c"):
        assert org.report(machine_id, sample_report(cpu_percent=10)).status_code == 200
    now = time.time()
    resp = alert_org.admin(
        "POST",
        "/api/alerts/silences",
        json={"machine_ids": ["a", "b"], "starts": now, "ends": now + 3, "comment": "patch"},
    )
    assert resp.status_code == 201, resp.text
    assert org.report("a", sample_report(cpu_percent=99)).status_code == 200  # still fires at the end
    assert org.report("b", sample_report(cpu_percent=99)).status_code == 200  # fires and resolves inside
    assert org.report("c", sample_report(cpu_percent=99)).status_code == 200  # not silenced
    alert_org.wait_state("a", "silenced")
    assert org.report("b", sample_report(cpu_percent=10)).status_code == 200
    webhook.wait_for(lambda b: len(b) == 1, path)
    assert [(b["machine_id"], b["event"]) for b in webhook.accepted(path)] == [("c", "firing")]

    # "a" keeps reporting (a silent machine would turn unknown); the silence ends after 3 s.
    deadline = time.monotonic() + 15
    while len(webhook.accepted(path)) < 2 and time.monotonic() < deadline:
        assert org.report("a", sample_report(cpu_percent=99)).status_code == 200
        time.sleep(0.3)
    bodies = webhook.accepted(path)
    assert time.time() >= now + 3, "told before the silence ended"
    assert bodies[1]["machine_id"] == "a" and bodies[1]["event"] == "firing"
    time.sleep(1)
    assert len(webhook.accepted(path)) == 2, "told once, and nothing of b"
    assert [a["state"] for a in alert_org.firing(machine_id="a")] == ["firing"]


def test_goodbye_means_away_not_offline(alert_org, webhook):
    path = f"/bye-{alert_org.org.name}"
    channel = alert_org.channel(name="hook", kind="webhook", url=webhook.url + path)
    alert_org.rule(name="Offline", kind="offline", channels=[channel])
    org = alert_org.org
    for machine_id in ("home", "back-soon", "crashed"):
        assert org.ping(machine_id).status_code == 200
    assert org.post("/api/agent/goodbye", json={"machine_id": "home", "reason": "shutdown"}).status_code == 200
    said = org.post("/api/agent/goodbye", json={"machine_id": "back-soon", "reason": "sleep", "back_in": 3})
    assert said.status_code == 200 and said.json()["expected_back"] > time.time()
    assert org.machine("home")["away"]["expected_back"] is None

    alert_org.wait_state("crashed", "firing")
    alert_org.wait_state("back-soon", "firing", timeout=15)  # overdue: now it counts as offline
    assert alert_org.firing(machine_id="home") == []
    assert org.machine("home")["away"] is not None and org.machine("back-soon")["away"] is None
    assert {b["machine_id"] for b in webhook.accepted(path)} == {"crashed", "back-soon"}
    # Heard from again: no longer away.
    assert org.ping("home").status_code == 200
    assert org.machine("home")["away"] is None


def test_email_channel_groups_notices_for_people(alert_org, smtp):
    to = f"ops-{alert_org.org.name}@example.com"
    channel = alert_org.channel(name="mail", kind="email", to=[to])
    alert_org.rule(name="CPU", kind="cpu", threshold=90, channels=[channel])
    before = len(smtp.mails)
    for machine_id in ("m1", "m2", "m3"):
        assert alert_org.org.report(machine_id, sample_report(cpu_percent=99)).status_code == 200
    smtp.wait_for(before + 1)
    time.sleep(1.5)
    mails = [m for m in smtp.mails if to in m["X-Envelope-To"]]
    assert len(mails) == 1, "three alerts within the window make one mail"
    body = mails[0].get_payload()
    assert all(f"on {m}" in body for m in ("m1", "m2", "m3")) and "FIRING" in body

    test = alert_org.admin("POST", f"/api/alerts/channels/{channel}/test")
    assert test.status_code == 200 and test.json() == {"ok": True, "error": None}
    smtp.wait_for(len(smtp.mails) + 0)
    assert any("Test notice" in m["Subject"] for m in smtp.mails if to in m["X-Envelope-To"])
