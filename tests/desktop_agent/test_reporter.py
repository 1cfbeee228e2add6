"""Retries, backoff and Retry-After (httpx.MockTransport: the one place a fake server is allowed),
and TLS verification against a real TLS server with a private CA."""

from __future__ import annotations

import json
import random
import shutil
import ssl
from email.utils import formatdate

import httpx
import pytest
from agent_helpers import make_private_ca, run_agent_once, serve_tls

from desktop_agent.config import AgentConfig
from desktop_agent.reporter import Backoff, NoTLS, Reporter, _tls_context, parse_retry_after
from desktop_agent.service import AgentService

OK = {"ok": True, "timestamp": 1.0}


class Script:
    """Answers requests from a list, records them and the reporter's waits."""

    def __init__(self, *answers):
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def sleep(self, seconds: float) -> bool:
        self.sleeps.append(seconds)
        return False

    def reporter(self, **kwargs) -> Reporter:
        kwargs.setdefault("rng", random.Random(7))
        kwargs.setdefault("sleep", self.sleep)
        return Reporter("http://fleet.test", "api_secret", transport=httpx.MockTransport(self.handler), **kwargs)


def answer(status: int, body=None, **headers) -> httpx.Response:
    return httpx.Response(
        status,
        json=body if body is not None else {"error": "nope"},
        headers={k.replace("_", "-"): v for k, v in headers.items()},
    )


def test_a_report_is_posted_with_the_key_and_the_contract_body():
    script = Script(answer(200, OK))
    outcome = script.reporter().send_report("pc-1", {"cpu_percent": 1.0})
    assert outcome.ok and outcome.status == 200 and script.sleeps == []
    request = script.requests[0]
    assert request.url == "http://fleet.test/api/fleet/report"
    assert request.headers["Authorization"] == "Bearer api_secret"
    assert request.headers["User-Agent"].startswith("dashfleet-agent/")
    assert json.loads(request.content) == {"machine_id": "pc-1", "report": {"cpu_percent": 1.0}}


def test_a_queued_report_is_sent_as_the_json_text_it_was_stored_as():
    script = Script(answer(200, OK))
    assert script.reporter().send_report('pc "1" <é>', '{"cpu_percent":1.5}').ok
    request = script.requests[0]
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"machine_id": 'pc "1" <é>', "report": {"cpu_percent": 1.5}}


def test_a_ping_carries_the_hardware_id_and_the_agents_clock():
    script = Script(answer(200, {"ok": True, "timestamp": 5.0, "server_time_offset": 0.1}))
    outcome = script.reporter().ping("pc-1", "hw-1")
    body = json.loads(script.requests[0].content)
    assert outcome.ok and outcome.body["server_time_offset"] == 0.1
    assert body["machine_id"] == "pc-1" and body["hardware_id"] == "hw-1" and isinstance(body["timestamp"], float)


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_in_seconds_is_obeyed(status):
    script = Script(answer(status, Retry_After="7"), answer(200, OK))
    outcome = script.reporter().send_report("pc-1", {})
    assert outcome.ok and script.sleeps == [7.0] and len(script.requests) == 2


def test_retry_after_as_an_http_date_is_obeyed():
    when = formatdate(timeval=__import__("time").time() + 20, usegmt=True)
    script = Script(answer(429, Retry_After=when), answer(200, OK))
    assert script.reporter().send_report("pc-1", {}).ok
    assert 15 <= script.sleeps[0] <= 21


def test_a_long_retry_after_is_left_to_the_caller_instead_of_blocking():
    script = Script(answer(503, Retry_After="120"))
    outcome = script.reporter(max_inline_wait=30).send_report("pc-1", {})
    assert not outcome.ok and outcome.transient and outcome.retry_after == 120
    assert script.sleeps == [] and len(script.requests) == 1


def test_transient_failures_back_off_exponentially_with_jitter_then_give_up():
    script = Script(*[answer(502)] * 4)
    outcome = script.reporter(max_attempts=4, backoff_base=1.0, backoff_cap=3.0).send_report("pc-1", {})
    assert not outcome.ok and outcome.status == 502 and outcome.transient and len(script.requests) == 4
    # Ceilings 1, 2, then capped at 3; each wait is 50-100 % of its ceiling.
    for wait, ceiling in zip(script.sleeps, [1.0, 2.0, 3.0], strict=True):
        assert ceiling / 2 <= wait <= ceiling


def test_network_errors_are_outcomes_not_exceptions_and_are_retried():
    script = Script(httpx.ConnectError("[Errno 111] Connection refused"), httpx.ReadTimeout("slow"), answer(200, OK))
    assert script.reporter().send_report("pc-1", {}).ok and len(script.sleeps) == 2

    script = Script(*[httpx.ConnectError("[Errno 111] Connection refused")] * 3)
    outcome = script.reporter().send_report("pc-1", {})
    assert outcome.status is None and not outcome.reached and outcome.transient
    assert outcome.error == "server unreachable ([Errno 111] Connection refused)"


@pytest.mark.parametrize(
    ("status", "refused"), [(400, True), (413, True), (422, True), (401, False), (403, False), (404, False)]
)
def test_client_errors_are_not_retried_and_only_bad_bodies_count_as_refused(status, refused):
    """A 422 will never be accepted (drop it); a 401/404 says the settings are wrong (keep it)."""
    script = Script(answer(status, {"error": "Unauthorized"}))
    outcome = script.reporter().send_report("pc-1", {})
    assert len(script.requests) == 1 and script.sleeps == []
    assert not outcome.ok and not outcome.transient and outcome.refused is refused
    assert outcome.error == f"HTTP {status} Unauthorized"


