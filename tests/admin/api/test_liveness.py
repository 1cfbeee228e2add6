"""Liveness and expiry: decided by the server's clock at receipt, per organisation.

Time has to pass here, so each module server has tiny settings, and the sleeps are the minimum the
settings need plus a margin. Assertions are about what is listed, never about how long it took.
"""

import time

import pytest

OFFLINE_AFTER_SECONDS = 1
FLEET_TTL_SECONDS = 4
# Sleeping this much longer than a setting makes sure the setting has elapsed.
MARGIN_SECONDS = 0.6
FAR_FUTURE_ISO = "2100-01-01T00:00:00+00:00"
FAR_PAST_ISO = "2000-01-01T00:00:00+00:00"


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def quick_server(request, module_server_factory):
    """Offline after 1 s, expired after 4 s; its background job runs every second, so it may be
    the one that removes an expired machine (the listing must still name it once)."""
    return module_server_factory(
        request.param,
        offline_after_seconds=OFFLINE_AFTER_SECONDS,
        fleet_ttl_seconds=FLEET_TTL_SECONDS,
        maintenance_interval_seconds=1,
    )


def statuses(org) -> dict[str, str]:
    return {m["machine_id"]: m["status"] for m in org.fleet()["data"]}


def test_silent_machines_turn_offline_and_back_online(quick_server):
    org = quick_server.org()
    assert org.report("quiet").status_code == 200
    assert org.ping("chatty").status_code == 200
    assert statuses(org) == {"quiet": "online", "chatty": "online"}

    time.sleep(OFFLINE_AFTER_SECONDS + MARGIN_SECONDS)
    assert org.ping("chatty").status_code == 200
    listing = org.fleet()
    assert listing["expired"] == [] and listing["count"] == 2
    assert statuses(org) == {"quiet": "offline", "chatty": "online"}
    assert org.machine_ids(status="offline") == ["quiet"]
    assert org.machine_ids(status="online") == ["chatty"]
    assert org.fleet(status="offline")["count"] == 1

    assert org.report("quiet").status_code == 200
    assert statuses(org) == {"quiet": "online", "chatty": "online"}


def test_the_agent_clock_never_decides_liveness(quick_server, contract):
    org = quick_server.org()
    # An agent whose clock is decades behind is alive now: listed, online, not expired at once.
    assert org.report("behind", contract.sample_report(timestamp=FAR_PAST_ISO)).status_code == 200
    assert org.ping("behind", timestamp=0).status_code == 200
    # One whose clock is decades ahead is not kept alive by it.
    assert org.report("ahead", contract.sample_report(timestamp=FAR_FUTURE_ISO)).status_code == 200
    assert org.ping("ahead", timestamp=time.time() + 10**9).status_code == 200

    listing = org.fleet()
    assert listing["expired"] == []
    assert statuses(org) == {"ahead": "online", "behind": "online"}

    time.sleep(OFFLINE_AFTER_SECONDS + MARGIN_SECONDS)
    assert statuses(org) == {"ahead": "offline", "behind": "offline"}


def test_machines_expire_after_the_ttl_and_are_listed_as_expired_once(quick_server, contract):
    org = quick_server.org()
    second_key = quick_server.make_key(org.name, "read")["api_key"]
    # Agent clocks far ahead must not delay expiry: the server's clock at receipt decides.
    assert org.report("reporter", contract.sample_report(timestamp=FAR_FUTURE_ISO)).status_code == 200
    assert org.ping("pinger", timestamp=time.time() + 10**9).status_code == 200
    listing = org.fleet()
    assert listing["expired"] == [] and listing["count"] == 2, "a ping-only machine expired at once"

    time.sleep(FLEET_TTL_SECONDS + MARGIN_SECONDS + 1)  # +1: the background job has run meanwhile
    first = org.get("/api/fleet", key=second_key).json()
    assert first["count"] == 0 and first["data"] == []
    assert sorted(first["expired"]) == ["pinger", "reporter"]
    # Once, whichever key of the organisation listed first.
    assert org.fleet()["expired"] == []
    assert org.get("/api/fleet", key=second_key).json()["expired"] == []

    # A machine that comes back is simply listed again.
    assert org.ping("pinger").status_code == 200
    again = org.fleet()
    assert again["expired"] == [] and [m["machine_id"] for m in again["data"]] == ["pinger"]
    assert again["data"][0]["report"] == {}


def test_expiry_never_crosses_organisations(quick_server):
    org_a, org_b = quick_server.org(), quick_server.org()
    assert org_a.report("same-name").status_code == 200
    assert org_a.report("a-only").status_code == 200
    assert org_b.ping("same-name").status_code == 200
    started = time.monotonic()

    # B's machine keeps pinging, A's fall silent.
    time.sleep(FLEET_TTL_SECONDS / 2)
    assert org_b.ping("same-name").status_code == 200
    time.sleep(max(0.0, FLEET_TTL_SECONDS + MARGIN_SECONDS - (time.monotonic() - started)))

    listing_b = org_b.fleet()
    assert listing_b["expired"] == []
    assert [m["machine_id"] for m in listing_b["data"]] == ["same-name"]
    listing_a = org_a.fleet()
    assert sorted(listing_a["expired"]) == ["a-only", "same-name"]
    assert listing_a["count"] == 0
    assert org_b.machine_ids() == ["same-name"] and org_b.fleet()["expired"] == []
