"""Notices are never lost or sent twice: a kill -9 during a failing delivery, a restart's start-up
grace, and two server processes on one PostgreSQL sending each event once."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.admin.alerts.conftest import FAST, make_alert_org
from tests.helpers.api import sample_report


def attempts_at(webhook, path: str, timeout: float = 15) -> list[dict]:
    """The notifier's posts to this path so far, once there is at least one."""
    deadline = time.monotonic() + timeout
    while not [p for p in webhook.posts if p["path"] == path] and time.monotonic() < deadline:
        time.sleep(0.1)
    posts = [p for p in webhook.posts if p["path"] == path]
    assert posts, f"the notifier never posted to {path}"
    return posts


def attempts(alerts) -> int:
    """How many times the outbox says the newest notice was tried."""
    history = alerts.org.get("/api/alerts/history").json()["data"]
    return history[0]["deliveries"][0]["attempts"] if history and history[0]["deliveries"] else 0


def test_kill_9_during_a_failing_delivery_delivers_once_after_restart(server_factory, webhook):
    node = server_factory("sqlite", **FAST)
    alerts = make_alert_org(node)
    path = f"/kill-{alerts.org.name}"
    channel = alerts.channel(name="hook", kind="webhook", url=webhook.url + path)
    alerts.rule(name="CPU", kind="cpu", threshold=90, channels=[channel])
    webhook.fail_with = 500
    try:
        assert alerts.org.report("desk", sample_report(cpu_percent=99)).status_code == 200
        failed = attempts_at(webhook, path)
        assert failed[0]["status"] == 500, "the notifier tried, and the channel failed"
        # ... and wrote down that it did (the webhook hears the attempt before the notifier's commit).
        deadline = time.monotonic() + 15
        while attempts(alerts) < 1:
            assert time.monotonic() < deadline, "the failed attempt was never written to the outbox"
            time.sleep(0.1)
        node.proc.kill()  # SIGKILL: no shutdown, no flush
        node.proc.wait(timeout=10)
        node.stop()  # forgets the dead process's connections (it is already gone)
    finally:
        webhook.fail_with = 0
    node.start()
    [delivered] = webhook.wait_for(lambda b: len(b) == 1, path)
    time.sleep(2)  # nothing more comes
    assert len(webhook.accepted(path)) == 1, "delivered once"
    assert {p["body"]["id"] for p in webhook.posts if p["path"] == path} == {delivered["id"]}, (
        "every attempt carries the same id"
    )
    history = alerts.org.get("/api/alerts/history").json()["data"]
    assert history[0]["deliveries"][0]["state"] == "sent" and attempts(alerts) >= 2


def test_no_offline_alert_before_a_whole_offline_window_of_uptime(server_factory, webhook):
    offline_after = 3
    node = server_factory("sqlite", **{**FAST, "offline_after_seconds": offline_after})
    alerts = make_alert_org(node)
    path = f"/grace-{alerts.org.name}"
    channel = alerts.channel(name="hook", kind="webhook", url=webhook.url + path)
    alerts.rule(name="Offline", kind="offline", channels=[channel])
    assert alerts.org.ping("desk").status_code == 200
    node.stop()
    time.sleep(offline_after + 1)  # silent for longer than the window while the server was down
    node.start()
    up = time.monotonic()
    assert alerts.org.machine("desk")["status"] == "offline"  # the listing says so at once
    while time.monotonic() - up < offline_after - 1:
        assert alerts.firing() == [], "an offline alert fired inside the start-up grace"
        time.sleep(0.2)
    alerts.wait_state("desk", "firing", timeout=15)  # silent on: it fires once the window has passed
    assert [b["event"] for b in webhook.wait_for(lambda b: len(b) == 1, path)] == ["firing"]


