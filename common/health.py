"""The local health score: one formula for the tray, the server and the web UI.

Each metric has a comfortable level (no penalty below it) and warning/critical thresholds, kept as
data so the tray, the server and the docs explain a score the same way. The score is a weighted
mean of per-metric sub-scores that fall linearly from 100 at the comfortable level to 0 at 100 %.

A metric the agent could not read is None (unknown): it is left out of the mean (the others'
weights are scaled up), named in the reasons, and never counts as a comfortable 0 %. With no metric
known there is no score and no status.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

HealthStatus = Literal["ok", "warning", "critical"]


@dataclass(frozen=True)
class Threshold:
    label: str
    weight: float
    comfortable: float
    warning: float
    critical: float


THRESHOLDS: dict[str, Threshold] = {
    "cpu_percent": Threshold("CPU", 0.30, comfortable=20.0, warning=85.0, critical=95.0),
    "ram_percent": Threshold("RAM", 0.35, comfortable=40.0, warning=85.0, critical=95.0),
    "disk_percent": Threshold("Disk", 0.35, comfortable=50.0, warning=90.0, critical=97.0),
}
# A low overall score is itself a reason, even when no single metric crossed its line.
SCORE_WARNING_BELOW = 50
SCORE_CRITICAL_BELOW = 25


@dataclass(frozen=True)
class Health:
    score: int | None  # None: no metric could be read
    status: HealthStatus | None
    reasons: tuple[str, ...]
    unknown: tuple[str, ...] = ()  # the metrics (keys of THRESHOLDS) that could not be read

    def as_dict(self) -> dict[str, Any]:
        return {"score": self.score, "status": self.status, "reasons": list(self.reasons)}


def _sub_score(value: float, threshold: Threshold) -> float:
    if value <= threshold.comfortable:
        return 100.0
    return max(0.0, 100.0 * (100.0 - value) / (100.0 - threshold.comfortable))


def compute_health(cpu_percent: float | None, ram_percent: float | None, disk_percent: float | None) -> Health:
    """Score 0..100 (higher is healthier), a status and the reasons behind it; None is unknown."""
    values = {"cpu_percent": cpu_percent, "ram_percent": ram_percent, "disk_percent": disk_percent}
    known = {k: (v, THRESHOLDS[k]) for k, v in values.items() if v is not None}
    unknown = tuple(k for k, v in values.items() if v is None)
    unknown_reasons = tuple(f"{THRESHOLDS[k].label} unknown (could not be read)" for k in unknown)
    if not known:
        return Health(score=None, status=None, reasons=unknown_reasons, unknown=unknown)
    weighted = sum(_sub_score(v, t) * t.weight for v, t in known.values())
    score = int(round(weighted / sum(t.weight for _, t in known.values())))

    status: HealthStatus = "ok"
    reasons: list[str] = list(unknown_reasons)
    for value, t in known.values():
        if value >= t.critical:
            status = "critical"
            reasons.append(f"{t.label} {value:.0f}% (critical at {t.critical:.0f}%)")
        elif value >= t.warning:
            status = "critical" if status == "critical" else "warning"
            reasons.append(f"{t.label} {value:.0f}% (warning at {t.warning:.0f}%)")
    if score < SCORE_CRITICAL_BELOW:
        status = "critical"
        reasons.append(f"score {score} (critical below {SCORE_CRITICAL_BELOW})")
    elif score < SCORE_WARNING_BELOW and status == "ok":
        status = "warning"
        reasons.append(f"score {score} (warning below {SCORE_WARNING_BELOW})")
    return Health(score=score, status=status, reasons=tuple(reasons), unknown=unknown)
