"""The group writer against the real databases: many writes share a commit, and a write the
database refuses fails alone, never the good writes that were batched with it."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select

from admin.core.config import Settings
from admin.core.db import make_engine, migrate
from admin.models import Machine, Sample
from admin.services.accounts import AccountService
from admin.services.fleet import FleetService
from admin.services.writer import GroupWriter

MISSING_ORG = 987654  # no such organisation: the foreign key refuses it on both databases


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").create()
        settings = Settings(data_dir=tmp_path, database_url=url)
    else:
        settings = Settings(data_dir=tmp_path)
    migrate(settings)
    engine = make_engine(settings)
    yield engine, settings
    engine.dispose()


async def _run(engine, settings, body):
    writer = GroupWriter(engine)
    writer.start()
    try:
        return await body(FleetService(engine, settings, writer))
    finally:
        await writer.stop()


def _report(cpu: float) -> dict:
    return {"cpu_percent": cpu, "ram_percent": 50, "disk_percent": 50, "system": {"os": "Linux"}}


async def test_concurrent_writes_are_all_committed(engine):
    engine, settings = engine
    org, _ = AccountService(engine).create_org("writer-all")

    async def body(fleet):
        now = time.time()
        await asyncio.gather(
            *(
                fleet.record_report(org_id=org.id, machine_id=f"m{i:03d}", report=_report(i % 100), now=now)
                for i in range(200)
            ),
            *(fleet.record_ping(org_id=org.id, machine_id=f"p{i:03d}", hardware_id=None, now=now) for i in range(50)),
        )

    await _run(engine, settings, body)
    with engine.connect() as conn:
        machines = conn.execute(select(Machine.machine_id).where(Machine.org_id == org.id)).scalars().all()
        samples = conn.execute(select(Sample.machine_id).where(Sample.org_id == org.id)).scalars().all()
    assert len(machines) == 250
    assert sorted(samples) == [f"m{i:03d}" for i in range(200)]


async def test_a_refused_write_fails_alone(engine):
    engine, settings = engine
    org, _ = AccountService(engine).create_org("writer-alone")

    async def body(fleet):
        now = time.time()
        writes = [
            fleet.record_report(
                org_id=MISSING_ORG if i == 7 else org.id, machine_id=f"m{i:02d}", report=_report(10), now=now
            )
            for i in range(30)
        ]
        return await asyncio.gather(*writes, return_exceptions=True)

    results = await _run(engine, settings, body)
    failures = [i for i, r in enumerate(results) if isinstance(r, Exception)]
    assert failures == [7]
    with engine.connect() as conn:
        stored = conn.execute(select(Machine.machine_id)).scalars().all()
        samples = conn.execute(select(Sample.org_id)).scalars().all()
    assert sorted(stored) == [f"m{i:02d}" for i in range(30) if i != 7]
    assert MISSING_ORG not in samples and len(samples) == 29


async def test_units_of_work_share_commits_return_their_results_and_a_refused_one_fails_alone(engine):
    engine, _ = engine
    org, _ = AccountService(engine).create_org("writer-work")
    writer = GroupWriter(engine)
    batches: list[int] = []  # how many payloads each call of the work had
    insert_machine = Machine.__table__.insert().values(last_seen=1.0, report="{}", system="{}")

    def work(conn, payloads: list[tuple[int, str]]) -> list[str]:
        batches.append(len(payloads))
        for org_id, machine_id in payloads:
            conn.execute(insert_machine, {"org_id": org_id, "machine_id": machine_id})
        return [machine_id.upper() for _, machine_id in payloads]

    writer.start()
    try:
        results = await asyncio.gather(
            *(
                writer.run(
                    work, (MISSING_ORG if i == 3 else org.id, f"w{i:02d}"), org_id=org.id, machine_id=f"w{i:02d}"
                )
                for i in range(40)
            ),
            return_exceptions=True,
        )
    finally:
        await writer.stop()
    assert [i for i, r in enumerate(results) if isinstance(r, Exception)] == [3]
    assert [r for r in results if not isinstance(r, Exception)] == [f"W{i:02d}" for i in range(40) if i != 3]
    assert max(batches) > 1  # the work had many requests' payloads at once
    with engine.connect() as conn:
        stored = conn.execute(select(Machine.machine_id).where(Machine.org_id == org.id)).scalars().all()
    assert sorted(stored) == [f"w{i:02d}" for i in range(40) if i != 3]
