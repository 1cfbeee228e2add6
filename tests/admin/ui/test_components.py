"""The UI's pure parts: formatting, the fleet view's validation, history downsampling."""

from __future__ import annotations

from datetime import UTC

import pytest
from hypothesis import given
from hypothesis import strategies as st

from admin.services.history import RANGES
from admin.services.public import HistoryRangeBucket
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


def _bucket(ts: float, cpu: float | None, low: float | None, high: float | None) -> HistoryRangeBucket:
    count = 0 if cpu is None else 2
    fields = {"ts": ts, "samples": 2, "cpu_percent": cpu, "cpu_min": low, "cpu_max": high, "cpu_count": count}
    for metric in ("ram", "disk"):
        fields |= {f"{metric}_percent": 50.0, f"{metric}_min": 40.04, f"{metric}_max": 60.0, f"{metric}_count": 2}
    fields |= {"score": 80.0, "score_min": 70.0, "score_max": 90.0, "score_count": 2}
    return HistoryRangeBucket.model_validate(fields)


def test_chart_points_sit_mid_bucket_and_silences_break_the_line() -> None:
    width = 120  # the day's buckets
    base = 1_000_000 * width
    buckets = [_bucket(base, 15.0, 10.0, 20.0), _bucket(base + width, 40.0, 5.0, 95.0)]
    buckets += [_bucket(base + 30 * width, None, None, None)]  # a CPU that could not be read
    points = history_chart.points(buckets, width=width)
    assert [p["cpu"] for p in points] == [(15.0, 10.0, 20.0), (40.0, 5.0, 95.0), (None, None, None), (None, None, None)]
    assert [p["ts"] for p in points] == [base + 60, base + 180, base + 240, base + 3660]  # the gap, then the point
    assert points[0]["ram"] == (50.0, 40.0, 60.0)


def test_the_band_is_the_min_and_the_span_to_the_max_under_the_mean_line() -> None:
    width = 900
    points = history_chart.points([_bucket(9e8, 38.7, 10.0, 95.0)], width=width)
    options = history_chart.chart_options(points, span_seconds=7 * 86400, now=9e8 + 7 * 86400)
    series = {s["id"]: s for s in options["series"]}
    at = int((9e8 + width / 2) * 1000)
    assert series["cpu-low"]["data"] == [[at, 10.0]] and series["cpu-band"]["data"] == [[at, 85.0]]
    assert series["cpu-band"]["stack"] == series["cpu-low"]["stack"] and "areaStyle" in series["cpu-band"]
    assert series["cpu-mean"]["data"] == [[at, 38.7, 10.0, 95.0]]
    # One legend entry per metric shows and hides its line and band together.
    assert options["legend"]["data"] == ["CPU", "RAM", "Disk"]
    assert {s["name"] for s in options["series"] if s["id"].startswith("cpu-")} == {"CPU"}


@pytest.mark.parametrize("range_name", history_chart.RANGE_NAMES)
def test_every_range_fits_the_point_budget(range_name) -> None:
    span, width = RANGES[range_name]
    assert span / width <= 730
    options = history_chart.chart_options([], span_seconds=span, now=1e9 + span)
    assert options["xAxis"]["min"] == int(1e12)
