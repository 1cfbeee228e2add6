"""Messages and commands: sending to machines, the agents' inbox and state changes, expiry, cancel.

Every item has one delivery row per target machine; a delivery's state moves forward only, by
the agent (delivered, displayed, ...) or the server (expired by its own clock, cancelled by an
admin or by deleting the machine). The API and the web UI both come through here, so both get
the same validation, the same feature flags and the same organisation scoping.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool

from admin.core.config import Settings
from admin.repositories import messaging as repo
from admin.services import audit
from admin.services.audit import UNATTRIBUTED, Actor
from admin.services.errors import Conflict, InvalidInput, NotFound, ServiceError
from admin.services.wakeups import Wakeups
from admin.services.writer import GroupWriter
from common.schemas import MachineId

MESSAGE, COMMAND = "message", "command"
FEATURE_OF = {MESSAGE: "messaging", COMMAND: "commands"}
SEVERITIES = ("info", "warning", "critical")
COMMAND_KINDS = ("report_now", "refresh_config", "restart_agent", "run_script")
MESSAGE_STATES = ("queued", "delivered", "displayed", "acknowledged", "expired", "cancelled")
COMMAND_STATES = ("queued", "delivered", "running", "succeeded", "failed", "timed_out", "expired", "cancelled")
FINAL_COMMAND_STATES = frozenset({"succeeded", "failed", "timed_out"})
# The moves an agent may make, from each state. Forward only; a command runs only after the
# server accepted `running`, and may fail before it (refused by the allow-list, say).
AGENT_MOVES: dict[str, dict[str, frozenset[str]]] = {
    MESSAGE: {
        "queued": frozenset({"delivered", "displayed", "acknowledged"}),
        "delivered": frozenset({"displayed", "acknowledged"}),
        "displayed": frozenset({"acknowledged"}),
    },
    COMMAND: {
        "queued": frozenset({"delivered", "running", "failed"}),
        "delivered": frozenset({"running", "failed"}),
        "running": FINAL_COMMAND_STATES,
    },
}
AGENT_STATES = {
    MESSAGE: ("delivered", "displayed", "acknowledged"),
    COMMAND: ("delivered", "running", *FINAL_COMMAND_STATES),
}
OUTPUT_MAX_BYTES = 64 * 1024
# The body of a state change with the most output JSON escaping can make (\u-escapes: 6 bytes each).
DELIVERY_MAX_BODY_BYTES = 6 * OUTPUT_MAX_BYTES + 4096
CUT_MARK = "[output cut: only its last 64 KiB are kept]\n"
MAX_TARGETS = 10_000  # machine ids in one request; "all": true has no limit
MAX_SCRIPT_ARGS = 64
MAX_SCRIPT_ARG_LENGTH = 1000
# The heartbeat's hint reads a per-organisation set of machines with something queued, at most
# this old (sends in this process update it at once; other processes' within this time).
PENDING_CACHE_SECONDS = 2.0


class FeatureOff(NotFound):
    """A feature flag is off: its paths answer 404 as if they did not exist."""


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _title(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    if not value.isprintable():
        raise ValueError("must be one line of printable characters")
    return value


def _script_name(value: str) -> str:
    if not value.strip() or not value.isprintable():
        raise ValueError("must be a non-blank name of printable characters")
    return value


Text = Annotated[StrictStr, AfterValidator(_no_nul)]


class _Targets(BaseModel):
    """`machine_ids` or `"all": true`, never both."""

    model_config = ConfigDict(extra="forbid")

    machine_ids: Annotated[list[MachineId], Field(min_length=1, max_length=MAX_TARGETS)] | None = None
    all: StrictBool = False

    @model_validator(mode="after")
    def _one_target_set(self) -> _Targets:
        if self.all and self.machine_ids is not None:
            raise ValueError('give either "machine_ids" or "all": true, not both')
        if not self.all and self.machine_ids is None:
            raise ValueError('give "machine_ids" (a list of machine ids) or "all": true')
        return self

    def target_ids(self) -> list[str] | None:
        """The machine ids without repeats, in the order given; None for all."""
        return None if self.machine_ids is None else list(dict.fromkeys(self.machine_ids))


class MessageIn(_Targets):
    """Body of POST /api/messages."""

    title: Annotated[Text, Field(min_length=1, max_length=120), AfterValidator(_title)]
    body: Annotated[Text, Field(max_length=4000)] = ""
    severity: Literal["info", "warning", "critical"] = "info"
    expires_in: Annotated[StrictInt, Field(ge=60, le=2_592_000)] = 604_800


class ScriptArgs(BaseModel):
    """`run_script`'s args: a script the machine's allow-list names, and its arguments."""

    model_config = ConfigDict(extra="forbid")

    name: Annotated[Text, Field(min_length=1, max_length=200), AfterValidator(_script_name)]
    args: Annotated[
        list[Annotated[Text, Field(max_length=MAX_SCRIPT_ARG_LENGTH)]], Field(max_length=MAX_SCRIPT_ARGS)
    ] = []


class NoArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommandIn(_Targets):
    """Body of POST /api/commands."""

    kind: Literal["report_now", "refresh_config", "restart_agent", "run_script"]
    args: dict[str, Any] = {}
    expires_in: Annotated[StrictInt, Field(ge=10, le=86_400)] = 3600
    timeout: Annotated[StrictInt, Field(ge=1, le=900)] = 60

    @model_validator(mode="after")
    def _args_fit_the_kind(self) -> CommandIn:
        model = ScriptArgs if self.kind == "run_script" else NoArgs
        try:
            self.args = model.model_validate(self.args).model_dump()
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"bad args for {self.kind}: {where + ': ' if where else ''}{first['msg']}") from None
        return self


class StateIn(BaseModel):
    """Body of POST /api/agent/deliveries/{delivery_id}."""

    model_config = ConfigDict(extra="ignore")

    machine_id: MachineId
    state: Annotated[StrictStr, Field(max_length=20)]
    exit_code: Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)] | None = None
    # The agent keeps 64 KiB; JSON escaping may make the body larger (the route's limit allows it).
    output: Annotated[Text, Field(max_length=4 * OUTPUT_MAX_BYTES)] | None = None


# An agent's state change, done: (the delivery's state now, whether it left `queued`), or the refusal.
Outcome = tuple[str, bool] | ServiceError


@dataclass(frozen=True)
class _Plan:
    """A delivery's change to make: from this state (else someone moved it first), these values."""

    from_state: str
    values: dict[str, Any]
    outcome: Outcome  # the answer once made