def test_a_200_that_is_not_the_apis_answer_is_not_taken_as_accepted():
    """A captive portal's page must not make the agent delete a queued report."""
    script = Script(httpx.Response(200, text="<html>Sign in to the Wi-Fi</html>"))
    outcome = script.reporter().send_report("pc-1", {})
    assert not outcome.ok and not outcome.refused and "not a DashFleet answer" in outcome.error


def test_quitting_cuts_the_retries_short():
    script = Script(answer(503, Retry_After="5"), answer(200, OK))
    reporter = script.reporter(sleep=lambda seconds: True)  # the agent is quitting
    assert not reporter.send_report("pc-1", {}).ok and len(script.requests) == 1


def test_backoff_grows_to_its_cap_and_resets():
    backoff = Backoff(base=2, cap=10, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(6)]
    ceilings = [2, 4, 8, 10, 10, 10]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings))
    assert len(set(delays)) == len(delays), "jitter: machines that failed together must not retry together"
    assert backoff.next_delay(retry_after=42) == 42
    backoff.reset()
    assert 1 <= backoff.next_delay() <= 2


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("30", 30.0), ("0", 0.0), ("-5", 0.0), ("1e9", 3600.0), ("soon", None), ("", None), (None, None), ("nan", None)],
)
def test_retry_after_parsing(header, seconds):
    assert parse_retry_after(header) == seconds


# --- TLS: a real server on 127.0.0.1 with a certificate from a private CA ---


@pytest.fixture(scope="module")
def private_ca(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    return make_private_ca(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def tls_server(private_ca):
    with serve_tls(*private_ca) as url:
        yield url, str(private_ca[1])


def test_tls_is_verified_and_a_ca_bundle_makes_a_private_ca_trusted(tls_server):
    url, ca_bundle = tls_server
    untrusted = Reporter(url, "api_x", max_attempts=1)
    outcome = untrusted.send_report("pc-1", {})
    assert not outcome.ok and outcome.status is None and "CERTIFICATE_VERIFY_FAILED" in outcome.error
    untrusted.close()

    trusted = Reporter(url, "api_x", ca_bundle=ca_bundle, max_attempts=1)
    assert trusted.send_report("pc-1", {}).ok
    trusted.close()


def test_the_real_agent_verifies_tls_and_trusts_a_ca_bundle_given_on_the_command_line(tls_server, agent_dirs):
    url, ca_bundle = tls_server
    args = ["--server", url, "--token", "api_" + "x" * 43, "--machine-id", "pc-tls", "--no-tray", "--once"]
    untrusted = run_agent_once(agent_dirs, *args)
    assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr, untrusted.stderr
    trusted = run_agent_once(agent_dirs, *args, "--ca-bundle", ca_bundle)
    assert trusted.returncode == 0, trusted.stderr
    assert " OK HTTP 200 | " in trusted.stdout


def test_an_http_server_gets_no_tls_and_any_attempt_at_tls_fails_closed(tls_server):
    """For http:// the agent never uses TLS, so it builds no TLS context (0.4 MiB of RSS, about 1
    more with a CA store). Should a TLS connection ever be tried with what it gives httpx instead, here
    to the real TLS server, it fails: never a connection without verification."""
    url, ca_bundle = tls_server
    plain = _tls_context("http://fleet.example:8080", ca_bundle)
    assert isinstance(plain, NoTLS)
    with pytest.raises(RuntimeError, match="TLS was attempted .* although the server is http://"):
        httpx.post(url + "/api/fleet/ping", json={}, verify=plain)
    # https: the public CAs and the bundle's own.
    secure = _tls_context(url, ca_bundle)
    assert secure.cert_store_stats()["x509_ca"] > 100 and secure.verify_mode == ssl.CERT_REQUIRED
    assert httpx.post(url + "/api/fleet/ping", json={}, verify=secure).json()["ok"] is True


def test_a_goodbye_is_one_try_with_no_wait(tmp_path):
    """The machine may be about to sleep or power off: a busy server gets no second try."""
    script = Script(answer(503, Retry_After="1"), answer(200, OK))
    config = AgentConfig(server="http://fleet.test", token="api_secret", machine_id="pc-1")
    service = AgentService(config, script.reporter(), None, state_dir=str(tmp_path))
    assert service.say_goodbye("sleep") is False
    assert [r.url.path for r in script.requests] == ["/api/agent/goodbye"] and script.sleeps == []
    assert json.loads(script.requests[0].content) == {"machine_id": "pc-1", "reason": "sleep"}


def test_a_request_after_close_is_a_failure_not_an_exception_nor_a_wait():
    """A thread still at work as the agent stops (an Acknowledge clicked as it quits) gets a failed
    outcome, which its caller keeps for the next start, like any failure: never an exception in that
    thread, never a retry or a wait."""
    script = Script(answer(200, OK))
    reporter = script.reporter()
    reporter.close()
    posted = reporter.post("/api/agent/deliveries/d-1", {"machine_id": "pc-1", "state": "acknowledged"})
    fetched = reporter.get("/api/agent/inbox", {"machine_id": "pc-1"})
    for outcome in (posted, fetched):
        assert (outcome.ok, outcome.status, outcome.error) == (False, None, "the agent is stopping")
    assert script.requests == [] and script.sleeps == []
