"""Who may add a machine to an organisation: a quota of machines and a rate of new machine ids.

A holder of an organisation key could otherwise create machines without end (security finding 4).
Only a machine id this process has not seen costs anything: known ids are remembered (an LRU of
(org, machine id)), so a report or heartbeat of a known machine pays one dictionary lookup. A new
id costs an indexed existence query and, when it is really new, a count of the organisation's
machines and one hit on the per-organisation limit of new machines.

Server processes check independently: machines first heard of at the same moment by several
processes can pass the quota by at most that many (docs/security.md).
"""

from __future__ import annotations

from cachetools import LRUCache
from limits import parse
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from admin.core.config import Settings
from admin.core.limits import RateLimiter
from admin.repositories import machines as repo
from admin.services.errors import Forbidden, TooMany

KNOWN_MACHINES_REMEMBERED = 100_000  # per process; about 15 MB at the most


class MachineAdmission:
    def __init__(self, engine: Engine, settings: Settings, limiter: RateLimiter) -> None:
        self.engine = engine
        self.settings = settings
        self.limiter = limiter
        self.new_machines = parse(f"{settings.new_machines_per_minute}/minute")
        self._known: LRUCache[tuple[int, str], bool] = LRUCache(maxsize=KNOWN_MACHINES_REMEMBERED)

    async def admit(self, *, org_id: int, machine_id: str, org_quota: int | None) -> None:
        """Return when the machine exists or may be created; Forbidden (403) over the quota,
        TooMany (429) over the rate of new machines."""
        if self._known.get((org_id, machine_id)):
            return
        machines = await run_in_threadpool(self._machines_unless_known, org_id, machine_id)
        if machines is not None:
            quota = org_quota if org_quota is not None else self.settings.machine_quota
            if machines >= quota:
                raise Forbidden(
                    f"This organisation has reached its quota of {quota} machines: an admin removes "
                    "machines or raises the quota (dashfleet-admin org set --machine-quota)"
                )
            refusal = await self.limiter.hit(self.new_machines, "new-machine", org_id)
            if refusal:
                raise TooMany(
                    f"Too many new machines in this organisation; retry in {refusal.retry_after} s",
                    refusal.retry_after,
                )
        self._known[(org_id, machine_id)] = True

    def _machines_unless_known(self, org_id: int, machine_id: str) -> int | None:
        """None when the machine exists, else how many machines the organisation has."""
        with self.engine.connect() as conn:
            if repo.machine_exists(conn, org_id=org_id, machine_id=machine_id):
                return None
            return repo.count_machines(conn, org_id=org_id)

    def forget(self, *, org_id: int, machine_id: str) -> None:
        """A deleted machine is new again (this process; others may let it back once unchecked)."""
        self._known.pop((org_id, machine_id), None)
