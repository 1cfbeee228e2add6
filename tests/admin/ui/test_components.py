"""The UI's pure parts: formatting, the fleet view's validation, history downsampling."""

from __future__ import annotations

from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.ui.components import history_chart
from admin.ui.components.fleet_view import FleetView, machine_href
from admin.ui.components.format import duration, exact_time, relative_time, zone


@pytest.mark.parametrize(
    "seconds_ago,text",
    [
        (-30, "just now"),
        (0, "just now"),
        (4.9, "just now"),
        (5, "5 s ago"),
        (59, "59 s ago"),
        (60, "1 min ago"),
        (3599, "59 min ago"),
        (3600, "1 h ago"),
        (86399, "23 h ago"),
        (86400, "1 d ago"),
        (10 * 86400, "10 d ago"),
    ],
)
def test_relative_time(seconds_ago, text) -> None:
    assert relative_time(1000.0 - seconds_ago, 1000.0) == text


@pytest.mark.parametrize(
    "seconds,text",
    [
        (1, "1 s"),
        (0.5, "0.5 s"),
        (45, "45 s"),
        (300, "5 min"),
        (90, "1.5 min"),
        (5400, "1.5 h"),
        (86400, "1 d"),
    ],
)
def test_duration(seconds, text) -> None:
    assert duration(seconds) == text


def test_an_unknown_or_hostile_zone_falls_back_to_utc() -> None:
    for name in (None, "", "Not/AZone", "../../etc/passwd", "x" * 300):
        assert zone(name) is UTC
    assert exact_time(0, zone("Asia/Tokyo")) == "1970-01-01 09:00:00 JST"


def test_a_stored_view_with_bad_values_keeps_the_defaults() -> None:
    stored = {
        "q": "  pc-  ",
        "status": "hacked",
        "health": 5,
        "os": "",
        "page": True,
        "rows_per_page": 10**9,
        "sort_by": "password_hash",
        "descending": "yes",
        "unknown": 1,
    }
    assert FleetView.from_storage(stored) == FleetView(q="pc-")
    assert FleetView.from_storage("garbage") == FleetView()
    assert FleetView.from_storage({"q": "x" * 1000}).q == "x" * 200


def test_quasar_pagination_maps_to_the_view() -> None:
    view = FleetView().with_pagination({"page": 3, "rowsPerPage": 50, "sortBy": "cpu_percent", "descending": True})
    assert (view.page, view.rows_per_page, view.sort_by, view.descending, view.offset) == (
        3,
        50,
        "cpu_percent",
        True,
        100,
    )
    assert view.with_pagination({"page": 3, "rowsPerPage": 50, "sortBy": None}).sort_by == "machine_id"
    assert view.last_page(101) == 3 and view.last_page(0) == 1


@given(st.text(min_size=1, max_size=200))
def test_every_machine_id_makes_a_local_link(machine_id: str) -> None:
    href = machine_href(machine_id)
    assert href.startswith("/machine?id=")
    assert all(c.isalnum() or c in "%-._~" for c in href.removeprefix("/machine?id="))


def test_chart_points_sit_mid_bucket_and_silences_break_the_line() -> None:
    width = history_chart.bucket_seconds(24)
    assert width == 120  # a day in 720 points
    base = 1_000_000 * width
    buckets = [
        {"ts": base + n * width, "cpu_percent": cpu, "ram_percent": 50.0, "disk_percent": 10.04, "samples": 2}
        for n, cpu in ((0, 15.0), (1, 40.0), (30, 90.0))
    ]
    points = history_chart.with_gaps(buckets, width=width)
    assert [p["cpu_percent"] for p in points] == [15.0, 40.0, None, 90.0]
    assert [p["ts"] for p in points if p["cpu_percent"] is not None] == [base + 60, base + 180, base + 3660]
    assert points[0]["disk_percent"] == 10.0


def test_a_week_fits_the_point_budget() -> None:
    width = history_chart.bucket_seconds(24 * 7)
    assert 7 * 86400 / width <= history_chart.MAX_POINTS
    options = history_chart.chart_options([], hours=24 * 7, now=1e9 + 7 * 86400)
    assert [s["name"] for s in options["series"]] == ["CPU", "RAM", "Disk"]
    assert options["xAxis"]["min"] == int(1e12)
