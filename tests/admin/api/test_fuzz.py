"""Property tests: whatever a client sends, no 5xx; a refusal has an error body; a refused request
stores nothing (the machines listed are exactly those of the accepted requests).

Hypothesis runs inside each test (not as a decorator on it) so the server and organisation
fixtures are made once per test, not once per example.
"""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPORT, PING = "/api/fleet/report", "/api/fleet/ping"
REFUSALS = (400, 401, 403, 404, 405, 409, 413, 415, 422, 429)
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

json_scalars = (
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
percent = st.floats(min_value=0, max_value=100) | st.integers(min_value=0, max_value=100)
# Mostly plausible, sometimes wrong: so that both acceptance and each refusal get exercised.
maybe = lambda good: good | json_values  # noqa: E731
system = st.dictionaries(
    st.sampled_from(["os", "os_version", "platform", "architecture", "hostname", "hardware_id", "extra"]),
    maybe(st.text(max_size=20)),
    max_size=4,
)
report = st.fixed_dictionaries(
    {"cpu_percent": maybe(percent), "ram_percent": maybe(percent), "disk_percent": maybe(percent)},
    optional={
        "timestamp": maybe(st.just("2026-01-02T15:30:45+00:00")),
        "uptime_seconds": maybe(st.integers(min_value=0)),
        "health": maybe(
            st.fixed_dictionaries({"score": percent, "status": st.sampled_from(["ok", "warning", "critical"])})
        ),
        "system": maybe(system),
        "extra": json_values,
    },
)
machine_id = st.text(min_size=0, max_size=210) | json_values
bodies = (
    st.fixed_dictionaries(
        {"machine_id": machine_id, "report": maybe(report)},
        optional={"timestamp": maybe(st.floats()), "hardware_id": maybe(st.text())},
    )
    | json_values
)


def post_json(org, method: str, path: str, body: object, **kwargs):
    """Like httpx's json=, but writes float NaN/inf as the literals NaN/Infinity (httpx refuses)."""
    content = json.dumps(body, ensure_ascii=False).encode()
    return org.request(method, path, content=content, headers={"Content-Type": "application/json"}, **kwargs)


def test_random_agent_bodies_never_cause_5xx_and_store_only_what_was_accepted(org, contract):
    accepted = set()

    @FUZZ
    @given(path=st.sampled_from([REPORT, PING]), body=bodies)
    def check(path, body):
        resp = post_json(org, "POST", path, body)
        assert resp.status_code < 500, f"{path} {body!r}: {resp.status_code} {resp.text[:300]}"
        if resp.status_code == 200:
            accepted.add(body["machine_id"])
        else:
            contract.error(resp, *REFUSALS)

    check()
    assert sorted(org.machine_ids(limit=1000)) == sorted(accepted)


def test_random_bytes_never_cause_5xx(quarantine, contract):
    @FUZZ
    @given(path=st.sampled_from([REPORT, PING]), body=st.binary(max_size=300))
    def check(path, body):
        resp = quarantine.post(path, content=body, headers={"Content-Type": "application/json"})
        assert resp.status_code < 500, f"{path} {body!r}: {resp.status_code} {resp.text[:300]}"
        contract.error(resp, *REFUSALS)

    check()
    quarantine.assert_empty()


def api_operations(schema: dict) -> list[tuple[str, str, list[str], bool]]:
    """(method, path, query parameter names, takes a body) of each API operation in the schema."""
    operations = []
    for path, item in schema["paths"].items():
        if not path.startswith("/api/") or "{" in path:
            continue
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                names = [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query"]
                operations.append((method.upper(), path, names, "requestBody" in operation))
    return operations


query_values = (
    st.text(max_size=40)
    | st.integers(min_value=-(2**70), max_value=2**70).map(str)
    | st.sampled_from(["", "0", "1", "1000", "1001", "-1", "online", "offline", "Linux", "pc-1"])
)


def test_every_openapi_operation_survives_random_parameters(server, contract):
    org = server.org()
    # The widest key, so that requests get past authorisation and reach the code behind it.
    key = server.make_key(org.name, "agent", "read", "admin")["api_key"]
    assert org.report("pc-1").status_code == 200
    operations = api_operations(server.openapi())
    assert len(operations) >= 6, operations

    @FUZZ
    @given(data=st.data())
    def check(data):
        method, path, names, takes_body = data.draw(st.sampled_from(operations))
        params = data.draw(st.fixed_dictionaries({}, optional=dict.fromkeys(names, query_values)))
        body = data.draw(bodies) if takes_body else None
        resp = (
            post_json(org, method, path, body, params=params, key=key)
            if takes_body
            else org.request(method, path, params=params, key=key)
        )
        kwargs = {"params": params, "body": body}
        assert resp.status_code < 500, f"{method} {path} {kwargs!r}: {resp.status_code} {resp.text[:300]}"
        if resp.status_code >= 400:
            contract.error(resp, *REFUSALS)

    check()


@pytest.mark.parametrize("path", [REPORT, PING])
def test_unsupported_methods_are_refused_cleanly(quarantine, path):
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        resp = quarantine.request(method, path)
        assert resp.status_code in (404, 405), f"{method} {path}: {resp.status_code}"
    quarantine.assert_empty()
