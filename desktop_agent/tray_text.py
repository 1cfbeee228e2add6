"""What the person reads about the agent's state: the menu's health lines, the tooltip, the
summary a click shows, and the local warnings' text. Pure functions of AgentState (tested from
the service's real state), in the person's language (desktop_agent.i18n); the tray backends and
the warnings only display them.
"""

from __future__ import annotations

from datetime import datetime

from common.health import SCORE_WARNING_BELOW, THRESHOLDS
from desktop_agent.collectors import system_drive
from desktop_agent.i18n import Texts
from desktop_agent.sampler import Sample
from desktop_agent.service import AgentState

# Windows cuts tray tooltips at 127 characters.
MAX_TOOLTIP = 127


def disk_name() -> str:
    """The system disk as the person knows it: "C:" on Windows, "/" elsewhere."""
    return system_drive().rstrip("\\") or "/"


def reasons(sample: Sample, texts: Texts) -> list[tuple[str, str]]:
    """(metric, sentence) for each reason the health is not ok, worst first: "Disk C: 95% full".

    Built from the readings and common.health's thresholds (the same the score uses), so it can
    be said in the person's language; "score" when only the overall score is low.
    """
    report = sample.report
    over: list[tuple[float, str, str]] = []  # (how far past the warning line, metric, sentence)
    unreadable: list[tuple[str, str]] = []
    for key, threshold in THRESHOLDS.items():
        if key in sample.unavailable:
            unreadable.append(("unavailable", texts("reason.unavailable", metric=texts(f"metric.{key}"))))
            continue
        value = float(report[key])
        if value >= threshold.warning:
            sentence = texts(f"reason.{key}", value=texts.percent(value), disk=disk_name())
            over.append((value - threshold.warning, key, sentence))
    result = [(key, sentence) for _, key, sentence in sorted(over, key=lambda item: -item[0])]
    score = sample.health.score
    if not result and sample.health.status != "ok" and score is not None and score < SCORE_WARNING_BELOW:
        result.append(("score", texts("reason.score", score=score)))
    return result + unreadable


def _usage(sample: Sample, texts: Texts) -> str:
    def value(key: str) -> str:
        return texts("not_available") if key in sample.unavailable else texts.percent(float(sample.report[key]))

    return texts("line.usage", cpu=value("cpu_percent"), ram=value("ram_percent"), disk=value("disk_percent"))


def _when(moment: datetime, now: datetime) -> str:
    return f"{moment:%H:%M:%S}" if moment.date() == now.date() else f"{moment:%Y-%m-%d %H:%M}"


def server_line(state: AgentState, texts: Texts) -> str:
    if state.paused:
        line = texts("line.paused")
    elif state.connected:
        line = texts("line.server_connected")
    elif state.connected is None:
        line = texts("line.server_unknown")
    else:
        line = texts("line.server_unreachable")
    if state.queued:
        waiting = texts("line.queued.one") if state.queued == 1 else texts("line.queued.many", count=state.queued)
        line += f" ({waiting})"
    return line


def health_lines(state: AgentState, texts: Texts, now: datetime | None = None) -> list[str]:
    """The menu's lines, top to bottom: health and score, the reasons (when not ok), the readings,
    the last report's time, the server's state with the queue."""
    now = now or datetime.now()
    sample = state.sample
    if sample is None:
        lines = [texts("line.health_unknown")]
    else:
        status = texts(f"status.{sample.health.status or 'unknown'}")  # None: no sensor could be read
        score = sample.health.score
        lines = [texts("line.health", status=status, score="?" if score is None else score)]
        if sample.health.status != "ok":
            lines += [sentence for _, sentence in reasons(sample, texts)]
        lines.append(_usage(sample, texts))
    if state.last_report_at is None:
        lines.append(texts("line.last_report_none"))
    else:
        lines.append(texts("line.last_report", when=_when(state.last_report_at, now)))
    lines.append(server_line(state, texts))
    return lines


def tooltip(state: AgentState, key: str, texts: Texts) -> str:
    """The state in words (key: desktop_agent.icons.icon_key), then the first reason or the readings."""
    lines = [texts(f"tooltip.{key}")]
    sample = state.sample
    if sample is not None:
        found = reasons(sample, texts) if sample.health.status != "ok" else []
        lines.append(found[0][1] if found else _usage(sample, texts))
    if key in ("unreachable", "paused") or state.queued:
        lines.append(server_line(state, texts))
    return "\n".join(lines)[:MAX_TOOLTIP]


def summary(state: AgentState, texts: Texts, now: datetime | None = None) -> tuple[str, str]:
    """The default click's notification: (title, body) with the menu's lines."""
    lines = health_lines(state, texts, now)
    if state.sample is None:
        return texts("summary.title_unknown"), "\n".join(lines)
    status = texts(f"status.{state.sample.health.status or 'unknown'}")
    return texts("summary.title", status=status), "\n".join(lines[1:])


def warning_text(sample: Sample, texts: Texts) -> tuple[str, str]:
    """A local warning: (title, body) with the reasons and what the person can do about them."""
    found = reasons(sample, texts)
    advice: list[str] = []
    for key, _ in found:
        text = texts(f"advice.{key}") if key != "unavailable" else ""
        if text and text not in advice:
            advice.append(text)
    body = "\n".join([sentence for _, sentence in found] + advice)
    return texts(f"warning.title.{sample.health.status}"), body
