"""POST /api/fleet/ping: heartbeats create machines, tell the time, and are limited per machine."""

import time

CLOCK_SLACK_SECONDS = 5


def test_ping_creates_a_machine_listed_with_an_empty_report(org):
    before = time.time()
    resp = org.ping("heartbeat-only", hardware_id="hw-123")
    after = time.time()
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["ok"] is True
    assert before - CLOCK_SLACK_SECONDS <= body["timestamp"] <= after + CLOCK_SLACK_SECONDS

    listing = org.fleet()
    assert listing["count"] == 1 and listing["expired"] == []
    machine = listing["data"][0]
    assert machine["machine_id"] == "heartbeat-only"
    assert machine["report"] == {}
    assert machine["status"] == "online"
    assert machine["hardware_id"] == "hw-123"
    assert before - CLOCK_SLACK_SECONDS <= machine["last_ping"] <= after + CLOCK_SLACK_SECONDS
    assert before - CLOCK_SLACK_SECONDS <= machine["last_seen"] <= after + CLOCK_SLACK_SECONDS


def test_server_time_offset_is_server_time_minus_agent_time(org):
    agent_time = time.time() - 1000
    body = org.ping("slow-clock", timestamp=agent_time).json()
    assert abs(body["server_time_offset"] - (body["timestamp"] - agent_time)) < 0.01
    assert 1000 - CLOCK_SLACK_SECONDS <= body["server_time_offset"] <= 1000 + CLOCK_SLACK_SECONDS


def test_ping_then_report_is_one_machine(org, contract):
    assert org.ping("pc-1").status_code == 200
    assert org.report("pc-1", contract.sample_report(cpu_percent=33)).status_code == 200
    assert org.ping("pc-1").status_code == 200
    listing = org.fleet()
    assert listing["count"] == 1
    assert listing["data"][0]["report"]["cpu_percent"] == 33
    assert listing["data"][0]["last_ping"] is not None
