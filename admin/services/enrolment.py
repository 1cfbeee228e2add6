"""Enrolment: an enrol key buys one machine its own key, bound to its machine id.

The machine key has scope `agent` only and speaks only for its machine id (checked on every agent
request from the cached key lookup, api/deps.py). The hardware id given at enrolment binds the
machine id: the same id from other hardware is a takeover and is refused (409) until an admin
removes the machine or resets its enrolment; the same hardware again (a reinstall) gets a new key
and its old one is revoked. The enrol key itself can do nothing else, and revoking it leaves the
machine keys it bought working.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from admin.repositories import accounts as repo
from admin.repositories import machines as machines_repo
from admin.services import audit
from admin.services.accounts import AccountService
from admin.services.audit import UNATTRIBUTED, Actor
from admin.services.errors import Conflict, NotFound
from common.constants import SCOPE_AGENT

ENROL_ATTEMPTS = 2  # a lost race for the unique live-key index is retried once, then answered


@dataclass(frozen=True)
class Enrolled:
    machine_id: str
    agent_key: str
    key_id: int
    replaced: int  # keys of an earlier install of the same hardware, now revoked


@dataclass(frozen=True)
class EnrolledMachine:
    machine_id: str
    hardware_id: str | None
    key_id: int
    key_prefix: str
    enrolled_at: float


class EnrolmentService:
    def __init__(self, engine: Engine, accounts: AccountService) -> None:
        self.engine = engine
        self.accounts = accounts

    def enrol(self, *, org_id: int, machine_id: str, hardware_id: str, actor: Actor | str = UNATTRIBUTED) -> Enrolled:
        for attempt in range(ENROL_ATTEMPTS):
            try:
                return self._enrol_once(org_id=org_id, machine_id=machine_id, hardware_id=hardware_id, actor=actor)
            except IntegrityError:
                # Another enrolment of this machine id committed first: decide again against it.
                if attempt == ENROL_ATTEMPTS - 1:
                    raise Conflict("this machine id is being enrolled by another request; try again") from None
        raise AssertionError("unreachable")

    def _enrol_once(self, *, org_id: int, machine_id: str, hardware_id: str, actor: Actor | str) -> Enrolled:
        with Session(self.engine) as session:
            live = repo.live_machine_keys(session, org_id=org_id, machine_id=machine_id)
            if any(key.bound_hardware_id != hardware_id for key in live):
                raise Conflict(
                    "this machine id is enrolled from other hardware; an admin removes the machine or "
                    "resets its enrolment before another computer can take it"
                )
            replaced = repo.revoke_machine_keys(session, org_id=org_id, machine_id=machine_id, now=time.time())
            key = self.accounts.add_key(
                session, org_id, [SCOPE_AGENT], bound_machine_id=machine_id, bound_hardware_id=hardware_id
            )
            audit.record(
                session.connection(),
                org_id=org_id,
                actor=actor,
                action="machine.enrol",
                target=f"machine {machine_id}",
                detail={"key_id": key.key_id, "hardware_id": hardware_id, "replaced_keys": replaced},
            )
            session.commit()
        if replaced:
            self.accounts.forget_cached_keys()
        return Enrolled(machine_id=machine_id, agent_key=key.api_key, key_id=key.key_id, replaced=replaced)

    def enrolled_machines(self, *, org_id: int) -> list[EnrolledMachine]:
        with Session(self.engine) as session:
            return [
                EnrolledMachine(
                    machine_id=key.bound_machine_id or "",
                    hardware_id=key.bound_hardware_id,
                    key_id=key.id or 0,
                    key_prefix=key.prefix,
                    enrolled_at=key.created_at,
                )
                for key in repo.enrolled_keys(session, org_id=org_id)
            ]

    def reset(self, *, org_id: int, machine_id: str, actor: Actor | str = UNATTRIBUTED) -> int:
        """Revoke the machine's own keys: its agent enrols again (from any hardware) with the enrol
        key it was installed with. How many keys were revoked (0: it was known but not enrolled).

        A machine id the organisation neither has nor has enrolled is NotFound, and nothing is
        written (no audit entry): the API answers another organisation's machine the same way."""
        with Session(self.engine) as session:
            revoked = repo.revoke_machine_keys(session, org_id=org_id, machine_id=machine_id, now=time.time())
            if not revoked and not machines_repo.machine_exists(
                session.connection(), org_id=org_id, machine_id=machine_id
            ):
                raise NotFound(f"no machine {machine_id!r} in this organisation")
            audit.record(
                session.connection(),
                org_id=org_id,
                actor=actor,
                action="machine.enrolment_reset",
                target=f"machine {machine_id}",
                detail={"revoked_keys": revoked},
            )
            session.commit()
        if revoked:
            self.accounts.forget_cached_keys()
        return revoked
