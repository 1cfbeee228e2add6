"""Turning stored values into the short texts the pages show (pure functions, easy to test).

Times are stored as server Unix time (UTC); they become local time only here, in the zone the
browser reported at sign-in (UTC when it did not say).
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str | None) -> tzinfo:
    """The browser's IANA zone; an unknown or missing name falls back to UTC rather than failing."""
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def exact_time(ts: float | None, tz: tzinfo) -> str:
    if ts is None:
        return "never"
    return datetime.fromtimestamp(ts, tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def clock_time(ts: float, tz: tzinfo) -> str:
    return datetime.fromtimestamp(ts, tz).strftime("%H:%M:%S")


def relative_time(ts: float | None, now: float) -> str:
    """'just now', '42 s ago', '5 min ago', '3 h ago', '2 d ago' (a clock skew reads as 'just now')."""
    if ts is None:
        return "never"
    seconds = now - ts
    if seconds < 5:
        return "just now"
    if seconds < 60:
        return f"{int(seconds)} s ago"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return f"{int(seconds // 86400)} d ago"


def duration(seconds: float) -> str:
    """A setting's length as people say it: '45 s', '5 min', '1.5 h', '1 d'."""
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            value = seconds / size
            return f"{value:g} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{seconds:g} s"


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f}%"


def sensor(report: dict, key: str) -> str:
    """A reported percentage: "–" before any report, "unknown" for a sensor the agent could not
    read (null, or 0 named in an earlier agent's `unavailable`), else the figure."""
    if not report:
        return "–"
    value = report.get(key)
    unavailable = report.get("unavailable")
    if value is None or (isinstance(unavailable, list) and key in unavailable):
        return "unknown"
    return percent(value)


def gib(used: object, total: object) -> str:
    if isinstance(used, (int, float)) and isinstance(total, (int, float)):
        return f"{used:.1f} / {total:.1f} GiB"
    return "–"


def text(value: object) -> str:
    """Any stored value as plain text for a label ('–' when absent)."""
    if value is None or value == "":
        return "–"
    return str(value)
