"""History charts: a machine's history over an hour to a year (services/history.py picks the tier),
drawn by ECharts as each metric's mean line inside its min-max band.

Each range comes as at most 730 buckets, so the browser gets a few hundred points whatever the
span. A silence longer than a few buckets breaks the line and the band instead of bridging it.
"""

from __future__ import annotations

from collections.abc import Iterable

from admin.services.history import RANGES, RangeName
from admin.services.public import HistoryRangeBucket

METRICS = (("cpu", "CPU"), ("ram", "RAM"), ("disk", "Disk"))
COLOURS = ("#1e88e5", "#8e24aa", "#f4511e")
TIER_WORDS = {"raw": "samples", "5m": "5-minute rollups", "1h": "hourly rollups"}
RANGE_NAMES: tuple[RangeName, ...] = tuple(RANGES)
# The axis tooltip lists each metric once, as "CPU 38.7% (10.0-95.0)", from the mean series' points
# ([time, mean, min, max]); the band's own series (stacked offsets) are left out. Numbers only.
TOOLTIP_FORMATTER = """params => {
  const rows = params.filter(p => String(p.seriesId).endsWith('-mean') && p.value[1] !== null);
  if (!rows.length) return '';
  const time = new Date(rows[0].value[0]).toLocaleString();
  return time + rows.map(p => '<br/>' + p.marker + p.seriesName + ' ' + p.value[1] + '% ('
    + p.value[2] + '\u2013' + p.value[3] + ')').join('');
}"""


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def points(buckets: Iterable[HistoryRangeBucket], *, width: float) -> list[dict]:
    """Chart points from the buckets (oldest first): each at its bucket's middle with every
    metric's mean, min and max, and an empty point where the machine was silent for longer than a
    few buckets. A metric without readings in a bucket (null sensors) is None there: a break."""
    out: list[dict] = []
    previous: int | None = None
    gap_buckets = max(3, int(300 // width))  # five minutes or three buckets, whichever is longer
    for bucket in buckets:
        index = round(bucket.ts / width)
        if previous is not None and index - previous > gap_buckets:
            out.append({"ts": (previous + 1) * width, **{key: (None, None, None) for key, _ in METRICS}})
        values = {
            key: (
                _round(getattr(bucket, f"{key}_percent")),
                _round(getattr(bucket, f"{key}_min")),
                _round(getattr(bucket, f"{key}_max")),
            )
            for key, _ in METRICS
        }
        out.append({"ts": bucket.ts + width / 2, **values})
        previous = index
    return out


def _series(key: str, label: str, colour: str, data: list[dict]) -> list[dict]:
    """The metric's band (its min, then max - min stacked on it, filled) and its mean line. All
    three carry the metric's name, so its legend entry shows and hides them together."""
    quiet = {"type": "line", "name": label, "showSymbol": False, "connectNulls": False, "silent": True}
    quiet |= {"stack": f"{key}-band", "stackStrategy": "all", "lineStyle": {"opacity": 0}}
    low = [p[key][1] for p in data]
    high = [p[key][2] for p in data]
    return [
        {
            **quiet,
            "id": f"{key}-low",
            "data": [[int(p["ts"] * 1000), lo] for p, lo in zip(data, low, strict=True)],
        },
        {
            **quiet,
            "id": f"{key}-band",
            "areaStyle": {"color": colour, "opacity": 0.18},
            "data": [
                [int(p["ts"] * 1000), None if lo is None or hi is None else round(hi - lo, 1)]
                for p, lo, hi in zip(data, low, high, strict=True)
            ],
        },
        {
            "type": "line",
            "name": label,
            "id": f"{key}-mean",
            "showSymbol": len(data) < 30,
            "connectNulls": False,
            "lineStyle": {"color": colour},
            "itemStyle": {"color": colour},
            "data": [[int(p["ts"] * 1000), *p[key]] for p in data],
        },
    ]


def chart_options(data: list[dict], *, span_seconds: float, now: float) -> dict:
    """ECharts options for CPU, RAM and disk over [now - span, now] (times in the browser's zone)."""
    axis_colour = "#8a8a8a"  # readable on the light and the dark background alike
    return {
        "animation": False,
        "color": list(COLOURS),
        "tooltip": {"trigger": "axis", ":formatter": TOOLTIP_FORMATTER},
        "legend": {"top": 0, "data": [label for _, label in METRICS], "textStyle": {"color": axis_colour}},
        "grid": {"left": 40, "right": 12, "top": 32, "bottom": 28},
        "xAxis": {
            "type": "time",
            "min": int((now - span_seconds) * 1000),
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
            series
            for (key, label), colour in zip(METRICS, COLOURS, strict=True)
            for series in _series(key, label, colour, data)
        ],
    }
