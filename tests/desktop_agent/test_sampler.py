"""A sample is a valid common.schemas.Report whose health is the shared score of its figures."""

from __future__ import annotations

import psutil

from common.health import compute_health
from common.schemas import ReportIn
from desktop_agent import collectors
from desktop_agent.sampler import take_sample


def test_a_sample_is_what_the_server_accepts():
    collectors.prime_cpu()
    payload = take_sample().as_payload()
    ReportIn.model_validate({"machine_id": "pc-1", "report": payload})  # the server's own check
    for key in ("cpu_percent", "ram_percent", "disk_percent"):
        assert 0 <= payload[key] <= 100
    assert {
        "timestamp",
        "ram_used_gib",
        "ram_total_gib",
        "disk_used_gib",
        "disk_total_gib",
        "uptime_seconds",
        "uptime_hms",
        "health",
        "system",
    } <= set(payload)
    assert "unavailable" not in payload


def test_health_is_the_shared_score_of_the_reported_figures():
    sample = take_sample()
    r = sample.report
    expected = compute_health(r["cpu_percent"], r["ram_percent"], r["disk_percent"])
    assert sample.health == expected
    assert sample.as_payload()["health"] == expected.as_dict()


def test_a_failed_required_reading_is_sent_as_null_and_the_report_still_goes(monkeypatch):
    def refuse(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(psutil, "disk_usage", refuse)
    sample = take_sample()
    payload = sample.as_payload()
    assert payload["disk_percent"] is None and "disk_used_gib" not in payload
    assert "unavailable" not in payload  # the old way (0 and a list), no longer sent
    assert sample.unavailable == ("disk_percent",)
    assert "Disk unknown (could not be read)" in payload["health"]["reasons"]
    # The score is the others' alone: an unreadable disk is not a comfortable 0 %.
    assert sample.health == compute_health(payload["cpu_percent"], payload["ram_percent"], None)
    assert sample.health.score == compute_health(payload["cpu_percent"], payload["ram_percent"], None).score
    ReportIn.model_validate({"machine_id": "pc-1", "report": payload})