@pytest.mark.postgres
@pytest.mark.redis
def test_two_processes_on_postgresql_send_each_event_once(server_factory, postgres, redis_url, webhook):
    shared = {
        "database_url": postgres.create(),
        "rate_limit_storage": redis_url,
        "storage_secret": "alerts-scale-out-" + "x" * 24,
        **FAST,
    }
    node_a = server_factory.prepare("sqlite", **shared)  # an explicit PostgreSQL URL (see test_scale_out)
    node_b = server_factory.prepare("sqlite", **shared)
    node_a.start(), node_b.start()
    alerts = make_alert_org(node_a)
    org_a, org_b = alerts.org, alerts.org.via(node_b)
    path = f"/two-{alerts.org.name}"
    channel = alerts.channel(name="hook", kind="webhook", url=webhook.url + path)
    alerts.rule(name="CPU", kind="cpu", threshold=90, channels=[channel])
    alerts.rule(name="Offline", kind="offline", channels=[channel])
    time.sleep(1)  # node b reads the new rules within a sweep
    machines = [f"pc-{n:02d}" for n in range(12)]

    def report(n_and_id: tuple[int, str], cpu: float) -> int:
        n, machine_id = n_and_id
        return (org_a if n % 2 else org_b).report(machine_id, sample_report(cpu_percent=cpu)).status_code

    with ThreadPoolExecutor(6) as pool:
        assert set(pool.map(lambda x: report(x, 99), enumerate(machines))) == {200}
        webhook.wait_for(lambda b: len(b) >= len(machines), path)
        assert set(pool.map(lambda x: report(x, 10), enumerate(machines))) == {200}
    webhook.wait_for(lambda b: len(b) >= 2 * len(machines), path)
    # Silent now: both processes sweep, one offline alert per machine fires.
    webhook.wait_for(lambda b: len(b) >= 3 * len(machines), path, timeout=20)
    time.sleep(2)
    bodies = webhook.accepted(path)
    seen = [(b["rule"], b["machine_id"], b["event"]) for b in bodies]
    assert len(seen) == len(set(seen)) == 3 * len(machines), f"each event once: {sorted(seen)}"
    assert len({b["id"] for b in bodies}) == len(bodies)


@pytest.mark.postgres
@pytest.mark.parametrize("deleted", ["rule", "channel"])
def test_a_report_to_a_process_that_still_has_a_deleted_rule_or_channel_is_taken(
    deleted, server_factory, postgres, webhook
):
    """Process B holds a copy of the rules and channels until its next sweep; one deleted through
    process A in between must not cost a report to B (its alert rows would refer to what is gone)."""
    shared = {"database_url": postgres.create(), "storage_secret": "alerts-deleted-rule-" + "x" * 20}
    node_a = server_factory.prepare("sqlite", **shared, **FAST)
    node_b = server_factory.prepare("sqlite", **shared, **{**FAST, "alert_sweep_seconds": 600})
    node_a.start()
    alerts = make_alert_org(node_a)
    path = f"/deleted-{alerts.org.name}"
    channel = alerts.channel(name="hook", kind="webhook", url=webhook.url + path)
    rule = alerts.rule(name="CPU", kind="cpu", threshold=90, channels=[channel])
    node_b.start()  # reads both at start-up, and not again for ten minutes
    org_b = alerts.org.via(node_b)
    gone = f"/api/alerts/rules/{rule}" if deleted == "rule" else f"/api/alerts/channels/{channel}"
    assert alerts.admin("DELETE", gone).status_code == 200

    resp = org_b.report("pc-1", sample_report(cpu_percent=99))
    assert resp.status_code == 200, resp.text
    assert [m["machine_id"] for m in org_b.fleet()["data"]] == ["pc-1"]
    if deleted == "rule":
        assert alerts.firing() == []
    else:  # the rule still fires, with nobody to tell
        alerts.wait_state("pc-1", "firing")
    time.sleep(2)  # a notice would have gone out by now (FAST periods)
    assert webhook.accepted(path) == []


def test_the_outbox_backlog_is_a_metric_until_the_channel_takes_it(server_factory, webhook):
    """GET /metrics's dashfleet_backlog{queue="notifications"}: notices waiting or retrying, so a
    channel that keeps failing shows as a growing backlog in the monitoring, not only in the UI."""
    from prometheus_client.parser import text_string_to_metric_families

    token = "metrics-token-for-the-alert-tests-0123456789"
    node = server_factory("sqlite", metrics_token=token, **FAST)

    def backlog() -> float:
        resp = node.http.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert resp.status_code == 200, resp.text
        found = [
            s.value
            for family in text_string_to_metric_families(resp.text)
            for s in family.samples
            if s.name == "dashfleet_backlog" and s.labels == {"queue": "notifications"}
        ]
        assert len(found) == 1, resp.text
        return found[0]

    alerts = make_alert_org(node)
    path = f"/backlog-{alerts.org.name}"
    channel = alerts.channel(name="hook", kind="webhook", url=webhook.url + path)
    alerts.rule(name="CPU", kind="cpu", threshold=90, channels=[channel])
    assert backlog() == 0
    webhook.fail_with = 500
    try:
        assert alerts.org.report("desk", sample_report(cpu_percent=99)).status_code == 200
        assert attempts_at(webhook, path)[0]["status"] == 500, "the notifier tried, and the channel failed"
        assert backlog() == 1, "the failed notice waits for its retry"
    finally:
        webhook.fail_with = 0
    webhook.wait_for(lambda b: len(b) == 1, path)
    deadline = time.monotonic() + 15
    while backlog() != 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backlog() == 0, "sent: nothing waits"
