"""The shared health score: thresholds as data, reasons that explain the status."""

import pytest

from common.health import SCORE_CRITICAL_BELOW, THRESHOLDS, compute_health


def test_idle_machine_is_perfectly_healthy():
    health = compute_health(5, 20, 30)
    assert (health.score, health.status, health.reasons) == (100, "ok", ())


def test_contract_example_scores_78():
    # The status line in CONTRACT.md: CPU 45.2% RAM 62.1% Disk 34.5% -> Score 78/100.
    assert compute_health(45.2, 62.1, 34.5).score == 78


def test_saturated_machine_scores_zero_and_is_critical():
    health = compute_health(100, 100, 100)
    assert health.score == 0
    assert health.status == "critical"
    assert len(health.reasons) == len(THRESHOLDS) + 1  # every metric and the score itself


@pytest.mark.parametrize("metric", list(THRESHOLDS))
def test_each_metric_crossing_its_warning_line_warns(metric):
    values = {"cpu_percent": 5.0, "ram_percent": 5.0, "disk_percent": 5.0}
    values[metric] = THRESHOLDS[metric].warning
    health = compute_health(**values)
    assert health.status == "warning"
    assert health.reasons == (
        f"{THRESHOLDS[metric].label} {THRESHOLDS[metric].warning:.0f}% (warning at {THRESHOLDS[metric].warning:.0f}%)",
    )


@pytest.mark.parametrize("metric", list(THRESHOLDS))
def test_each_metric_crossing_its_critical_line_is_critical(metric):
    values = {"cpu_percent": 5.0, "ram_percent": 5.0, "disk_percent": 5.0}
    values[metric] = THRESHOLDS[metric].critical
    assert compute_health(**values).status == "critical"


def test_score_falls_monotonically_as_load_rises():
    scores = [compute_health(v, v, v).score for v in range(0, 101, 5)]
    assert scores == sorted(scores, reverse=True)
    assert scores[0] == 100 and scores[-1] == 0


def test_low_score_alone_is_a_reason():
    # Every metric below its warning line, yet the machine as a whole is struggling.
    warning = compute_health(70, 70, 80)
    assert (warning.status, warning.reasons) == ("warning", (f"score {warning.score} (warning below 50)",))
    critical = compute_health(84, 84, 89)
    assert critical.score < SCORE_CRITICAL_BELOW
    assert (critical.status, critical.reasons) == ("critical", (f"score {critical.score} (critical below 25)",))


def test_as_dict_is_the_wire_shape():
    assert compute_health(45.2, 62.1, 34.5).as_dict() == {"score": 78, "status": "ok", "reasons": []}


def test_an_unknown_metric_is_left_out_of_the_score_and_named():
    # An unreadable disk (None) is not a comfortable 0 %: the score is CPU's and RAM's alone.
    health = compute_health(90.0, 20.0, None)
    weights = THRESHOLDS["cpu_percent"].weight + THRESHOLDS["ram_percent"].weight
    cpu_sub = 100 * (100 - 90.0) / (100 - THRESHOLDS["cpu_percent"].comfortable)
    assert health.score == round(
        (cpu_sub * THRESHOLDS["cpu_percent"].weight + 100 * THRESHOLDS["ram_percent"].weight) / weights
    )
    assert health.score != compute_health(90.0, 20.0, 0.0).score
    assert health.status == "warning"  # CPU 90 % still warns
    assert health.unknown == ("disk_percent",)
    assert "Disk unknown (could not be read)" in health.reasons


def test_with_no_metric_known_there_is_no_score():
    health = compute_health(None, None, None)
    assert (health.score, health.status) == (None, None)
    assert health.unknown == tuple(THRESHOLDS)
    assert health.as_dict()["score"] is None
