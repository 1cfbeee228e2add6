"""The project's further endpoints: one machine, its history, and deleting it (scope `admin`)."""

import time
from datetime import UTC, datetime

import httpx

MACHINE = "/api/fleet/machine"
HISTORY = "/api/fleet/machine/history"


def agent_time(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


def delete(org, machine_id, key):
    return org.request("DELETE", MACHINE, params={"machine_id": machine_id}, key=key)


def test_one_machine_is_its_listing_entry(org, contract):
    assert org.report("pc-1", contract.sample_report(system={"os": "Darwin"})).status_code == 200
    assert org.ping("pc-2").status_code == 200
    resp = org.get(MACHINE, params={"machine_id": "pc-1"})
    assert resp.status_code == 200
    assert resp.json() == org.machine("pc-1")
    assert org.get(MACHINE, params={"machine_id": "pc-2"}).json()["report"] == {}
    # A machine known only from heartbeats has a history, empty.
    history = org.get(HISTORY, params={"machine_id": "pc-2"})
    assert history.status_code == 200 and history.json()["samples"] == []


def test_unknown_missing_or_bad_parameters_are_refused(org, contract):
    assert org.report("pc-1").status_code == 200
    for path in (MACHINE, HISTORY):
        contract.error(org.get(path, params={"machine_id": "pc-404"}), 404)
        contract.error(org.get(path, params={"machine_id": "PC-1"}), 404)  # ids are exact
        contract.error(org.get(path), 422)
        contract.error(org.get(path, params={"machine_id": ""}), 404, 422)
    for hours in (0, -1, 169, "day", "", "1e9"):
        contract.error(org.get(HISTORY, params={"machine_id": "pc-1", "hours": hours}), 422)


def test_history_lists_report_samples_oldest_first(org, contract):
    before = time.time()
    for n, cpu in enumerate((10, 20, 30)):
        # Measured a minute apart (history keeps one sample per machine per 5 s), as a queue sends them.
        report = contract.sample_report(
            cpu_percent=cpu, ram_percent=cpu + 1, disk_percent=cpu + 2, timestamp=agent_time(before - 180 + 60 * n)
        )
        assert org.report("pc-1", report).status_code == 200
    history = org.get(HISTORY, params={"machine_id": "pc-1"}).json()
    assert history["machine_id"] == "pc-1"
    samples = history["samples"]
    assert [(s["cpu_percent"], s["ram_percent"], s["disk_percent"]) for s in samples] == [
        (10, 11, 12),
        (20, 21, 22),
        (30, 31, 32),
    ]
    stamps = [s["ts"] for s in samples]
    assert stamps == sorted(stamps) and stamps[0] >= before - 185
    assert all(0 <= s["score"] <= 100 for s in samples)
    for hours in (1, 168):
        assert len(org.get(HISTORY, params={"machine_id": "pc-1", "hours": hours}).json()["samples"]) == 3


def test_delete_needs_admin_and_removes_the_machine_and_its_history(server, contract):
    org = server.org()
    admin_key = server.make_key(org.name, "admin")["api_key"]
    assert org.report("pc-1").status_code == 200
    assert org.report("pc-2").status_code == 200

    contract.error(delete(org, "pc-1", key=org.api_key), 403)  # agent + read is not enough
    assert org.machine_ids() == ["pc-1", "pc-2"]

    resp = delete(org, "pc-1", key=admin_key)
    assert resp.status_code in (200, 204), resp.text
    listing = org.fleet()
    assert [m["machine_id"] for m in listing["data"]] == ["pc-2"]
    assert listing["expired"] == []  # deleted by hand, not expired
    contract.error(org.get(MACHINE, params={"machine_id": "pc-1"}), 404)
    contract.error(org.get(HISTORY, params={"machine_id": "pc-1"}), 404)
    contract.error(delete(org, "pc-1", key=admin_key), 404)
    contract.error(delete(org, "never-was", key=admin_key), 404)

    # If the machine reports again it starts afresh.
    assert org.report("pc-1").status_code == 200
    assert len(org.get(HISTORY, params={"machine_id": "pc-1"}).json()["samples"]) == 1


def test_endpoints_are_documented_in_openapi(server):
    paths = server.openapi()["paths"]
    assert {"get", "delete"} <= set(paths[MACHINE])
    assert "get" in paths[HISTORY]
    for path in (
        "/api/status",
        "/api/config",
        "/api/fleet",
        "/api/fleet/public",
        "/api/fleet/report",
        "/api/fleet/ping",
    ):
        assert path in paths


def test_openapi_documents_the_bearer_key_and_the_error_body(server, contract):
    schema = server.openapi()
    scheme = schema["components"]["securitySchemes"]
    assert [s["scheme"] for s in scheme.values()] == ["bearer"]  # /api/docs offers "Authorize"
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if not path.startswith("/api/"):
                continue  # /downloads/ and /install/ are public by design (their own tests)
            needs_key = path not in ("/api/status", "/api/config")
            assert bool(operation.get("security")) == needs_key, (method, path)
            errors = {code: r for code, r in operation["responses"].items() if code.startswith(("4", "5"))}
            if needs_key:
                assert {"401", "403"} <= set(errors), (method, path)
            for code, response in errors.items():  # every error documented is the contract's body
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorOut", (method, path, code)
    assert schema["components"]["schemas"]["ErrorOut"]["required"] == ["error"]
    # What is documented is what is answered: a real 401 has that shape.
    body = contract.error(httpx.get(server.url + "/api/fleet"), 401)
    assert set(body) == {"error"}


def _resolve(schema: dict, node: dict) -> dict:
    ref = node.get("$ref")
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else node


def _ok_shape(schema: dict, method: str, path: str, variant: str | None = None) -> dict:
    """The 200 answer's schema; of a route that answers one of several shapes (anyOf), the one
    with the property `variant`."""
    content = schema["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
    if "anyOf" in content:
        shapes = [_resolve(schema, option) for option in content["anyOf"]]
        return next(shape for shape in shapes if variant in shape["properties"])
    return _resolve(schema, content)


def test_openapi_documents_the_real_shapes_of_what_is_answered(server, org):
    """Every fleet route documents its answer's fields, and a real answer has exactly those."""
    schema = server.openapi()
    org.report("shape-1")
    machine = org.get("/api/fleet/machine", params={"machine_id": "shape-1"}).json()
    answers = {
        ("get", "/api/fleet"): org.fleet(),
        ("get", "/api/fleet/public"): org.get("/api/fleet/public").json(),
        ("get", "/api/fleet/machine"): machine,
        ("get", HISTORY, "samples"): org.get(HISTORY, params={"machine_id": "shape-1"}).json(),
        ("get", HISTORY, "buckets"): org.get(HISTORY, params={"machine_id": "shape-1", "bucket_seconds": 60}).json(),
        ("get", HISTORY, "tier"): org.get(HISTORY, params={"machine_id": "shape-1", "range": "year"}).json(),
        ("post", "/api/fleet/report"): org.report("shape-1").json(),
        ("post", "/api/fleet/ping"): org.ping("shape-1").json(),
    }
    for (method, path, *variant), answer in answers.items():
        shape = _ok_shape(schema, method, path, *variant)
        assert set(answer) <= set(shape["properties"]), (method, path)  # optional fields may be absent
        assert set(shape.get("required", [])) <= set(answer), (method, path)
    listing = _ok_shape(schema, "get", "/api/fleet")
    machine_shape = _resolve(schema, listing["properties"]["data"]["items"])
    assert set(machine_shape["properties"]) == set(machine) >= {"id", "machine_id", "org_id", "status", "report"}
    assert machine_shape["properties"]["status"]["enum"] == ["online", "offline"]
    samples = _resolve(schema, _ok_shape(schema, "get", HISTORY, "samples")["properties"]["samples"]["items"])
    assert set(samples["properties"]) == {"ts", "cpu_percent", "ram_percent", "disk_percent", "score"}
