"""History charts: the stored samples averaged into at most MAX_POINTS buckets, drawn by ECharts.

A week of reports every minute is about 10,000 samples; sending them all would cost the browser
far more than the chart shows, so the database averages them per bucket (a day: 2-minute buckets,
a week: 14-minute buckets). A silence longer than a few buckets breaks the line instead of
bridging it.
"""

from __future__ import annotations

from collections.abc import Iterable

SPANS = {"hour": 1, "day": 24, "week": 24 * 7}  # label -> hours
MAX_POINTS = 720
METRICS = (("cpu_percent", "CPU"), ("ram_percent", "RAM"), ("disk_percent", "Disk"))
COLOURS = ("#1e88e5", "#8e24aa", "#f4511e")


def bucket_seconds(hours: float) -> float:
    """One bucket per minute at most (the agent's default interval), MAX_POINTS at most."""
    return max(60.0, hours * 3600 / MAX_POINTS)


def with_gaps(buckets: Iterable[dict], *, width: float) -> list[dict]:
    """Chart points from the service's buckets (oldest first): each at its bucket's middle, and a
    None point where the machine was silent for longer than a few buckets."""
    points: list[dict] = []
    previous: int | None = None
    gap_buckets = max(3, int(300 // width))  # five minutes or three buckets, whichever is longer
    for bucket in buckets:
        index = round(bucket["ts"] / width)
        if previous is not None and index - previous > gap_buckets:
            points.append({"ts": (previous + 1) * width, **{key: None for key, _ in METRICS}})
        # A mean over unknown readings only (null sensors) is None: a break in that line.
        values = {key: None if bucket[key] is None else round(bucket[key], 1) for key, _ in METRICS}
        points.append({"ts": bucket["ts"] + width / 2, **values})
        previous = index
    return points


def chart_options(points: list[dict], *, hours: float, now: float) -> dict:
    """ECharts options for CPU, RAM and disk over [now - hours, now] (times in the browser's zone)."""
    axis_colour = "#8a8a8a"  # readable on the light and the dark background alike
    return {
        "animation": False,
        "color": list(COLOURS),
        "tooltip": {"trigger": "axis"},
        "legend": {"top": 0, "textStyle": {"color": axis_colour}},
        "grid": {"left": 40, "right": 12, "top": 32, "bottom": 28},
        "xAxis": {
            "type": "time",
            "min": int((now - hours * 3600) * 1000),
            "max": int(now * 1000),
            "axisLabel": {"color": axis_colour, "hideOverlap": True},
        },
        "yAxis": {
            "type": "value",
            "min": 0,
            "max": 100,
            "axisLabel": {"formatter": "{value}%", "color": axis_colour},
            "splitLine": {"lineStyle": {"opacity": 0.3}},
        },
        "series": [
            {
                "name": label,
                "type": "line",
                "showSymbol": len(points) < 30,
                "connectNulls": False,
                "data": [[int(p["ts"] * 1000), p[key]] for p in points],
            }
            for key, label in METRICS
        ],
    }
