"""The wire schemas refuse what the contract refuses and keep what it keeps."""

import json

import pytest
from pydantic import ValidationError

from common.schemas import NonFiniteNumber, PingIn, ReportIn, parse_json

GOOD = {"cpu_percent": 45.2, "ram_percent": 62, "disk_percent": 0}


def report(**fields):
    return {"machine_id": "pc-1", "report": {**GOOD, **fields}}


def test_minimal_report_is_accepted_and_extra_fields_kept():
    body = report(gpu={"temp": 61.5}, tags=["a", "b"])
    parsed = ReportIn.model_validate(parse_json(json.dumps(body).encode()))
    assert parsed.report.model_extra == {"gpu": {"temp": 61.5}, "tags": ["a", "b"]}


@pytest.mark.parametrize(
    "fields",
    [
        {"cpu_percent": "45"},  # a numeric string is not a number
        {"cpu_percent": True},  # nor is a bool
        {"cpu_percent": -0.1},
        {"disk_percent": 100.01},
        {"ram_used_gib": -1},
        {"uptime_seconds": "10"},
        {"timestamp": "yesterday"},
        {"timestamp": 1700000000},
        {"health": {"score": 101, "status": "ok"}},
        {"health": {"score": 50, "status": "fine"}},
        {"system": {"os": 3}},
        {"system": {"hostname": "h" * 257}},
        {"system": "Linux"},
    ],
)
def test_bad_report_fields_are_refused(fields):
    with pytest.raises(ValidationError):
        ReportIn.model_validate(report(**fields))


@pytest.mark.parametrize("key", ["cpu_percent", "ram_percent", "disk_percent"])
def test_a_sensor_the_agent_could_not_read_is_null(key):
    body = report(**{key: None}, health={"score": None, "status": None, "reasons": []})
    assert getattr(ReportIn.model_validate(body).report, key) is None


def test_missing_required_percentage_is_refused():
    body = report()
    del body["report"]["ram_percent"]
    with pytest.raises(ValidationError):
        ReportIn.model_validate(body)


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_a_validation_error_not_bad_json(literal):
    body = (
        f'{{"machine_id": "pc", "report": {{"cpu_percent": 1, "ram_percent": 1, "disk_percent": 1, "x": {literal}}}}}'
    )
    with pytest.raises(NonFiniteNumber):
        parse_json(body.encode())


def test_overflowing_number_in_an_extra_field_is_refused():
    body = (
        b'{"machine_id": "pc", "report": {"cpu_percent": 1, "ram_percent": 1, "disk_percent": 1, "x": [{"y": 1e400}]}}'
    )
    with pytest.raises(ValidationError):
        ReportIn.model_validate(parse_json(body))


@pytest.mark.parametrize("body", [b"", b"{", b"not json", b'{"a": 1', b"\xff\xfe"])
def test_malformed_json_is_a_value_error(body):
    with pytest.raises(ValueError) as caught:
        parse_json(body)
    assert not isinstance(caught.value, NonFiniteNumber)


@pytest.mark.parametrize(
    "machine_id",
    ["<img src=x onerror=alert(1)>", 'O\'Brien "laptop"', "機械-1", "a" * 200, " padded "],
)
def test_machine_ids_are_kept_exactly(machine_id):
    assert ReportIn.model_validate(report() | {"machine_id": machine_id}).machine_id == machine_id


@pytest.mark.parametrize("machine_id", ["", "   ", "a" * 201, "tab\there", "new\nline", "\x00", 42, None, ["a"]])
def test_bad_machine_ids_are_refused(machine_id):
    with pytest.raises(ValidationError):
        ReportIn.model_validate(report() | {"machine_id": machine_id})
    with pytest.raises(ValidationError):
        PingIn.model_validate({"machine_id": machine_id})


def test_ping_needs_only_a_machine_id_as_old_agents_send():
    ping = PingIn.model_validate({"machine_id": "pc"})
    assert (ping.hardware_id, ping.timestamp) == (None, None)
