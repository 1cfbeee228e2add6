"""Security findings 1 to 4 of issue 11 (docs/security.md): each test failed before its fix."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from common.constants import SAMPLE_MAX_AGE_SECONDS, UNKNOWN_FIELDS_MAX_BYTES

HISTORY = "/api/fleet/machine/history"


def agent_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


# -- 1. unknown report fields -------------------------------------------------------------------


def test_unknown_report_fields_are_kept_only_up_to_the_cap(org, contract):
    bulky = contract.sample_report(
        gpu_percent=5.5,  # small unknown fields, sent first, are kept
        padding="x" * 60_000,
        system={"os": "Linux", "kernel_flavour": "rt", "blob": "y" * 2000},
        later="kept if it fits",
    )
    resp = org.report("pc-1", bulky)
    assert resp.status_code == 200 and resp.json()["dropped_fields"] == 2
    stored = org.machine("pc-1")["report"]
    assert stored["gpu_percent"] == 5.5 and stored["later"] == "kept if it fits"
    assert "padding" not in stored and "blob" not in stored["system"]
    assert stored["system"]["kernel_flavour"] == "rt" and stored["system"]["os"] == "Linux"
    assert stored["cpu_percent"] == bulky["cpu_percent"] and stored["health"] == bulky["health"]
    # A report within the cap is kept exactly as sent, and the answer says nothing was dropped.
    small = contract.sample_report(extra={"a": [1, 2, 3]})
    resp = org.report("pc-2", small)
    assert resp.status_code == 200 and "dropped_fields" not in resp.json()
    assert org.machine("pc-2")["report"] == small


def test_a_listing_of_bloated_reports_stays_small(org, contract):
    machines = 20
    for n in range(machines):
        report = contract.sample_report(**{f"field{i}": "z" * 3000 for i in range(20)})
        assert org.report(f"pc-{n:02d}", report).status_code == 200
    listing = org.get("/api/fleet", params={"limit": 1000})
    assert listing.json()["count"] == machines
    per_machine = len(listing.content) / machines
    # Known fields and their metadata are well under 2 KiB; unknown ones are capped.
    assert per_machine < UNKNOWN_FIELDS_MAX_BYTES + 2048, per_machine


def test_known_free_text_fields_are_bounded(org, contract):
    for fields in (
        {"uptime_hms": "1" * 65},
        {"health": {"score": 50, "status": "ok", "reasons": ["r" * 201]}},
        {"health": {"score": 50, "status": "ok", "reasons": ["r"] * 17}},
        {"timestamp": "2026-01-02T15:30:45" + "0" * 60 + "+00:00"},
    ):
        contract.error(org.report("pc-1", contract.sample_report(**fields)), 422)
    org.assert_empty()


# -- 2. history: backdating, spacing, paging ----------------------------------------------------


def samples(org, machine_id: str, **params) -> list[dict]:
    resp = org.get(HISTORY, params={"machine_id": machine_id, **params})
    assert resp.status_code == 200, resp.text
    return resp.json()["samples"]


def test_samples_cannot_be_backdated_beyond_what_a_queue_holds(org, contract):
    before = time.time()
    # Ten days back: inside the 30-day retention, beyond the agent queue's week.
    old = contract.sample_report(timestamp=agent_time(before - 10 * 86400))
    assert org.report("backdated", old).status_code == 200
    (sample,) = samples(org, "backdated", hours=1)
    assert sample["ts"] >= before
    # Within the queue's reach, a sample is still charted when it was measured.
    stamp = before - SAMPLE_MAX_AGE_SECONDS + 3600
    assert org.report("queued", contract.sample_report(timestamp=agent_time(stamp))).status_code == 200
    (sample,) = samples(org, "queued", hours=168)
    assert abs(sample["ts"] - stamp) < 1


def test_history_keeps_one_sample_per_machine_per_few_seconds(org, contract):
    for cpu in (10, 20, 30, 40, 50):
        assert org.report("pc-1", contract.sample_report(cpu_percent=cpu)).status_code == 200
    assert [s["cpu_percent"] for s in samples(org, "pc-1")] == [10]  # the first of the burst
    assert org.machine("pc-1")["report"]["cpu_percent"] == 50  # the latest report is always kept
    # Reports measured further apart (a queue catching up) each keep their sample.
    now = time.time()
    for n, cpu in enumerate((1, 2, 3)):
        report = contract.sample_report(cpu_percent=cpu, timestamp=agent_time(now - 600 + 60 * n))
        assert org.report("pc-2", report).status_code == 200
    assert [s["cpu_percent"] for s in samples(org, "pc-2")] == [1, 2, 3]


def test_history_is_paged_or_bucketed(org, contract):
    now = time.time()
    for n in range(5):
        report = contract.sample_report(cpu_percent=10 * (n + 1), timestamp=agent_time(now - 3000 + 600 * n))
        assert org.report("pc-1", report).status_code == 200
    first = org.get(HISTORY, params={"machine_id": "pc-1", "limit": 2}).json()
    assert [s["cpu_percent"] for s in first["samples"]] == [10, 20] and first["next_offset"] == 2
    second = org.get(HISTORY, params={"machine_id": "pc-1", "limit": 2, "offset": 2}).json()
    assert [s["cpu_percent"] for s in second["samples"]] == [30, 40] and second["next_offset"] == 4
    last = org.get(HISTORY, params={"machine_id": "pc-1", "limit": 2, "offset": 4}).json()
    assert [s["cpu_percent"] for s in last["samples"]] == [50] and last["next_offset"] is None
    everything = org.get(HISTORY, params={"machine_id": "pc-1"}).json()
    assert len(everything["samples"]) == 5 and everything["next_offset"] is None

    bucketed = org.get(HISTORY, params={"machine_id": "pc-1", "bucket_seconds": 86400}).json()
    assert "samples" not in bucketed and bucketed["bucket_seconds"] == 86400
    assert sum(b["samples"] for b in bucketed["buckets"]) == 5
    assert 1 <= len(bucketed["buckets"]) <= 2  # the hour may straddle midnight UTC


def test_bad_history_paging_gets_422(org, contract):
    assert org.report("pc-1").status_code == 200
    for params in (
        {"limit": 0},
        {"limit": 5001},
        {"limit": "many"},
        {"offset": -1},
        {"bucket_seconds": 59},
        {"bucket_seconds": 86401},
        {"bucket_seconds": "hour"},
    ):
        contract.error(org.get(HISTORY, params={"machine_id": "pc-1", **params}), 422)


# -- 3. expired is capped --------------------------------------------------------------------


def test_expired_names_a_bounded_number_per_listing(server_factory):
    server = server_factory(fleet_ttl_seconds=2, offline_after_seconds=1, expired_list_max=3)
    org = server.org()
    ids = [f"pc-{n}" for n in range(5)]
    for machine_id in ids:
        assert org.ping(machine_id).status_code == 200
    time.sleep(3)
    named = []
    for expected in (3, 2, 0):
        listing = org.fleet()
        assert listing["count"] == 0 and len(listing["expired"]) == expected, listing
        named += listing["expired"]
    assert sorted(named) == ids  # each once, none lost


# -- 4. machine quota and the rate of new machines ------------------------------------------


def test_an_organisation_machine_quota(org, contract):
    enrol_key = org.server.make_key(org.name, "enroll")["api_key"]
    assert org.server.cli_json("org", "set", org.name, "--machine-quota", "2")["machine_quota"] == 2
    assert org.report("pc-1").status_code == 200
    assert org.ping("pc-2").status_code == 200
    for resp in (
        org.report("pc-3"),
        org.ping("pc-3"),
        org.post("/api/agent/enroll", json={"machine_id": "pc-3", "hardware_id": "hw"}, key=enrol_key),
    ):
        body = contract.error(resp, 403)
        assert "quota of 2 machines" in body["error"]
    assert org.machine_ids() == ["pc-1", "pc-2"]
    assert org.report("pc-1").status_code == 200 and org.ping("pc-2").status_code == 200  # known ones carry on

    assert org.server.cli_json("org", "set", org.name, "--machine-quota", "default")["machine_quota"] is None
    assert org.report("pc-3").status_code == 200


def test_new_machines_are_rate_limited_per_organisation(server_factory, contract):
    server = server_factory(new_machines_per_minute=3)
    org, other = server.org(), server.org()
    for n in range(3):
        assert org.ping(f"pc-{n}").status_code == 200
    contract.rate_limited(org.report("pc-3"))
    contract.rate_limited(org.ping("pc-4"))
    assert org.machine_ids() == ["pc-0", "pc-1", "pc-2"]
    assert org.report("pc-0").status_code == 200  # known machines are not limited
    assert other.ping("pc-3").status_code == 200  # another organisation counts apart
    body = json.loads(org.ping("pc-5").text)
    assert "new machines" in body["error"]
