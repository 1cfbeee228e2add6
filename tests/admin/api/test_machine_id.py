"""machine_id: any printable string of 1..200 characters, stored and shown exactly as given."""

import pytest

VALID_IDS = {
    "html": "<img src=x onerror=alert(1)>",
    "script": "<script>alert('x')</script>",
    "quotes": "O'Brien's \"laptop\"",
    "sql": "'; DROP TABLE machines; --",
    "like wildcards": "100%_done",
    "path": "../../etc/passwd",
    "backslashes": "C:\\Users\\pc",
    "unicode": "ПК-бухгалтерия №5 🖥️ 東京",
    "spaces inside and around": "  Front desk PC  ",
    "200 ascii": "a" * 200,
    "200 non-ascii": "é" * 200,
    "200 emoji": "🖥" * 200,
    "one character": "x",
    "url encoded look": "pc%2F1?x=1&y=2#frag",
}

INVALID_IDS = {
    "201 ascii": "a" * 201,
    "201 non-ascii": "é" * 201,
    "empty": "",
    "space only": " ",
    "whitespace only": " \t ",
    "newline": "pc\n1",
    "carriage return": "pc\r1",
    "tab": "pc\t1",
    "nul": "pc\x001",
    "escape sequence": "\x1b[31mred",
    "delete char": "pc\x7f",
    "line separator": "pc\u20281",
    "integer": 123,
    "float": 1.5,
    "true": True,
    "null": None,
    "list": ["pc-1"],
    "object": {"id": "pc-1"},
}


def test_valid_ids_are_stored_and_shown_exactly(org):
    # One organisation for all of them (each is one more machine): cheaper, and shows they coexist.
    for label, machine_id in VALID_IDS.items():
        assert org.report(machine_id).status_code == 200, label
        assert org.ping(machine_id).status_code == 200, label

    listing = org.fleet()
    assert listing["count"] == len(VALID_IDS)
    assert [m["machine_id"] for m in listing["data"]] == sorted(VALID_IDS.values())
    assert all(m["id"] == m["machine_id"] for m in listing["data"])

    for label, machine_id in VALID_IDS.items():
        one = org.get("/api/fleet/machine", params={"machine_id": machine_id})
        assert one.status_code == 200 and one.json()["machine_id"] == machine_id, label
        history = org.get("/api/fleet/machine/history", params={"machine_id": machine_id})
        assert history.status_code == 200 and history.json()["machine_id"] == machine_id, label
        assert machine_id in [m["machine_id"] for m in org.fleet(q=machine_id)["data"]], label


def test_ids_differing_only_in_case_or_spacing_are_different_machines(org):
    for machine_id in ("PC-1", "pc-1", "pc-1 ", " pc-1"):
        assert org.report(machine_id).status_code == 200
    assert org.machine_ids() == [" pc-1", "PC-1", "pc-1", "pc-1 "]


@pytest.mark.parametrize("machine_id", INVALID_IDS.values(), ids=INVALID_IDS.keys())
def test_invalid_ids_get_422_and_store_nothing(quarantine, contract, machine_id):
    contract.error(quarantine.report(machine_id), 422)
    contract.error(quarantine.ping(machine_id), 422)
    quarantine.assert_empty()


@pytest.mark.parametrize("path", ["/api/fleet/report", "/api/fleet/ping"])
def test_a_missing_id_gets_422(quarantine, contract, path):
    body = {"report": {"cpu_percent": 1, "ram_percent": 1, "disk_percent": 1}}
    contract.error(quarantine.post(path, json=body), 422)
    quarantine.assert_empty()
