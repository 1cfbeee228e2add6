"""POST /api/fleet/report: the latest report, a history sample, OS metadata, extra fields kept."""

import time
from datetime import UTC, datetime

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
    # A minute apart by the agent's clock: history keeps one sample per machine per 5 s.
    minute_ago = datetime.fromtimestamp(time.time() - 60, UTC).isoformat()
    assert org.report("pc-1", contract.sample_report(cpu_percent=10, timestamp=minute_ago)).status_code == 200
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


HISTORY = "/api/fleet/machine/history"


def _sensors(org, machine_id: str) -> tuple[dict, float | None, list]:
    machine = org.machine(machine_id)
    samples = org.get(HISTORY, params={"machine_id": machine_id}).json()["samples"]
    return machine["report"], machine["health_score"], samples


def test_a_sensor_the_agent_could_not_read_is_null_and_unknown_end_to_end(org, contract):
    """Today's agent sends an unreadable sensor as null: stored, listed and kept in history as
    null, and the server's score leaves it out (an unreadable disk is not a healthy 0 %)."""
    assert (
        org.report(
            "null-disk", contract.sample_report(cpu_percent=90.0, ram_percent=20.0, disk_percent=None)
        ).status_code
        == 200
    )
    report, score, samples = _sensors(org, "null-disk")
    assert report["disk_percent"] is None
    assert samples[-1]["disk_percent"] is None and samples[-1]["cpu_percent"] == 90.0
    org.report("zero-disk", contract.sample_report(cpu_percent=90.0, ram_percent=20.0, disk_percent=0.0))
    assert score != org.machine("zero-disk")["health_score"]  # 0 % would have been scored as healthy
    assert score == samples[-1]["score"]
    nothing = org.report("nothing-read", contract.sample_report(cpu_percent=None, ram_percent=None, disk_percent=None))
    assert nothing.status_code == 200
    machine = org.machine("nothing-read")
    assert (machine["health_score"], machine["health_status"]) == (None, None)  # unknown, not healthy


def test_an_earlier_agents_zero_named_unavailable_is_read_as_null(org, contract):
    """Agents of earlier versions send an unreadable sensor as 0 and name it in `unavailable`:
    they must still be able to report, and their 0 is read as the unknown it stands for."""
    old = contract.sample_report(cpu_percent=90.0, ram_percent=20.0, disk_percent=0, unavailable=["disk_percent"])
    assert org.report("old-null-disk", old).status_code == 200
    org.report("new-null-disk", contract.sample_report(cpu_percent=90.0, ram_percent=20.0, disk_percent=None))
    report, score, samples = _sensors(org, "old-null-disk")
    assert report["disk_percent"] is None and report["unavailable"] == ["disk_percent"]  # the rest as sent
    assert samples[-1]["disk_percent"] is None
    assert score == org.machine("new-null-disk")["health_score"]


def test_a_missing_sensor_key_is_still_refused(org, contract):
    report = contract.sample_report()
    del report["disk_percent"]  # required: null says "could not read", absence says nothing
    contract.error(org.report("no-disk-key", report), 422)
    org.assert_empty()
