"""Malformed bodies: each gets a clear 4xx with {"error": ...}, never a 5xx, and stores nothing."""

import json

import httpx
import pytest

DEFAULT_MAX_BODY_BYTES = 65536
NOT_JSON = (400, 422)
INVALID = (422,)


def report_body(cpu="10", ram="20", disk="30", extra="", machine_id='"pc-1"') -> bytes:
    """A report body written by hand, so that anything (NaN, 1e400, bad types) can be put in it."""
    return (
        f'{{"machine_id": {machine_id}, "report": {{"cpu_percent": {cpu}, "ram_percent": {ram}, '
        f'"disk_percent": {disk}{extra}}}}}'
    ).encode()


VALID_REPORT = report_body()

NOT_JSON_BODIES = {
    "empty": b"",
    "text": b"not json",
    "open brace": b"{",
    "truncated": VALID_REPORT[:-7],
    "single quotes": b"{'machine_id': 'pc-1'}",
    "trailing comma": VALID_REPORT[:-2] + b",}}",
    "invalid utf-8": VALID_REPORT.replace(b"pc-1", b"pc-\xff\xfe"),
    "binary": b"\x00\x01\x02\x03",
    "two documents": VALID_REPORT + VALID_REPORT,
}

REPORT_CASES = {
    # Valid JSON of the wrong shape.
    "array": (b"[]", INVALID),
    "array of a valid body": (b"[" + VALID_REPORT + b"]", INVALID),
    "null": (b"null", INVALID),
    "number": (b"42", INVALID),
    "string": (b'"pc-1"', INVALID),
    "empty object": (b"{}", INVALID),
    "no report": (b'{"machine_id": "pc-1"}', INVALID),
    "report null": (b'{"machine_id": "pc-1", "report": null}', INVALID),
    "report array": (b'{"machine_id": "pc-1", "report": []}', INVALID),
    "report string": (b'{"machine_id": "pc-1", "report": "cpu 10"}', INVALID),
    "report empty": (b'{"machine_id": "pc-1", "report": {}}', INVALID),
    # Percentages.
    "cpu NaN": (report_body(cpu="NaN"), INVALID),
    "cpu Infinity": (report_body(cpu="Infinity"), INVALID),
    "cpu -Infinity": (report_body(cpu="-Infinity"), INVALID),
    "cpu 1e400": (report_body(cpu="1e400"), INVALID),
    "cpu negative": (report_body(cpu="-1"), INVALID),
    "cpu above 100": (report_body(cpu="100.0001"), INVALID),
    "ram 1000": (report_body(ram="1000"), INVALID),
    "disk -0.5": (report_body(disk="-0.5"), INVALID),
    "cpu string": (report_body(cpu='"50"'), INVALID),
    "cpu bool": (report_body(cpu="true"), INVALID),
    # null is a sensor the agent could not read (accepted: test_report.py); a missing key is not.
    "cpu list": (report_body(cpu="[50]"), INVALID),
    "cpu object": (report_body(cpu='{"value": 50}'), INVALID),
    "no cpu": (b'{"machine_id": "pc-1", "report": {"ram_percent": 1, "disk_percent": 1}}', INVALID),
    "no ram": (b'{"machine_id": "pc-1", "report": {"cpu_percent": 1, "disk_percent": 1}}', INVALID),
    "no disk": (b'{"machine_id": "pc-1", "report": {"cpu_percent": 1, "ram_percent": 1}}', INVALID),
    # Optional fields with bad values.
    "timestamp not a date": (report_body(extra=', "timestamp": "yesterday"'), INVALID),
    "timestamp a number": (report_body(extra=', "timestamp": 1700000000'), INVALID),
    "ram_used_gib negative": (report_body(extra=', "ram_used_gib": -1'), INVALID),
    "disk_total_gib NaN": (report_body(extra=', "disk_total_gib": NaN'), INVALID),
    "uptime string": (report_body(extra=', "uptime_seconds": "5"'), INVALID),
    "uptime Infinity": (report_body(extra=', "uptime_seconds": Infinity'), INVALID),
    "uptime_hms number": (report_body(extra=', "uptime_hms": 5'), INVALID),
    "health score 101": (report_body(extra=', "health": {"score": 101, "status": "ok"}'), INVALID),
    "health bad status": (report_body(extra=', "health": {"score": 50, "status": "fine"}'), INVALID),
    "health a string": (report_body(extra=', "health": "ok"'), INVALID),
    "system a string": (report_body(extra=', "system": "Linux"'), INVALID),
    "system os number": (report_body(extra=', "system": {"os": 5}'), INVALID),
    "system hostname list": (report_body(extra=', "system": {"hostname": ["a"]}'), INVALID),
    # Extra fields are kept, so they must be finite too.
    "extra NaN": (report_body(extra=', "gpu_percent": NaN'), INVALID),
    "extra nested 1e400": (report_body(extra=', "sensors": {"temps": [40, 1e400]}'), INVALID),
    "extra in system Infinity": (report_body(extra=', "system": {"os": "Linux", "load": -Infinity}'), INVALID),
    **{f"not JSON: {label}": (body, NOT_JSON) for label, body in NOT_JSON_BODIES.items()},
}