@dataclass(frozen=True)
class Sent:
    item_id: str
    deliveries: int


def cap_output(output: str) -> tuple[str, bool]:
    """At most OUTPUT_MAX_BYTES of UTF-8, keeping the end (where errors are), marked when cut."""
    raw = output.encode("utf-8", "surrogatepass")
    if len(raw) <= OUTPUT_MAX_BYTES:
        return output, False
    keep = OUTPUT_MAX_BYTES - len(CUT_MARK.encode())
    return CUT_MARK + raw[-keep:].decode("utf-8", "ignore"), True


def _delivery_public(row: Any, item_type: str) -> dict[str, Any]:
    out: dict[str, Any] = {
        "delivery_id": str(row.id),
        "machine_id": row.machine_id,
        "state": row.state,
        "updated": row.updated,
        "delivered_at": row.delivered_at,
        "finished_at": row.finished_at,
    }
    if item_type == COMMAND:
        out.update(exit_code=row.exit_code, output=row.output, output_cut=row.output_cut)
    return out


def _item_public(r: Any) -> dict[str, Any]:
    """A queued delivery as the agent's inbox gives it (PROTOCOL-messages.md's Item)."""
    if r.message_id is not None:
        message = {
            "message_id": r.message_id,
            "title": r.title,
            "body": r.body,
            "severity": r.severity,
            "created": r.message_created,
        }
        return {"delivery_id": str(r.id), "type": MESSAGE, "expires": r.expires, "message": message}
    command = {
        "command_id": r.command_id,
        "kind": r.kind,
        "args": json.loads(r.args),
        "timeout": r.timeout,
        "created": r.command_created,
    }
    return {"delivery_id": str(r.id), "type": COMMAND, "expires": r.expires, "command": command}


def progress(counts: dict[str, int], item_type: str) -> dict[str, int]:
    """How far an item got: each state's count, and how many got at least as far as delivered."""
    total = sum(counts.values())
    not_delivered = sum(counts.get(s, 0) for s in ("queued", "expired", "cancelled"))
    done = (
        counts.get("acknowledged", 0) if item_type == MESSAGE else sum(counts.get(s, 0) for s in FINAL_COMMAND_STATES)
    )
    return {"total": total, "delivered": total - not_delivered, "done": done}


