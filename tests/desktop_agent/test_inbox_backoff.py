"""The inbox thread's pacing: backoff on errors, no spinning, the heartbeat's wake-up.

A scripted transport (httpx.MockTransport) stands in for the network here only because these tests
need failures on demand and exact request counts; everything the server decides is tested against
the real server in test_inbox_process.py.
"""

from __future__ import annotations

import random
import threading
import time

import httpx
import pytest

from desktop_agent.config import AgentConfig
from desktop_agent.deliveries import DeliveryStore
from desktop_agent.inbox import Inbox
from desktop_agent.reporter import Reporter
from desktop_agent.service import AgentService

FEATURES_ON = {"FEATURES": {"messaging": True, "commands": True, "heartbeat": True}}


class Scripted:
    """Answers by path; records what was asked, when."""

    def __init__(self, inbox_answer, config_answer=FEATURES_ON):
        self.inbox_answer = inbox_answer
        self.config_answer = config_answer
        self.requests: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.requests.append((time.monotonic(), request.url.path))
        if request.url.path == "/api/config":
            return httpx.Response(200, json=self.config_answer)
        if request.url.path == "/api/agent/inbox":
            return self.inbox_answer(request)
        if request.url.path.startswith("/api/agent/deliveries/"):
            return httpx.Response(503, json={"error": "busy"})
        return httpx.Response(404, json={"error": "not found"})

    def paths(self, path: str) -> list[float]:
        with self.lock:
            return [when for when, asked in self.requests if asked == path]


@pytest.fixture
def make_inbox(tmp_path):
    made: list[tuple[AgentService, Inbox, Reporter]] = []

    def make(transport: Scripted) -> tuple[AgentService, Inbox]:
        config = AgentConfig(server="http://fleet.test", token="api_test", machine_id="pc-1", tray=False)
        reporter = Reporter(config.server, config.token, transport=httpx.MockTransport(transport), max_attempts=1)
        service = AgentService(config, reporter, None, state_dir=str(tmp_path))
        service.messages_ui_ready(False)
        inbox = Inbox(service, reporter, DeliveryStore(tmp_path / "inbox"), rng=random.Random(1))
        service.inbox = inbox
        made.append((service, inbox, reporter))
        return service, inbox

    yield make
    for service, inbox, reporter in made:
        service.stop()
        inbox.close(1)
        reporter.close()


def test_errors_back_off_and_never_spin(make_inbox):
    scripted = Scripted(lambda request: httpx.Response(503, json={"error": "down"}))
    _service, inbox = make_inbox(scripted)
    inbox.start()
    time.sleep(4.0)
    polls = scripted.paths("/api/agent/inbox")
    # Backoff from 2 s doubling (each wait 50-100 % of its step): 1 s, 2 s, 4 s at the least.
    assert 1 <= len(polls) <= 3, polls
    gaps = [b - a for a, b in zip(polls, polls[1:], strict=False)]
    assert all(gap >= 0.9 for gap in gaps), gaps


def test_an_answer_that_brings_nothing_new_at_once_is_not_repeated_at_once(make_inbox):
    item = {
        "delivery_id": "d-1",
        "type": "message",
        "expires": time.time() + 600,
        "message": {"message_id": "m-1", "title": "t", "body": "", "severity": "info", "created": time.time()},
    }
    # The same item every time, and its state posts fail (503): the server keeps serving it.
    scripted = Scripted(
        lambda request: httpx.Response(200, json={"items": [item], "features": FEATURES_ON["FEATURES"]})
    )
    service, inbox = make_inbox(scripted)
    inbox.start()
    time.sleep(4.0)
    assert len(scripted.paths("/api/agent/inbox")) <= 4
    assert [m.delivery_id for m in service.messages] == ["d-1"]  # taken once, shown once
    record = inbox.store.get("d-1")
    assert record is not None and record.pending and record.want == "displayed"  # kept to retry


def test_features_off_means_no_inbox_request(make_inbox):
    scripted = Scripted(
        lambda request: httpx.Response(200, json={"items": []}),
        config_answer={"FEATURES": {"messaging": False, "commands": False, "heartbeat": True}},
    )
    _service, inbox = make_inbox(scripted)
    inbox.start()
    time.sleep(2.0)
    assert len(scripted.paths("/api/config")) == 1
    inbox.wake()  # a heartbeat's hint: the features are read again, still off, so still no inbox
    time.sleep(1.0)
    assert scripted.paths("/api/agent/inbox") == []
    assert len(scripted.paths("/api/config")) == 2


def test_a_heartbeat_hint_cuts_the_backoff_short(make_inbox):
    failing = threading.Event()
    failing.set()

    def answer(request):
        if failing.is_set():
            return httpx.Response(502, json={"error": "proxy"})
        return httpx.Response(200, json={"items": []})

    scripted = Scripted(answer)
    _service, inbox = make_inbox(scripted)
    for _ in range(5):
        inbox._backoff.next_delay()  # as after five failures: the next wait is 16-32 s
    inbox.start()
    deadline = time.monotonic() + 10
    while not scripted.paths("/api/agent/inbox") and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert len(scripted.paths("/api/agent/inbox")) == 1  # failed, now waiting 16 s or more
    failing.clear()
    hinted = time.monotonic()
    inbox.wake()
    while len(scripted.paths("/api/agent/inbox")) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scripted.paths("/api/agent/inbox")[1] - hinted < 1.0
