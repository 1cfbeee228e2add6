"""A report that waited in the agent's queue is charted when it was measured, while liveness
stays on the server's clock."""

import time
from datetime import UTC, datetime, timedelta

HISTORY = "/api/fleet/machine/history"


def iso(delta: timedelta, tz=UTC) -> str:
    return (datetime.now(tz) + delta).replace(tzinfo=tz).isoformat(timespec="seconds")


def samples(org, machine_id: str, hours: float) -> list[dict]:
    resp = org.get(HISTORY, params={"machine_id": machine_id, "hours": hours})
    assert resp.status_code == 200, resp.text
    return resp.json()["samples"]


def test_queued_report_is_charted_at_its_own_time_but_counts_as_seen_now(org, contract):
    before = time.time()
    assert org.report("queued", contract.sample_report(timestamp=iso(timedelta(hours=-2)))).status_code == 200
    assert samples(org, "queued", hours=1) == []
    (sample,) = samples(org, "queued", hours=3)
    assert before - 2 * 3600 - 60 < sample["ts"] < before - 2 * 3600 + 60
    machine = org.machine("queued")
    assert machine["status"] == "online" and machine["last_seen"] >= before  # the server's clock


def test_untrusted_agent_times_fall_back_to_receipt_time(org, contract):
    before = time.time()
    stamps = {
        "future": iso(timedelta(hours=5)),
        "naive": iso(timedelta(hours=-2)).replace("+00:00", ""),  # no time zone: ambiguous
        "ancient": iso(timedelta(days=-400)),  # beyond the retention
    }
    for machine_id, stamp in stamps.items():
        assert org.report(machine_id, contract.sample_report(timestamp=stamp)).status_code == 200
        (sample,) = samples(org, machine_id, hours=1)
        assert sample["ts"] >= before, machine_id
