"""POST /api/fleet/report: the latest report, a history sample, OS metadata, extra fields kept."""

import time

# The server and the tests share one clock; this only absorbs scheduling, not a performance bound.
CLOCK_SLACK_SECONDS = 5


def test_report_is_listed_exactly_as_sent(org, contract):
    report = contract.sample_report(
        cpu_percent=45.2,
        ram_percent=62.1,
        disk_percent=34.5,
        system={"os": "Windows", "os_version": "10.0.19045", "hostname": "reception-pc", "agent_version": "1.0.0"},
    )
    before = time.time()
    resp = org.report("pc-1", report)
    after = time.time()
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    assert resp.json()["ok"] is True

    listing = org.fleet()
    assert listing["count"] == 1 and listing["expired"] == []
    machine = listing["data"][0]
    assert machine["id"] == machine["machine_id"] == "pc-1"
    assert machine["org_id"]
    assert machine["status"] == "online"
    assert machine["report"] == report
    assert machine["system"]["os"] == "Windows"
    assert machine["system"]["hostname"] == "reception-pc"
    for clock in ("last_seen", "ts"):
        assert before - CLOCK_SLACK_SECONDS <= machine[clock] <= after + CLOCK_SLACK_SECONDS, clock


def test_a_new_report_replaces_the_latest_and_adds_a_history_sample(org, contract):
    assert org.report("pc-1", contract.sample_report(cpu_percent=10)).status_code == 200
    assert org.report("pc-1", contract.sample_report(cpu_percent=90)).status_code == 200

    listing = org.fleet()
    assert listing["count"] == 1
    assert listing["data"][0]["report"]["cpu_percent"] == 90

    history = org.get("/api/fleet/machine/history", params={"machine_id": "pc-1"}).json()
    assert [s["cpu_percent"] for s in history["samples"]] == [10, 90]


def test_extra_fields_of_newer_agents_are_kept(org, contract):
    report = contract.sample_report(
        gpu_percent=5.5, sensors={"fans": [1200, 1300], "label": "ok"}, system={"os": "Linux", "kernel_flavour": "rt"}
    )
    assert org.report("pc-1", report).status_code == 200
    stored = org.machine("pc-1")["report"]
    assert stored["gpu_percent"] == 5.5
    assert stored["sensors"] == {"fans": [1200, 1300], "label": "ok"}
    assert stored["system"]["kernel_flavour"] == "rt"


def test_minimal_report_of_an_old_agent_is_accepted(org):
    # Only the three required numbers: what the first agents sent.
    report = {"cpu_percent": 0, "ram_percent": 100, "disk_percent": 50.5}
    assert org.report("old-agent", report).status_code == 200
    assert org.machine("old-agent")["report"] == report


def test_system_metadata_is_shown_and_filters_by_os(org, contract):
    for machine_id, os_name in [("lin", "Linux"), ("win", "Windows"), ("mac", "Darwin")]:
        report = contract.sample_report(
            system={
                "os": os_name,
                "os_version": "1",
                "platform": f"{os_name}-x",
                "architecture": "x86_64",
                "python_version": "3.11.2",
                "hardware_id": f"hw-{machine_id}",
                "agent_version": "1.0.0",
                "hostname": f"host-{machine_id}",
            }
        )
        assert org.report(machine_id, report).status_code == 200

    win = org.machine("win")
    assert win["system"]["os"] == "Windows"
    assert win["system"]["architecture"] == "x86_64"
    assert win["system"]["hostname"] == "host-win"
    assert org.machine_ids(os="Windows") == ["win"]
    assert org.machine_ids(os="darwin") == ["mac"]
    assert org.machine_ids(os="LINUX") == ["lin"]