PING_CASES = {
    "array": (b"[]", INVALID),
    "null": (b"null", INVALID),
    "empty object": (b"{}", INVALID),
    "timestamp string": (b'{"machine_id": "pc-1", "timestamp": "now"}', INVALID),
    "timestamp NaN": (b'{"machine_id": "pc-1", "timestamp": NaN}', INVALID),
    "timestamp Infinity": (b'{"machine_id": "pc-1", "timestamp": Infinity}', INVALID),
    "timestamp 1e400": (b'{"machine_id": "pc-1", "timestamp": 1e400}', INVALID),
    "timestamp bool": (b'{"machine_id": "pc-1", "timestamp": true}', INVALID),
    "timestamp list": (b'{"machine_id": "pc-1", "timestamp": [1]}', INVALID),
    "hardware_id number": (b'{"machine_id": "pc-1", "hardware_id": 5}', INVALID),
    "hardware_id object": (b'{"machine_id": "pc-1", "hardware_id": {}}', INVALID),
    **{f"not JSON: {label}": (body, NOT_JSON) for label, body in NOT_JSON_BODIES.items()},
}


def post_raw(org, path: str, body, **headers) -> httpx.Response:
    return org.post(path, content=body, headers={"Content-Type": "application/json", **headers})


def test_the_hand_written_body_is_valid(org):
    # Proves the cases below fail for their one defect, not for the template.
    assert post_raw(org, "/api/fleet/report", VALID_REPORT).status_code == 200
    assert org.machine_ids() == ["pc-1"]


@pytest.mark.parametrize("body,statuses", REPORT_CASES.values(), ids=REPORT_CASES.keys())
def test_bad_report_bodies_are_refused(quarantine, contract, body, statuses):
    contract.error(post_raw(quarantine, "/api/fleet/report", body), *statuses)
    quarantine.assert_empty()


@pytest.mark.parametrize("body,statuses", PING_CASES.values(), ids=PING_CASES.keys())
def test_bad_ping_bodies_are_refused(quarantine, contract, body, statuses):
    contract.error(post_raw(quarantine, "/api/fleet/ping", body), *statuses)
    quarantine.assert_empty()


def test_deeply_nested_json_is_refused_without_a_crash(quarantine, contract):
    depth = 20000  # 40 kB, under the body limit
    body = report_body(extra=', "deep": ' + "[" * depth + "]" * depth)
    contract.error(post_raw(quarantine, "/api/fleet/report", body), 400, 413, 422)
    quarantine.assert_empty()


# --- the body limit ------------------------------------------------------------------------


def padded_report(total_bytes: int) -> bytes:
    """A valid report body of exactly `total_bytes`, padded with an extra field."""
    empty = report_body(extra=', "padding": ""')
    return report_body(extra=', "padding": "' + "x" * (total_bytes - len(empty)) + '"')


