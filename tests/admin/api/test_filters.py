"""GET /api/fleet filters and paging: os, status, q, limit, offset; stable order; count = matches."""

import pytest

# machine id -> (os, hostname); "ping-only" has neither.
MACHINES = {
    "alpha-01": ("Linux", "Build-Server"),
    "Bravo-02": ("Windows", "reception-pc"),
    "charlie-03": ("Darwin", "MacBook-Alpha"),
    "delta-04": ("Linux", "db-primary"),
}


@pytest.fixture(scope="module")
def fleet_org(server):
    """One organisation with a small, varied fleet; the tests here only read it."""
    org = server.org()
    for machine_id, (os_name, hostname) in MACHINES.items():
        report = {
            "cpu_percent": 1,
            "ram_percent": 2,
            "disk_percent": 3,
            "system": {"os": os_name, "hostname": hostname},
        }
        assert org.report(machine_id, report).status_code == 200
    assert org.ping("ping-only").status_code == 200
    return org


ALL_IDS = sorted([*MACHINES, "ping-only"])


@pytest.mark.parametrize(
    "os_param,expected",
    [
        ("Linux", ["alpha-01", "delta-04"]),
        ("linux", ["alpha-01", "delta-04"]),
        ("LINUX", ["alpha-01", "delta-04"]),
        ("windows", ["Bravo-02"]),
        ("DaRwIn", ["charlie-03"]),
        ("Lin", []),  # exact, not a prefix
        ("FreeBSD", []),
    ],
)
def test_os_filter_is_exact_in_any_case(fleet_org, os_param, expected):
    listing = fleet_org.fleet(os=os_param)
    assert [m["machine_id"] for m in listing["data"]] == expected
    assert listing["count"] == len(expected)


@pytest.mark.parametrize(
    "q,expected",
    [
        ("alpha", ["alpha-01", "charlie-03"]),  # an id, and a hostname (MacBook-Alpha)
        ("ALPHA", ["alpha-01", "charlie-03"]),
        ("bravo", ["Bravo-02"]),
        ("RECEPTION", ["Bravo-02"]),  # hostname only
        ("-0", ["Bravo-02", "alpha-01", "charlie-03", "delta-04"]),
        ("ping", ["ping-only"]),
        ("zulu", []),
        ("%", []),  # not a SQL wildcard
        ("_", []),
        ("  bravo  ", ["Bravo-02"]),  # surrounding spaces ignored, as in the web UI
    ],
)
def test_q_searches_id_and_hostname_in_any_case(fleet_org, q, expected):
    listing = fleet_org.fleet(q=q)
    assert [m["machine_id"] for m in listing["data"]] == expected
    assert listing["count"] == len(expected)


def test_any_case_is_not_only_ascii(server):
    org = server.org()
    report = {
        "cpu_percent": 1,
        "ram_percent": 2,
        "disk_percent": 3,
        "system": {"os": "Windows", "hostname": "Empfang-ÄÖÜ"},
    }
    assert org.report("büro-01", report).status_code == 200
    assert org.report("office-02", {**report, "system": {"os": "Linux", "hostname": "front-desk"}}).status_code == 200
    for q in ("büro", "BÜRO", "äöü", "ÄÖÜ", "empfang-äöü"):
        assert [m["machine_id"] for m in org.fleet(q=q)["data"]] == ["büro-01"], q


def test_machines_are_sorted_by_machine_id(fleet_org):
    # Code-point order, the same on every database: upper case sorts before lower case.
    assert fleet_org.machine_ids() == ALL_IDS == ["Bravo-02", "alpha-01", "charlie-03", "delta-04", "ping-only"]


def test_pages_are_stable_and_count_all_matches(fleet_org):
    pages = []
    for offset in range(0, 6, 2):
        listing = fleet_org.fleet(limit=2, offset=offset)
        assert listing["count"] == len(ALL_IDS)
        pages.append([m["machine_id"] for m in listing["data"]])
    assert pages == [ALL_IDS[0:2], ALL_IDS[2:4], ALL_IDS[4:]]

    beyond = fleet_org.fleet(limit=2, offset=100)
    assert beyond["data"] == [] and beyond["count"] == len(ALL_IDS)


def test_filters_combine_and_count_only_matches(fleet_org):
    listing = fleet_org.fleet(os="linux", q="db", limit=1)
    assert [m["machine_id"] for m in listing["data"]] == ["delta-04"]
    assert listing["count"] == 1
    listing = fleet_org.fleet(os="linux", limit=1, offset=1)
    assert [m["machine_id"] for m in listing["data"]] == ["delta-04"]
    assert listing["count"] == 2
    assert fleet_org.fleet(status="online", os="windows")["count"] == 1
    assert fleet_org.fleet(status="offline")["count"] == 0


def test_limit_defaults_to_100_and_goes_up_to_1000(server):
    org = server.org()
    for n in range(101):
        assert org.ping(f"m{n:03d}").status_code == 200
    default = org.fleet()
    assert default["count"] == 101 and len(default["data"]) == 100
    assert default["data"][-1]["machine_id"] == "m099"
    assert len(org.fleet(limit=1000)["data"]) == 101
    assert [m["machine_id"] for m in org.fleet(limit=5, offset=99)["data"]] == ["m099", "m100"]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 1001},
        {"limit": -1},
        {"limit": "ten"},
        {"limit": "1.5"},
        {"limit": ""},
        {"offset": -1},
        {"offset": "first"},
        {"offset": "99999999999999999999999999"},
        {"limit": "99999999999999999999999999"},
        {"status": "sleeping"},
        {"status": "ONLINE!"},
        {"status": ""},
    ],
    ids=lambda params: "&".join(f"{k}={v}" for k, v in params.items()),
)
def test_invalid_filters_get_422(fleet_org, contract, params):
    for path in ("/api/fleet", "/api/fleet/public"):
        body = contract.error(fleet_org.get(path, params=params), 422)
        assert "data" not in body
