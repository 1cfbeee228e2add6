"""The service in this process against the real server: cycles, pause, refused reports, heartbeats,
clock warnings, jittered timers. (What the tray draws from its state: test_icons.py, test_tray_text.py.)"""

from __future__ import annotations

import logging
import random

from agent_helpers import STATUS_LINE, free_port, history, machine

from desktop_agent.icons import icon_key
from desktop_agent.sampler import take_sample
from desktop_agent.service import START_SPREAD_SECONDS


def test_a_cycle_reports_and_empties_the_queue(make_service, fleet_org, machine_id):
    service = make_service()
    line = service.report_cycle()
    assert STATUS_LINE.match(line)["outcome"] == "OK HTTP 200"
    assert len(service.queue) == 0 and service.state.connected is True and service.state.status_line == line
    assert len(history(fleet_org, machine_id)) == 1


def test_with_nothing_queued_a_report_is_sent_without_touching_the_disk(
    make_service, fleet_org, machine_id, monkeypatch
):
    """The usual cycle sends at once: writing, fsyncing and deleting the report cost more CPU than
    the request (docs/benchmarks.md). Only a report that could not be sent is written."""
    import desktop_agent.queue as queue_module

    written: list[str] = []
    real = queue_module.write_durably
    monkeypatch.setattr(queue_module, "write_durably", lambda path, *rest: (written.append(path), real(path, *rest)))
    service = make_service()
    for _ in range(3):
        assert STATUS_LINE.match(service.report_cycle())["outcome"] == "OK HTTP 200"
    assert written == [] and len(history(fleet_org, machine_id)) == 3
    down = make_service(server_url=f"http://127.0.0.1:{free_port()}")
    assert STATUS_LINE.match(down.report_cycle())["outcome"].startswith("QUEUED 1 (")
    assert len(written) == 1 and len(down.queue) == 1


def test_paused_sends_nothing_queues_nothing_and_resume_sends_again(make_service, fleet_org, machine_id):
    service = make_service()
    service.pause()
    line = service.report_cycle()
    assert STATUS_LINE.match(line)["outcome"] == "PAUSED (not sent)"
    assert service.heartbeat() is None
    assert len(service.queue) == 0 and machine(fleet_org, machine_id) is None
    assert service.state.sample is not None, "the tray still shows the local health while paused"

    service.toggle_pause()
    assert not service.state.paused
    assert STATUS_LINE.match(service.report_cycle())["outcome"] == "OK HTTP 200"
    assert len(history(fleet_org, machine_id)) == 1


def test_a_queued_report_the_server_refuses_is_dropped_and_the_rest_go(make_service, fleet_org, machine_id, caplog):
    service = make_service()
    bad = take_sample().as_payload() | {"cpu_percent": 150}  # out of range: the server answers 422
    service.queue.put(bad)
    with caplog.at_level(logging.ERROR, logger="desktop_agent.service"):
        line = service.report_cycle()
    assert STATUS_LINE.match(line)["outcome"] == "OK HTTP 200"
    assert "the server refused a queued report for good (HTTP 422" in caplog.text
    assert len(service.queue) == 0
    assert len(history(fleet_org, machine_id)) == 1  # only the good one


def test_an_unreachable_server_keeps_reports_and_backs_off(make_service, machine_id):
    service = make_service("http://127.0.0.1:9")
    first = STATUS_LINE.match(service.report_cycle())["outcome"]
    assert first.startswith("QUEUED 1 (server unreachable (")
    second = STATUS_LINE.match(service.report_cycle())["outcome"]
    # Within the backoff the queue is not tried again: the line says when it will be.
    assert second.startswith("QUEUED 2 (server unreachable (") and "next try in" in second
    assert len(service.queue) == 2 and service.state.connected is False

    assert service.heartbeat().status is None and service.state.connected is False
    assert icon_key(service.state) == "unreachable"


def test_send_now_skips_the_backoff(make_service):
    service = make_service("http://127.0.0.1:9")
    service.report_cycle()
    assert service.drain() is None  # backing off
    service.send_now()
    assert service.drain() is not None  # tried at once


def test_heartbeat_marks_the_machine_alive_and_records_the_clock_offset(make_service, fleet_org, machine_id):
    service = make_service()
    outcome = service.heartbeat()
    assert outcome.ok and service.state.connected is True
    assert abs(service.state.clock_offset) < 60  # same machine, same clock
    stored = machine(fleet_org, machine_id)
    assert stored["last_ping"] is not None and stored["report"] == {}


def test_clock_offset_beyond_a_minute_is_warned_once_not_every_heartbeat(make_service, caplog):
    service = make_service()
    with caplog.at_level(logging.WARNING, logger="desktop_agent.service"):
        for offset in (0.2, 120.0, 121.0, 119.0):
            service._update(clock_offset=service.check_clock({"server_time_offset": offset}))
    warnings = [r.getMessage() for r in caplog.records]
    assert warnings == [
        "this machine's clock is 120 s behind the server's: fix the clock (NTP); the fleet uses the server's time"
    ]
    with caplog.at_level(logging.WARNING, logger="desktop_agent.service"):
        service._update(clock_offset=service.check_clock({"server_time_offset": -300.0}))
    assert "300 s ahead of the server's" in caplog.records[-1].getMessage()


def test_start_times_and_periods_are_jittered(make_service):
    service = make_service(interval=60.0)
    service._rng = random.Random(3)
    firsts = [service._first_delay(60.0) for _ in range(200)]
    periods = [service._period(60.0) for _ in range(200)]
    assert all(0 <= d <= START_SPREAD_SECONDS for d in firsts) and max(firsts) - min(firsts) > 5
    assert all(54 <= p <= 66 for p in periods) and max(periods) - min(periods) > 6


def test_a_listener_that_subscribes_late_sees_the_current_state_first(make_service):
    """The tray subscribes while the loops may already have taken a reading (a full disk at start):
    it gets that state at once, then each later one, in order, so no warning is lost to the race."""
    service = make_service()
    service.pause()
    seen: list[bool] = []
    service.subscribe(lambda state: seen.append(state.paused))
    assert seen == [True]
    service.resume()
    assert seen[:2] == [True, False]