def chunks(body: bytes, size: int = 4096):
    """A generator makes httpx send Transfer-Encoding: chunked, with no Content-Length."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def post_fresh(org, path: str, body, **headers) -> httpx.Response:
    """On a connection of its own: a server may close it after refusing a large body."""
    with httpx.Client(base_url=org.server.url, timeout=30) as client:
        return client.post(
            path,
            content=body,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {org.api_key}", **headers},
        )


def test_a_report_just_under_the_limit_is_accepted_and_its_known_fields_kept(org):
    body = padded_report(DEFAULT_MAX_BODY_BYTES - 100)
    resp = post_fresh(org, "/api/fleet/report", body)
    assert resp.status_code == 200 and resp.json()["dropped_fields"] == 1
    # The bulky unknown field is beyond what the server keeps of them (docs/security.md, finding 1).
    stored = org.machine("pc-1")["report"]
    assert "padding" not in stored and stored["cpu_percent"] == json.loads(body)["report"]["cpu_percent"]


@pytest.mark.parametrize("path", ["/api/fleet/report", "/api/fleet/ping"])
@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_bodies_over_the_limit_get_413(quarantine, contract, path, chunked):
    body = padded_report(DEFAULT_MAX_BODY_BYTES + 1)
    contract.error(post_fresh(quarantine, path, chunks(body) if chunked else body), 413)
    quarantine.assert_empty()


def test_a_huge_non_json_body_gets_413(quarantine, contract):
    contract.error(post_fresh(quarantine, "/api/fleet/report", b"x" * (4 * DEFAULT_MAX_BODY_BYTES)), 413)
    quarantine.assert_empty()


def test_the_body_limit_follows_the_setting(tuned_server, contract):
    org = tuned_server.org()  # MAX_BODY_BYTES=1024
    for body in (padded_report(1025), chunks(padded_report(1025), 100)):
        contract.error(post_fresh(org, "/api/fleet/report", body), 413)
    org.assert_empty()
    assert post_fresh(org, "/api/fleet/report", padded_report(1024)).status_code == 200
    assert org.machine_ids() == ["pc-1"]


# --- values some databases cannot store --------------------------------------------------


@pytest.fixture(scope="module")
def odd_org(server):
    """One organisation for the odd values: each test uses a machine id of its own."""
    org = server.org()
    assert org.report("pc-1").status_code == 200
    return org


@pytest.mark.parametrize(
    "field,value",
    [
        ("note", "a\u0000b"),  # NUL: PostgreSQL text and jsonb refuse it
        ("uptime_hms", "\u0000"),
        ("system", {"os": "Linux", "hostname": "host\u0000name"}),
        ("nested", {"k\u0000ey": ["\u0000"]}),
        ("big_int", 10**30),  # beyond 64 bits
        ("tiny", 5e-324),
    ],
)
def test_odd_but_valid_json_is_kept_exactly_or_refused_cleanly(odd_org, contract, field, value):
    machine_id = f"odd-{field}"
    resp = odd_org.report(machine_id, contract.sample_report(**{field: value}))
    if resp.status_code == 200:
        assert odd_org.machine(machine_id)["report"][field] == value
    else:
        contract.error(resp, 422)
        assert machine_id not in odd_org.machine_ids(limit=1000), "refused, yet stored"


@pytest.mark.parametrize(
    "params",
    [
        {"q": "\u0000"},
        {"os": "Li\u0000nux"},
        {"q": "x" * 5000},
    ],
    ids=["q NUL", "os NUL", "q 5000 chars"],
)
def test_odd_filter_values_never_cause_5xx(odd_org, contract, params):
    resp = odd_org.get("/api/fleet", params=params)
    if resp.status_code == 200:
        for machine in resp.json()["data"]:  # only what truly matches (a NUL hostname may, above)
            system = machine["system"] or {}
            if "q" in params:
                haystack = (machine["machine_id"] + " " + (system.get("hostname") or "")).lower()
                assert params["q"].lower() in haystack, f"{machine['machine_id']!r} does not match"
            else:
                assert (system.get("os") or "").lower() == params["os"].lower()
    else:
        contract.error(resp, 400, 414, 422)


@pytest.mark.parametrize("path", ["/api/fleet/machine", "/api/fleet/machine/history"])
def test_a_nul_in_a_machine_id_parameter_never_causes_5xx(odd_org, contract, path):
    contract.error(odd_org.get(path, params={"machine_id": "pc\u00001"}), 404, 422)


@pytest.mark.parametrize("endpoint", ["report", "ping"])
def test_an_odd_request_never_fails_other_organisations_requests_in_flight(server, contract, endpoint):
    """Writes may be committed together; one that the database cannot take must fail alone.

    The odd requests carry a NUL character (valid JSON, which PostgreSQL text cannot hold).
    """
    from concurrent.futures import ThreadPoolExecutor

    good_org, odd_org = server.org(), server.org()
    odd_report = contract.sample_report(system={"os": "Linux", "hostname": "bad\u0000host"})

    def send(n: int) -> tuple[str, httpx.Response | str]:
        kind = "odd" if n % 5 == 0 else "good"
        try:
            if endpoint == "ping":
                if kind == "odd":
                    return kind, odd_org.ping(f"odd-{n:03d}", hardware_id="hw\u0000")
                return kind, good_org.ping(f"good-{n:03d}")
            if kind == "odd":
                return kind, odd_org.report(f"odd-{n:03d}", odd_report)
            return kind, good_org.report(f"good-{n:03d}")
        except httpx.TransportError as exc:  # the server dropped the connection
            return kind, repr(exc)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(100)))
    outcomes = [getattr(resp, "status_code", resp) for kind, resp in results if kind == "good"]
    failed = [outcome for outcome in outcomes if outcome != 200]
    assert not failed, f"{len(failed)} of {len(outcomes)} good {endpoint}s failed: {sorted(set(map(str, failed)))}"
    assert good_org.fleet()["count"] == len(outcomes)
    for kind, resp in results:
        if kind == "odd":
            assert not isinstance(resp, str), f"an odd {endpoint} lost its connection: {resp}"
            if resp.status_code != 200:
                contract.error(resp, 422)
