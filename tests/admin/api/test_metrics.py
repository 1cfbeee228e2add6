"""Prometheus endpoints on a real server: GET /metrics (the server's own, behind its token) and
GET /api/fleet/metrics (an organisation's machines, read scope)."""

from __future__ import annotations

import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.api import bearer, sample_report
from tests.helpers.servers import ServerProcess

TOKEN = "metrics-token-for-the-tests-0123456789"


@pytest.fixture(scope="module")
def metrics_server(module_server_factory) -> ServerProcess:
    # Offline after 1 s and no cache: the tests read what they just caused.
    return module_server_factory(
        metrics_token=TOKEN,
        offline_after_seconds=1,
        fleet_ttl_seconds=3600,
        fleet_metrics_cache_seconds=0,
        feature_commands=True,
    )


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus text answer, by (name, labels); parsing it is the format check."""
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def scrape(server: ServerProcess, token: str = TOKEN) -> dict[tuple[str, frozenset], float]:
    resp = server.http.get("/metrics", headers=bearer(token))
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return samples(resp.text)


def reports_counted(figures: dict) -> float:
    key = (
        "dashfleet_http_requests_total",
        frozenset({"route": "/api/fleet/report", "method": "POST", "status": "200"}.items()),
    )
    return figures.get(key, 0.0)


# --- GET /metrics ------------------------------------------------------------------------------


def test_server_metrics_are_404_when_no_token_is_set(server):
    resp = server.http.get("/metrics", headers=bearer(TOKEN))
    assert resp.status_code == 404
    assert "DASHFLEET_METRICS_TOKEN" in resp.json()["error"]


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong-token"), {"Authorization": f"Basic {TOKEN}"}, bearer(TOKEN[:-1])],
    ids=["none", "wrong", "not bearer", "a prefix"],
)
def test_server_metrics_need_the_token(metrics_server, headers):
    resp = metrics_server.http.get("/metrics", headers=headers)
    assert resp.status_code == 401
    assert resp.json() == {"error": "Unauthorized"}


def test_an_organisation_key_is_not_the_metrics_token(metrics_server):
    org = metrics_server.org()
    assert metrics_server.http.get("/metrics", headers=bearer(org.api_key)).status_code == 401


def test_server_metrics_count_requests_writes_and_pool(metrics_server):
    org = metrics_server.org()
    before = reports_counted(scrape(metrics_server))
    for i in range(3):
        assert org.report(f"m-{i}").status_code == 200
    assert org.report("m-bad", sample_report(cpu_percent=101)).status_code == 422
    figures = scrape(metrics_server)
    assert reports_counted(figures) == before + 3
    refused = (
        "dashfleet_http_requests_total",
        frozenset({"route": "/api/fleet/report", "method": "POST", "status": "422"}.items()),
    )
    assert figures[refused] >= 1
    assert (
        figures[("dashfleet_http_request_duration_seconds_count", frozenset({"route": "/api/fleet/report"}.items()))]
        >= 4
    )
    assert figures[("dashfleet_write_batch_size_count", frozenset())] >= 3
    assert ("dashfleet_write_queue_depth", frozenset()) in figures
    assert ("dashfleet_db_connections_in_use", frozenset()) in figures
    assert ("dashfleet_backlog", frozenset({"queue": "deliveries"}.items())) in figures


def test_the_delivery_backlog_counts_queued_commands(metrics_server):
    org = metrics_server.org()
    admin_key = metrics_server.make_key(org.name, "admin")["api_key"]
    assert org.report("away-1").status_code == 200
    backlog = ("dashfleet_backlog", frozenset({"queue": "deliveries"}.items()))
    before = scrape(metrics_server)[backlog]
    sent = org.post("/api/commands", key=admin_key, json={"kind": "report_now", "machine_ids": ["away-1"]})
    assert sent.status_code == 201, sent.text
    assert scrape(metrics_server)[backlog] == before + 1


def test_machine_ids_never_become_route_labels(metrics_server):
    org = metrics_server.org()
    org.get("/api/fleet/machine", params={"id": "secret-looking-id-42"})
    metrics_server.http.get("/api/no/such/path/42")
    text = metrics_server.http.get("/metrics", headers=bearer(TOKEN)).text
    assert "secret-looking-id-42" not in text and "/api/no/such/path/42" not in text
    assert 'route="/api/other"' in text


def test_two_processes_of_one_host_are_summed(server_factory):
    """A scrape through a load balancer reaches one process; it must still count both."""
    first = server_factory(metrics_token=TOKEN)
    second = ServerProcess(first.workdir, first.env).start()  # same data dir, same database
    try:
        org = first.org()
        for _ in range(3):
            assert org.report("pc-1").status_code == 200
        for _ in range(2):
            assert org.via(second).report("pc-1").status_code == 200
        assert reports_counted(scrape(first)) == reports_counted(scrape(second)) == 5
    finally:
        second.stop()


# --- GET /api/fleet/metrics ----------------------------------------------------------------------


def fleet_samples(org) -> dict[tuple[str, frozenset], float]:
    resp = org.get("/api/fleet/metrics")
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain")
    return samples(resp.text)


def labels(machine_id: str, hostname: str = "", os: str = "") -> frozenset:
    return frozenset({"machine_id": machine_id, "hostname": hostname, "os": os}.items())


def test_fleet_metrics_show_each_machine(metrics_server):
    org = metrics_server.org()
    # Quotes, a backslash and markup: the text format escapes them; the parser must read them back.
    odd = 'desk "7" \\ <b>'
    report = sample_report(
        cpu_percent=45.5, ram_percent=60.0, disk_percent=70.25, system={"os": "Windows", "hostname": "PC-7"}
    )
    assert org.report(odd, report).status_code == 200
    assert org.ping("only-pings").status_code == 200
    figures = fleet_samples(org)
    who = labels(odd, "PC-7", "Windows")
    assert figures[("dashfleet_machine_up", who)] == 1
    assert abs(figures[("dashfleet_machine_last_seen_timestamp_seconds", who)] - time.time()) < 60
    assert figures[("dashfleet_machine_cpu_percent", who)] == 45.5
    assert figures[("dashfleet_machine_ram_percent", who)] == 60.0
    assert figures[("dashfleet_machine_disk_percent", who)] == 70.25
    # The server scores reports itself (an agent's own score is not trusted): the listing's score.
    assert figures[("dashfleet_machine_health_score", who)] == org.machine(odd)["health_score"]
    # Known only from heartbeats: alive, but its sensors are unknown, so they have no sample.
    assert figures[("dashfleet_machine_up", labels("only-pings"))] == 1
    assert ("dashfleet_machine_cpu_percent", labels("only-pings")) not in figures


def test_fleet_metrics_mark_a_silent_machine_down(metrics_server):
    org = metrics_server.org()
    assert org.ping("quiet").status_code == 200
    time.sleep(1.5)  # the module's server calls a machine offline after 1 s
    assert fleet_samples(org)[("dashfleet_machine_up", labels("quiet"))] == 0


def test_fleet_metrics_are_the_organisations_own(metrics_server):
    mine, theirs = metrics_server.org(), metrics_server.org()
    assert theirs.report("their-secret-machine").status_code == 200
    assert mine.report("my-machine").status_code == 200
    text = mine.get("/api/fleet/metrics").text
    assert "my-machine" in text and "their-secret-machine" not in text


def test_fleet_metrics_need_a_read_key(metrics_server, contract):
    org = metrics_server.org()
    agent_only = metrics_server.make_key(org.name, "agent")["api_key"]
    contract.unauthorized(metrics_server.http.get("/api/fleet/metrics"))
    contract.unauthorized(org.get("/api/fleet/metrics", key="api_" + "x" * 43))
    resp = org.get("/api/fleet/metrics", key=agent_only)
    assert resp.status_code == 403 and "read" in resp.json()["error"]


def test_fleet_metrics_are_documented(metrics_server):
    paths = metrics_server.openapi()["paths"]
    assert "get" in paths["/api/fleet/metrics"]