def _delivery_row_id(delivery_id: str) -> int:
    """The delivery's row id from the path; anything else is no delivery (404)."""
    try:
        row_id = int(delivery_id)
    except ValueError:
        raise NotFound("no such delivery for this machine") from None
    if not 0 < row_id < 2**63:
        raise NotFound("no such delivery for this machine")
    return row_id


class MessagingService:
    def __init__(self, engine: Engine, settings: Settings, wakeups: Wakeups, writer: GroupWriter) -> None:
        self.engine = engine
        self.settings = settings
        self.wakeups = wakeups
        self.writer = writer
        self._inbox_wanted: dict[tuple[int, str], list[asyncio.Future[list[dict[str, Any]]]]] = {}
        self._inbox_reader: asyncio.Future[None] | None = None
        self._pending: dict[int, tuple[float, frozenset[str]]] = {}
        self._pending_loads: dict[int, asyncio.Future[frozenset[str]]] = {}
        # Bumped whenever an organisation's set is dropped: a load that ran meanwhile (and may have
        # read the database before the change) is not kept.
        self._pending_generation: dict[int, int] = {}
        wakeups.on_wake = self._forget_pending  # a send in another process: read the set again

    # -- flags ----------------------------------------------------------------------------------
    def enabled(self, item_type: str) -> bool:
        return bool(self.settings.feature_messaging if item_type == MESSAGE else self.settings.feature_commands)

    def enabled_types(self) -> tuple[str, ...]:
        return tuple(t for t in (MESSAGE, COMMAND) if self.enabled(t))

    def require(self, item_type: str) -> None:
        if not self.enabled(item_type):
            raise FeatureOff(f"{FEATURE_OF[item_type]} is not enabled on this server")

    def require_any(self) -> None:
        if not self.enabled_types():
            raise FeatureOff("messages and commands are not enabled on this server")

    # -- sending (admins) -----------------------------------------------------------------------
    async def send_message(self, *, org_id: int, message: MessageIn, actor: Actor | str) -> Sent:
        self.require(MESSAGE)
        row = {"title": message.title, "body": message.body, "severity": message.severity}
        return await self._send(org_id, MESSAGE, row, message, message.expires_in, actor)

    async def send_command(self, *, org_id: int, command: CommandIn, actor: Actor | str) -> Sent:
        self.require(COMMAND)
        row = {"kind": command.kind, "args": json.dumps(command.args), "timeout": command.timeout}
        return await self._send(org_id, COMMAND, row, command, command.expires_in, actor)

    async def _send(
        self,
        org_id: int,
        item_type: str,
        fields: dict[str, Any],
        targets: _Targets,
        expires_in: int,
        actor: Actor | str,
    ) -> Sent:
        machine_ids = targets.target_ids()
        sent = await run_in_threadpool(self._create, org_id, item_type, fields, machine_ids, expires_in, actor)
        if sent.deliveries:
            self._forget_pending(org_id)  # the hint and the inbox see the new deliveries at once
            await self.wakeups.wake(org_id, machine_ids)
        return sent

    def _create(
        self,
        org_id: int,
        item_type: str,
        fields: dict[str, Any],
        machine_ids: list[str] | None,
        expires_in: int,
        actor: Actor | str,
    ) -> Sent:
        now = time.time()
        item_id = uuid.uuid4().hex
        expires = now + expires_in
        with self.engine.begin() as conn:
            if machine_ids is not None:
                known = repo.known_machine_ids(conn, org_id=org_id, machine_ids=machine_ids)
                missing = [m for m in machine_ids if m not in known]
                if missing:
                    more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                    raise NotFound(f"no machine {missing[0]!r} in this organisation{more}; nothing was sent")
            item = {
                "id": item_id,
                "org_id": org_id,
                "created": now,
                "expires": expires,
                "created_by": str(actor)[:400],
                "target_all": machine_ids is None,
                "targets": 0 if machine_ids is None else len(machine_ids),
                **fields,
            }
            repo.insert_item(conn, item_type, item)
            args: dict[str, Any] = {
                "org_id": org_id,
                "item_type": item_type,
                "item_id": item_id,
                "expires": expires,
                "now": now,
            }
            if machine_ids is None:
                count = repo.insert_deliveries_to_all(conn, **args)
                repo.set_targets(conn, item_type=item_type, item_id=item_id, targets=count)
            else:
                count = repo.insert_deliveries(conn, machine_ids=machine_ids, **args)
            summary: dict[str, Any] = {k: fields[k] for k in ("kind", "args", "title", "severity") if k in fields}
            audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action=f"{item_type}.send",
                target=f"{item_type} {item_id}",
                detail={**summary, "machines": "all" if machine_ids is None else machine_ids[:20], "deliveries": count},
            )
        return Sent(item_id=item_id, deliveries=count)

    def cancel(self, *, org_id: int, item_type: str, item_id: str, actor: Actor | str = UNATTRIBUTED) -> int:
        """Deliveries not yet delivered become cancelled; returns how many."""
        self.require(item_type)
        now = time.time()
        with self.engine.begin() as conn:
            if repo.get_item(conn, org_id=org_id, item_type=item_type, item_id=item_id) is None:
                raise NotFound(f"no {item_type} with that id in this organisation")
            repo.expire_due(conn, now=now, item_type=item_type, item_id=item_id)  # expired stays expired
            cancelled = repo.cancel_queued(conn, org_id=org_id, now=now, item_type=item_type, item_id=item_id)
            audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action=f"{item_type}.cancel",
                target=f"{item_type} {item_id}",
                detail={"cancelled": cancelled},
            )
        self._forget_pending(org_id)
        return cancelled

    # -- reading (readers and admins) -----------------------------------------------------------
    def _fresh_item(self, conn: Any, org_id: int, item_type: str, item_id: str) -> Any:
        """The item, its overdue deliveries first marked expired (expiry on read)."""
        item = repo.get_item(conn, org_id=org_id, item_type=item_type, item_id=item_id)
        if item is None:
            raise NotFound(f"no {item_type} with that id in this organisation")
        if item.expires <= time.time():
            repo.expire_due(conn, now=time.time(), item_type=item_type, item_id=item_id)
        return item

    def item(self, *, org_id: int, item_type: str, item_id: str, with_deliveries: bool = True) -> dict[str, Any]:
        """The contract's GET /api/messages/{id} or /api/commands/{id}, plus progress counts."""
        self.require(item_type)
        with self.engine.begin() as conn:
            item = self._fresh_item(conn, org_id, item_type, item_id)
            counts = repo.state_counts(conn, item_type=item_type, item_ids=[item_id])[item_id]
            deliveries = repo.deliveries_of(conn, item_type=item_type, item_id=item_id) if with_deliveries else []
        out = self._item_public(item, item_type, counts)
        if with_deliveries:
            out["deliveries"] = [_delivery_public(d, item_type) for d in deliveries]
        return out

    def item_deliveries(
        self, *, org_id: int, item_type: str, item_id: str, limit: int, offset: int = 0, machine_id: str | None = None
    ) -> list[dict[str, Any]]:
        """One page of an item's deliveries, by machine id (the web UI's drill-down)."""
        self.require(item_type)
        with self.engine.begin() as conn:
            self._fresh_item(conn, org_id, item_type, item_id)
            rows = repo.deliveries_of(
                conn, item_type=item_type, item_id=item_id, limit=limit, offset=offset, machine_id=machine_id
            )
        return [_delivery_public(d, item_type) for d in rows]

    def _item_public(self, item: Any, item_type: str, counts: dict[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {f"{item_type}_id": item.id}
        if item_type == MESSAGE:
            out.update(title=item.title, body=item.body, severity=item.severity)
        else:
            out.update(kind=item.kind, args=json.loads(item.args), timeout=item.timeout)
        out.update(
            created=item.created,
            expires=item.expires,
            created_by=item.created_by,
            all=item.target_all,
            counts=counts,
            progress=progress(counts, item_type),
        )
        return out

    def list_items(self, *, org_id: int, item_type: str, limit: int = 50, offset: int = 0) -> dict[str, Any]:
        """The organisation's messages or commands, newest first, each with its progress."""
        self.require(item_type)
        now = time.time()
        with self.engine.begin() as conn:
            count, rows = repo.list_items(conn, org_id=org_id, item_type=item_type, limit=limit, offset=offset)
            for row in rows:
                if row.expires <= now:
                    repo.expire_due(conn, now=now, item_type=item_type, item_id=row.id)
            counts = repo.state_counts(conn, item_type=item_type, item_ids=[r.id for r in rows])
        return {"count": count, "data": [self._item_public(r, item_type, counts[r.id]) for r in rows]}

    def machine_deliveries(
        self, *, org_id: int, machine_id: str, item_type: str, limit: int = 20
    ) -> list[dict[str, Any]]:
        """A machine's latest deliveries of one kind with their item (the machine page's panels)."""
        self.require(item_type)
        with self.engine.begin() as conn:
            repo.expire_due(conn, now=time.time(), org_id=org_id, machine_id=machine_id)
            rows = repo.machine_deliveries(conn, org_id=org_id, machine_id=machine_id, item_type=item_type, limit=limit)
        out = []
        for row in rows:
            entry = _delivery_public(row, item_type)
            entry["item_id"] = row.item_id
            entry["created"] = row.item_created
            if item_type == MESSAGE:
                entry.update(title=row.item_title, body=row.item_body, severity=row.item_severity)
            else:
                entry.update(kind=row.item_kind, args=json.loads(row.item_args))
            out.append(entry)
        return out

    # -- agents -------------------------------------------------------------------------------------
    def inbox(self, *, org_id: int, machine_id: str) -> list[dict[str, Any]]:
        """The machine's queued items of the enabled features (PROTOCOL-messages.md's Item)."""
        return self.inboxes([(org_id, machine_id)]).get((org_id, machine_id), [])

    def inboxes(self, machines: Sequence[tuple[int, str]]) -> dict[tuple[int, str], list[dict[str, Any]]]:
        """`inbox` of each (org_id, machine_id), in one query per organisation (and 1,000 machines)."""
        types = self.enabled_types()
        by_org: dict[int, list[str]] = {}
        for org_id, machine_id in machines:
            by_org.setdefault(org_id, []).append(machine_id)
        out: dict[tuple[int, str], list[dict[str, Any]]] = {}
        now = time.time()
        with self.engine.connect() as conn:
            for org_id, machine_ids in by_org.items():
                rows = repo.queued_items(conn, org_id=org_id, machine_ids=machine_ids, now=now, item_types=types)
                for r in rows:
                    out.setdefault((org_id, r.machine_id), []).append(_item_public(r))
        return out

    async def _read_inbox(self, org_id: int, machine_id: str) -> list[dict[str, Any]]:
        """The machine's inbox, read together with those of every other machine asking meanwhile:
        a send wakes all its machines' agents at once, and 1,000 reads of one inbox each (a worker
        thread and a connection apiece) took seconds where one query takes milliseconds."""
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._inbox_wanted.setdefault((org_id, machine_id), []).append(future)
        if self._inbox_reader is None or self._inbox_reader.done():
            self._inbox_reader = asyncio.ensure_future(self._read_inboxes())
        return await future

    async def _read_inboxes(self) -> None:
        # While one batch is read, the next gathers (as the group writer's batches do).
        while self._inbox_wanted:
            wanted, self._inbox_wanted = self._inbox_wanted, {}
            try:
                found = await run_in_threadpool(self.inboxes, list(wanted))
            except Exception as exc:  # noqa: BLE001 - each request gets the error (and its answer)
                for futures in wanted.values():
                    for future in futures:
                        if not future.done():  # not a request that ended meanwhile
                            future.set_exception(exc)
                continue
            for key, futures in wanted.items():
                for future in futures:
                    if not future.done():
                        future.set_result(found.get(key, []))

    async def wait_for_inbox(self, *, org_id: int, machine_id: str, wait: float) -> list[dict[str, Any]]:
        """The inbox now, else as soon as something arrives within `wait` seconds, else []."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        with self.wakeups.waiting(org_id, machine_id) as arrived:
            while True:
                # Most polls find nothing: the per-organisation set of machines with something
                # queued answers them without a query (10,000 waiting agents cost one per 2 s).
                items = []
                if await self.has_queued(org_id=org_id, machine_id=machine_id):
                    items = await self._read_inbox(org_id, machine_id)
                left = deadline - loop.time()
                if items or left <= 0:
                    return items
                try:
                    await asyncio.wait_for(arrived.wait(), left)
                except TimeoutError:
                    return []
                arrived.clear()  # woken: read again (a wake-up for the organisation may not be ours)

    def post_state(self, *, org_id: int, delivery_id: str, state: StateIn) -> str:
        """An agent's state change for one of its machine's deliveries, in a transaction of its own
        (the web UI's tests and tools); returns the state now. Agents' requests go through
        `accept_state`, which shares the writer's transactions."""
        self.require_any()
        row_id = _delivery_row_id(delivery_id)
        with self.engine.begin() as conn:
            outcome = self._move(conn, org_id, row_id, state)
        return self._outcome(org_id, outcome)

    async def accept_state(self, *, org_id: int, delivery_id: str, state: StateIn) -> str:
        """`post_state` for an agent's request: the change joins the group writer's next transaction
        with every other state change waiting, read and written a few statements for them all
        (1,000 agents posting `delivered` at once: docs/benchmarks.md, "Messages and commands")."""
        self.require_any()
        row_id = _delivery_row_id(delivery_id)
        outcome = await self.writer.run(
            self._move_all, (org_id, row_id, state), org_id=org_id, machine_id=state.machine_id
        )
        return self._outcome(org_id, outcome)

    def _outcome(self, org_id: int, outcome: Outcome) -> str:
        if isinstance(outcome, ServiceError):
            raise outcome
        state, was_queued = outcome
        if was_queued:
            self._forget_pending(org_id)  # the machine may have nothing queued now
        return state

    def _move_all(self, conn: Any, moves: list[tuple[int, int, StateIn]]) -> list[Outcome]:
        """`_move` of each (org_id, delivery row id, state) in order, in `conn`'s transaction: one
        read for all, and one conditional update per distinct change (RETURNING says which rows it
        moved). A row moved by someone else between the read and the update, and a second change
        of one delivery in the batch, are done one by one with `_move` afterwards, which reads again."""
        now = time.time()
        rows = repo.get_deliveries(conn, delivery_ids=sorted({row_id for _, row_id, _ in moves}))
        outcomes: list[Outcome | None] = [None] * len(moves)
        planned: dict[tuple[str, tuple[tuple[str, Any], ...]], list[tuple[int, _Plan]]] = {}
        one_by_one: list[int] = []
        seen: set[int] = set()
        for n, (org_id, row_id, state) in enumerate(moves):
            if row_id in seen:
                one_by_one.append(n)
                continue
            seen.add(row_id)
            row = rows.get(row_id)
            decision = self._decide(None if row is None or row.org_id != org_id else row, state, now)
            if isinstance(decision, _Plan):
                key = (decision.from_state, tuple(sorted(decision.values.items())))
                planned.setdefault(key, []).append((n, decision))
            else:
                outcomes[n] = decision
        for (from_state, values), plans in planned.items():
            ids = [moves[n][1] for n, _ in plans]
            moved = repo.move_deliveries(conn, delivery_ids=ids, from_state=from_state, values=dict(values))
            for n, plan in plans:
                if moves[n][1] in moved:
                    outcomes[n] = plan.outcome
                else:
                    one_by_one.append(n)
        for n in sorted(one_by_one):
            outcomes[n] = self._move(conn, *moves[n])
        return [outcome for outcome in outcomes if outcome is not None]

    def _move(self, conn: Any, org_id: int, row_id: int, state: StateIn) -> Outcome:
        """Apply one state change in `conn`'s transaction: (the state now, whether it left queued),
        or the refusal. A refusal is returned, not raised, so that the writes it made (an overdue
        delivery marked expired) and the other changes of a shared transaction are kept."""
        row = repo.get_delivery(conn, org_id=org_id, delivery_id=row_id)
        decision = self._decide(row, state, time.time())
        if not isinstance(decision, _Plan):
            return decision
        if repo.move_delivery(conn, delivery_id=row_id, from_state=decision.from_state, values=decision.values):
            return decision.outcome
        if decision.values["state"] == "expired":
            return decision.outcome
        now_row = repo.get_delivery(conn, org_id=org_id, delivery_id=row_id)
        current = now_row.state if now_row is not None else "cancelled"
        if current == state.state:
            return str(current), False
        return StateConflict(f"the delivery changed meanwhile (now {current})", current)

    def _decide(self, row: Any, state: StateIn, now: float) -> Outcome | _Plan:
        """What an agent's state change does to the delivery `row` (None: none of its organisation):
        a refusal or an answer at once, or the row's change to make (and the answer if it is made)."""
        if row is None or row.machine_id != state.machine_id:
            return NotFound("no such delivery for this machine")
        item_type = MESSAGE if row.message_id is not None else COMMAND
        if not self.enabled(item_type):
            return NotFound("no such delivery for this machine")
        if state.state not in AGENT_STATES[item_type]:
            return InvalidInput(f"an agent posts one of {', '.join(AGENT_STATES[item_type])} for a {item_type}")
        refused = self._check_result(item_type, state)
        if refused is not None:
            return refused
        if state.state == row.state:
            return str(row.state), False  # a retried request: nothing to do
        overdue = row.expires <= now and (row.state == "queued" or (item_type == COMMAND and row.state == "delivered"))
        if overdue:
            expired = {"state": "expired", "updated": now, "finished_at": now}
            return _Plan(row.state, expired, StateConflict("this delivery expired before it was taken", "expired"))
        if state.state not in AGENT_MOVES[item_type].get(row.state, frozenset()):
            return StateConflict(f"cannot go from {row.state} to {state.state}", row.state)
        values: dict[str, Any] = {"state": state.state, "updated": now}
        if row.delivered_at is None:
            values["delivered_at"] = now
        if state.state in FINAL_COMMAND_STATES or state.state == "acknowledged":
            values["finished_at"] = now
        if item_type == COMMAND:
            if state.exit_code is not None:
                values["exit_code"] = state.exit_code
            if state.output is not None:
                values["output"], values["output_cut"] = cap_output(state.output)
        return _Plan(row.state, values, (state.state, row.state == "queued"))

    @staticmethod
    def _check_result(item_type: str, state: StateIn) -> InvalidInput | None:
        if item_type == MESSAGE and (state.exit_code is not None or state.output is not None):
            return InvalidInput("a message's state carries no exit_code or output")
        if state.exit_code is not None and state.state not in FINAL_COMMAND_STATES:
            return InvalidInput("exit_code comes only with a final state (succeeded, failed, timed_out)")
        return None

    async def has_queued(self, *, org_id: int, machine_id: str) -> bool:
        """Whether something waits for the machine (the heartbeat's hint), from a per-organisation
        set at most PENDING_CACHE_SECONDS old: a heartbeat costs a lookup, not a query."""
        entry = self._pending.get(org_id)
        if entry is None or entry[0] < time.monotonic():
            load = self._pending_loads.get(org_id)
            if load is None:  # one query per organisation, however many heartbeats ask meanwhile
                load = asyncio.ensure_future(self._load_pending(org_id))
                self._pending_loads[org_id] = load
            ids = await asyncio.shield(load)
        else:
            ids = entry[1]
        return machine_id in ids

    def _forget_pending(self, org_id: int) -> None:
        self._pending.pop(org_id, None)
        self._pending_loads.pop(org_id, None)  # a load under way may predate the change: not shared
        self._pending_generation[org_id] = self._pending_generation.get(org_id, 0) + 1

    async def _load_pending(self, org_id: int) -> frozenset[str]:
        generation = self._pending_generation.get(org_id, 0)
        expires = time.monotonic() + PENDING_CACHE_SECONDS
        types = self.enabled_types()
        try:
            ids = frozenset(await run_in_threadpool(self._machines_with_queued, org_id, types))
        finally:
            if generation == self._pending_generation.get(org_id, 0):
                self._pending_loads.pop(org_id, None)
        if generation == self._pending_generation.get(org_id, 0):
            self._pending[org_id] = (expires, ids)
        return ids

    def _machines_with_queued(self, org_id: int, types: Sequence[str]) -> set[str]:
        with self.engine.connect() as conn:
            return repo.machines_with_queued(conn, org_id=org_id, now=time.time(), item_types=types)

    # -- the server's own changes -------------------------------------------------------------------
    def queued_count(self) -> int:
        """All organisations' deliveries waiting for their machines: GET /metrics's backlog."""
        with self.engine.connect() as conn:
            return repo.count_queued(conn)

    def maintain(self) -> int:
        """Expire every overdue delivery (the background job); returns how many."""
        with self.engine.begin() as conn:
            return repo.expire_due(conn, now=time.time())


class StateConflict(Conflict):
    """409 with the delivery's state now (the agent learns it was cancelled or expired)."""

    def __init__(self, message: str, state: str) -> None:
        super().__init__(message)
        self.state = state


__all__ = [
    "COMMAND",
    "COMMAND_KINDS",
    "MESSAGE",
    "CommandIn",
    "FeatureOff",
    "MessageIn",
    "MessagingService",
    "ServiceError",
    "Sent",
    "StateConflict",
    "StateIn",
]
