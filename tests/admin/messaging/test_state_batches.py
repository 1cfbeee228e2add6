"""State changes that share one writer batch (`MessagingService._move_all`, one read and one
conditional UPDATE per distinct change) answer as one request at a time would, in arrival order:
a second change of one delivery in the batch sees the first, another organisation's delivery is
none, an overdue one is refused and stays expired."""

from __future__ import annotations

import asyncio
import time

import pytest
from sqlalchemy import select, update

from admin.core.config import Settings
from admin.core.db import migrate
from admin.models import Delivery
from admin.services.context import AppServices
from admin.services.errors import NotFound
from admin.services.messaging import CommandIn, MessageIn, StateConflict, StateIn


@pytest.fixture(params=["sqlite", "postgres"])
def services(request, tmp_path):
    url = request.getfixturevalue("postgres").create() if request.param == "postgres" else ""
    settings = Settings(
        _env_file=None, data_dir=tmp_path, database_url=url, feature_messaging=True, feature_commands=True
    )
    migrate(settings)
    services = AppServices.build(settings)
    yield services
    services.engine.dispose()


def _setup(services, machines: list[str]) -> tuple[int, int, dict[str, int], dict[str, int]]:
    """Two organisations with the same machines; a message to each machine of the first, a
    command to each of the second. Returns both org ids and the delivery ids by machine."""

    async def send():
        services.writer.start()
        try:
            orgs = []
            for name in ("batch-a", "batch-b"):
                org, _ = services.accounts.create_org(name)
                for machine_id in machines:
                    await services.fleet.record_ping(org_id=org.id, machine_id=machine_id, hardware_id=None, now=1.0)
                orgs.append(org.id)
            messaging = services.messaging
            await messaging.send_message(org_id=orgs[0], message=MessageIn(title="t", machine_ids=machines), actor="t")
            await messaging.send_command(
                org_id=orgs[1], command=CommandIn(kind="report_now", machine_ids=machines), actor="t"
            )
            return orgs
        finally:
            await services.writer.stop()

    first, second = asyncio.run(send())
    found = services.messaging.inboxes([(org, m) for org in (first, second) for m in machines])
    ids = [{m: int(found[(org, m)][0]["delivery_id"]) for m in machines} for org in (first, second)]
    return first, second, ids[0], ids[1]


def test_a_batch_answers_each_change_as_if_alone_and_in_order(services):
    first, second, messages, commands = _setup(services, ["desk", "lab", "old"])
    with services.engine.begin() as conn:  # "old" is overdue
        conn.execute(update(Delivery.__table__).where(Delivery.__table__.c.id == messages["old"]).values(expires=1.0))

    def state(machine_id: str, value: str) -> StateIn:
        return StateIn(machine_id=machine_id, state=value)

    moves = [
        (first, messages["desk"], state("desk", "delivered")),
        (first, messages["desk"], state("desk", "displayed")),  # sees the change before it
        (first, messages["desk"], state("desk", "delivered")),  # backwards now
        (first, messages["lab"], state("lab", "delivered")),
        (first, commands["lab"], state("lab", "delivered")),  # the other organisation's delivery
        (second, commands["lab"], state("desk", "delivered")),  # another machine's
        (second, commands["lab"], state("lab", "running")),
        (first, messages["old"], state("old", "delivered")),
    ]
    with services.engine.begin() as conn:
        outcomes = services.messaging._move_all(conn, moves)
    assert outcomes[:2] == [("delivered", True), ("displayed", False)]
    assert isinstance(outcomes[2], StateConflict) and outcomes[2].state == "displayed"
    assert outcomes[3] == ("delivered", True)
    assert isinstance(outcomes[4], NotFound) and isinstance(outcomes[5], NotFound)
    assert outcomes[6] == ("running", True)
    assert isinstance(outcomes[7], StateConflict) and outcomes[7].state == "expired"

    messaging = services.messaging
    assert [d["state"] for d in messaging.machine_deliveries(org_id=first, machine_id="desk", item_type="message")] == [
        "displayed"
    ]
    assert messaging.machine_deliveries(org_id=second, machine_id="lab", item_type="command")[0]["state"] == "running"
    # The refusal of the overdue one kept its change: expired, not queued (read as stored, without
    # the expiry on read that the service's own readers do).
    table = Delivery.__table__
    with services.engine.connect() as conn:
        old = conn.execute(select(table.c.state, table.c.finished_at).where(table.c.id == messages["old"])).one()
    assert old.state == "expired" and old.finished_at <= time.time()
    # Nothing of the other organisation's moved by the first's agents.
    assert messaging.machine_deliveries(org_id=second, machine_id="desk", item_type="command")[0]["state"] == "queued"
