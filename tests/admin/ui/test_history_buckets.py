"""FleetService.history_buckets (the charts' query) on both databases: the same means as averaging
the raw samples in Python, only the organisation's own machine, nothing for a foreign one."""

from __future__ import annotations

import time

import pytest

from admin.core.config import Settings
from admin.core.db import migrate
from admin.services.context import AppServices
from admin.services.errors import NotFound


@pytest.fixture(params=["sqlite", "postgres"])
def backend_services(request, tmp_path):
    url = request.getfixturevalue("postgres").create() if request.param == "postgres" else ""
    settings = Settings(_env_file=None, data_dir=tmp_path, database_url=url)
    migrate(settings)
    built = AppServices.build(settings)
    yield built
    built.engine.dispose()


async def record(services: AppServices, reports: list[tuple[int, float, float]]) -> None:
    """(org id, server time, CPU %) reports of machine pc-1, through the service as the API stores them."""
    services.writer.start()
    for org_id, ts, cpu in reports:
        await services.fleet.record_report(
            org_id=org_id,
            machine_id="pc-1",
            now=ts,
            report={"cpu_percent": cpu, "ram_percent": 50.0, "disk_percent": 25.0},
        )
    await services.writer.stop()


async def test_buckets_are_the_means_of_the_samples_in_them(backend_services) -> None:
    services = backend_services
    org, _ = services.accounts.create_org("buckets")
    other, _ = services.accounts.create_org("other")
    width = 600.0
    now = time.time()
    start = (now // width - 10) * width  # bucket-aligned, ten buckets ago
    samples = [
        (start + 10, 10.0),
        (start + 200, 20.0),
        (start + 590, 60.0),  # bucket 0: mean 30
        (start + width + 5, 80.0),  # bucket 1
        (start + 5 * width + 1, 7.0),
        (start + 5 * width + 11, 9.0),  # history keeps samples 5 s apart at least
    ]  # bucket 5: mean 8
    # The same machine id in another organisation must not count.
    await record(services, [(org.id, ts, cpu) for ts, cpu in samples] + [(other.id, start + 20, 99.0)])
    buckets = services.fleet.history_buckets(org_id=org.id, machine_id="pc-1", hours=3, width=width)
    assert [(b["ts"], round(b["cpu_percent"], 6), b["samples"]) for b in buckets] == [
        (start, 30.0, 3),
        (start + width, 80.0, 1),
        (start + 5 * width, 8.0, 2),
    ]
    assert all(b["ram_percent"] == 50.0 and b["disk_percent"] == 25.0 for b in buckets)
    # Older than the span: left out.
    assert (
        services.fleet.history_buckets(
            org_id=org.id, machine_id="pc-1", hours=(now - start - 3000) / 3600, width=width
        )[0]["ts"]
        == start + 5 * width
    )
    with pytest.raises(NotFound):
        services.fleet.history_buckets(org_id=org.id + other.id + 1, machine_id="pc-1", hours=3, width=width)
