"""Alert evaluation: thresholds as reports arrive, offline and silences in a background sweep.

The state of each rule on each machine is a row (models/alerts.py); this process keeps a copy of
every row that is not plain `ok`, with the rules and silences, in dictionaries keyed by
organisation and machine. A report or heartbeat that changes nothing costs a dictionary lookup
and a few comparisons. A change is written in the report's own transaction (the group writer) with
its event and outbox rows, as a compare-and-set on the row, so two server processes never apply
one change twice. The sweep (every ALERT_SWEEP_SECONDS) re-reads the rows, so changes made by
other processes reach this one's copy within a sweep, and decides what only the server's clock
can: offline machines, pending alerts that came due, unknown while offline, silences that ended.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine

from admin.core.config import Settings
from admin.repositories import alerts as repo
from admin.services.channels import PEOPLE_KINDS

log = logging.getLogger(__name__)

WEEK = 7 * 86400
HELD = frozenset(("firing", "silenced"))  # states in which an offline rule holds a machine already
# Rule id -> the kinds of its channels that still exist (None: the rule is gone), as one transaction found them.
RulesSeen = dict[int, dict[int, str] | None]


@dataclass(frozen=True, slots=True)
class Rule:
    id: int
    org_id: int
    name: str
    kind: str
    threshold: float
    clear: float  # resolves below this
    for_seconds: int
    severity: str
    channels: tuple[int, ...]
    machines: frozenset[str] | None  # None: the whole organisation

    def applies_to(self, machine_id: str) -> bool:
        return self.machines is None or machine_id in self.machines


@dataclass(frozen=True, slots=True)
class State:
    state: str  # pending, firing, silenced, unknown; ok only while a resolution is still untold
    since: float
    due_at: float | None
    value: float | None
    notified: bool  # the channels were told it fires (and not yet that it resolved)

    def as_row(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "since": self.since,
            "due_at": self.due_at,
            "value": self.value,
            "notified": self.notified,
        }


@dataclass(frozen=True, slots=True)
class Silence:
    machines: frozenset[str] | None
    starts: float
    ends: float
    weekly: bool

    def covers(self, machine_id: str, now: float) -> bool:
        if self.machines is not None and machine_id not in self.machines:
            return False
        if now < self.starts:
            return False
        if not self.weekly:
            return now < self.ends
        return (now - self.starts) % WEEK < self.ends - self.starts

    def window_end(self, now: float) -> float:
        """The end of the window that covers `now` (call only when it does)."""
        if not self.weekly:
            return self.ends
        return now - (now - self.starts) % WEEK + (self.ends - self.starts)


@dataclass(slots=True)
class OrgAlerts:
    metric_rules: list[Rule] = field(default_factory=list)
    offline_rules: list[Rule] = field(default_factory=list)
    rules: dict[int, Rule] = field(default_factory=dict)
    silences: list[Silence] = field(default_factory=list)
    states: dict[str, dict[int, State]] = field(default_factory=dict)

    def silenced(self, machine_id: str, now: float) -> bool:
        return any(s.covers(machine_id, now) for s in self.silences)

    def silenced_until(self, machine_id: str, now: float) -> float | None:
        """When the machine's silences that cover `now` end (overlapping windows chain); None: not silenced."""
        until: float | None = None
        moment = now
        while True:
            ends = [s.window_end(moment) for s in self.silences if s.covers(machine_id, moment)]
            if not ends or (until is not None and max(ends) <= until):
                return until
            until = moment = max(ends)


@dataclass(slots=True)
class Change:
    org_id: int
    rule: Rule
    machine_id: str
    old: State | None
    new: State | None  # None: ok with nothing left to tell (the row is deleted)
    event: str | None  # firing, resolved or None
    value: float | None
    at: float
    applied: bool = False
    not_before: float | None = None  # its notices wait until then (a silence's end)


def decide(
    rule: Rule, machine_id: str, old: State | None, target: str, *, silenced: bool, now: float, value: float | None
) -> Change | None:
    """The change that takes `old` towards `target` (ok, firing or unknown); None if it is there.
    A silence keeps a change from being told (state `silenced`, or a resolution held back)."""
    notified = old.notified if old else False
    event: str | None = None
    new: State | None
    if target == "ok":
        if not notified:
            new = None
        elif silenced:  # resolved inside a silence: told when it ends, unless it fires again
            new = State("ok", old.since if old and old.state == "ok" else now, None, value, True)
        else:
            new, event = None, "resolved"
    else:
        state = "silenced" if target == "firing" and silenced else target
        if target == "firing" and not silenced and not notified:
            event, notified = "firing", True
        since = old.since if old and old.state == state else now
        kept = value if target == "firing" else (old.value if old else None)
        new = State(state, since, None, kept, notified)
    if old is None and new is None:
        return None
    if old is not None and new is not None and (old.state, old.notified, old.due_at) == (new.state, new.notified, None):
        return None
    return Change(rule.org_id, rule, machine_id, old, new, event, value, now)


def _pending(rule: Rule, machine_id: str, old: State | None, now: float, value: float) -> Change:
    notified = old.notified if old else False
    new = State("pending", now, now + rule.for_seconds, value, notified)
    return Change(rule.org_id, rule, machine_id, old, new, None, value, now)


def _json_ids(text: str | None) -> frozenset[str] | None:
    return None if text is None else frozenset(json.loads(text))


def rule_of(r: Any) -> Rule:
    """The engine's rule from its row."""
    threshold = r.threshold if r.threshold is not None else 0.0
    return Rule(
        id=r.id,
        org_id=r.org_id,
        name=r.name,
        kind=r.kind,
        threshold=threshold,
        clear=r.clear_below if r.clear_below is not None else threshold,
        for_seconds=r.for_seconds,
        severity=r.severity,
        channels=tuple(json.loads(r.channels)),
        machines=_json_ids(r.machine_ids),
    )


class AlertEngine:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.started = time.time()  # no offline alert before a whole offline window of uptime
        self.orgs: dict[int, OrgAlerts] = {}
        self._versions: dict[int, int] = {}  # bumped by every local change, so a sweep never undoes one
        self.on_event: Callable[[], None] = lambda: None  # wakes the notifier

    # -- the cached copy ---------------------------------------------------------------------------
    def load(
        self, conn: Connection, now: float, last_seen: dict[tuple[int, str], float] | None = None
    ) -> dict[int, OrgAlerts]:
        """Rules, silences and states by organisation; with `last_seen`, also fills
        it with the last contact of each machine that has a state (read in the same query)."""
        orgs: dict[int, OrgAlerts] = {}
        for r in repo.all_rules(conn):
            org = orgs.setdefault(r.org_id, OrgAlerts())
            rule = rule_of(r)
            org.rules[rule.id] = rule
            (org.offline_rules if rule.kind == "offline" else org.metric_rules).append(rule)
        for s in repo.all_silences(conn, now=now):
            if s.org_id in orgs:
                orgs[s.org_id].silences.append(Silence(_json_ids(s.machine_ids), s.starts, s.ends, s.weekly))
        for s in repo.active_states(conn):
            if s.org_id in orgs:
                state = State(s.state, s.since, s.due_at, s.value, s.notified)
                orgs[s.org_id].states.setdefault(s.machine_id, {})[s.rule_id] = state
                if last_seen is not None and s.machine_last_seen is not None:
                    last_seen[(s.org_id, s.machine_id)] = s.machine_last_seen
        return orgs

    def refresh(self) -> None:
        """Re-read everything now (start-up, and after this process changed a rule, channel or silence)."""
        with self.engine.connect() as conn:
            self.orgs = self.load(conn, time.time())

    def _install(self, snapshot: dict[int, OrgAlerts], versions: dict[int, int]) -> None:
        """Take a sweep's snapshot, keeping this process's copy of organisations that changed
        locally while it was read (their rows are newer than the snapshot)."""
        for org_id, org in self.orgs.items():
            if self._versions.get(org_id, 0) != versions.get(org_id, 0) and org_id in snapshot:
                snapshot[org_id].states = org.states
        self.orgs = snapshot

    def _remember(self, change: Change) -> None:
        org = self.orgs.get(change.org_id)
        if org is None:
            return
        self._versions[change.org_id] = self._versions.get(change.org_id, 0) + 1
        states = org.states.setdefault(change.machine_id, {})
        if change.new is None:
            states.pop(change.rule.id, None)
            if not states:
                del org.states[change.machine_id]
        else:
            states[change.rule.id] = change.new

    # -- the hot path ----------------------------------------------------------------------------------
    def on_report(self, org_id: int, machine_id: str, report: dict[str, Any], now: float) -> list[Change] | None:
        """The changes a report makes (None: none, the usual answer)."""
        org = self.orgs.get(org_id)
        if org is None:
            return None
        states = org.states.get(machine_id)
        changes: list[Change] | None = None
        values = _metrics(report) if org.metric_rules else None
        for rule in org.metric_rules:
            if rule.machines is not None and machine_id not in rule.machines:
                continue
            value = values[rule.kind]  # type: ignore[index]
            if value is None:
                continue  # a sensor the agent could not read (null) neither fires nor clears a rule
            old = states.get(rule.id) if states else None
            if old is None and value <= rule.threshold:
                continue  # the usual case: nothing to do
            change = self._metric_change(org, rule, machine_id, old, now, value)
            if change is not None:
                changes = changes or []
                changes.append(change)
        if states:
            changes = self._back_online(org, machine_id, states, now, changes)
        return changes

    def on_ping(self, org_id: int, machine_id: str, now: float) -> list[Change] | None:
        org = self.orgs.get(org_id)
        if org is None:
            return None
        states = org.states.get(machine_id)
        return self._back_online(org, machine_id, states, now, None) if states else None

    def _to(
        self,
        org: OrgAlerts,
        rule: Rule,
        machine_id: str,
        old: State | None,
        target: str,
        now: float,
        value: float | None,
    ) -> Change | None:
        # The silences are looked at only when something is to be told.
        needs = target == "firing" or (old is not None and old.notified)
        silenced = org.silenced(machine_id, now) if needs else False
        return decide(rule, machine_id, old, target, silenced=silenced, now=now, value=value)

    def _metric_change(
        self, org: OrgAlerts, rule: Rule, machine_id: str, old: State | None, now: float, value: float
    ) -> Change | None:
        if old is None or old.state == "ok":  # ok, or ok with a resolution still untold
            if value > rule.threshold:
                if rule.for_seconds:
                    return _pending(rule, machine_id, old, now, value)
                return self._to(org, rule, machine_id, old, "firing", now, value)
            if old is not None and value < rule.clear:
                return self._to(org, rule, machine_id, old, "ok", now, value)
            return None
        if old.state == "pending":
            if value <= rule.threshold:
                return self._to(org, rule, machine_id, old, "ok", now, value)
            if old.due_at is not None and now >= old.due_at:
                return self._to(org, rule, machine_id, old, "firing", now, value)
            return None
        if old.state in ("firing", "silenced"):
            return self._to(org, rule, machine_id, old, "ok", now, value) if value < rule.clear else None
        # unknown: the machine is back; it still fires, or it does not
        if value > rule.threshold or (value >= rule.clear and old.notified):
            return self._to(org, rule, machine_id, old, "firing", now, value)
        return self._to(org, rule, machine_id, old, "ok", now, value)

    def _back_online(
        self, org: OrgAlerts, machine_id: str, states: dict[int, State], now: float, changes: list[Change] | None
    ) -> list[Change] | None:
        for rule in org.offline_rules:
            old = states.get(rule.id)
            if old is not None and old.state != "ok":
                change = self._to(org, rule, machine_id, old, "ok", now, None)
                if change is not None:
                    changes = changes or []
                    changes.append(change)
        return changes

    def writer_for(self, changes: list[Change]) -> Callable[[Connection], None]:
        """What the group writer runs in the report's transaction."""

        def write(conn: Connection) -> None:
            rules: RulesSeen = {}
            for change in changes:
                change.applied = self.write_change(conn, change, rules)

        return write

    def remember(self, changes: Sequence[Change]) -> None:
        """After the commit: this process's copy follows what was written."""
        told = False
        for change in changes:
            if change.applied:
                self._remember(change)
                told = told or change.event is not None
        if told:
            self.on_event()

    # -- writing one change -----------------------------------------------------------------------------
    def write_change(self, conn: Connection, change: Change, rules: RulesSeen | None = None) -> bool:
        """Writes one change in `conn`'s transaction; False when it is not to be (the row changed or
        the rule went meanwhile). `rules`: what this transaction found of each rule so far."""
        # This process's copy of the rules and channels may lag behind a deletion made through
        # another process; rows referring to them must not (a failing foreign key costs the report).
        rules = {} if rules is None else rules
        if change.rule.id not in rules:
            rules[change.rule.id] = repo.live_rule(
                conn, rule_id=change.rule.id, org_id=change.org_id, channels=change.rule.channels
            )
        kinds = rules[change.rule.id]
        if kinds is None:
            return False  # the rule is gone; the next sweep's copy no longer has it
        key = {"org_id": change.org_id, "rule_id": change.rule.id, "machine_id": change.machine_id}
        old = change.old.as_row() if change.old else None
        new = change.new.as_row() if change.new else None
        if not repo.claim_state(conn, old, new, key):
            return False  # another process got there first; the next sweep brings its row here
        if change.event is None:
            return True
        event_id = str(uuid.uuid4())
        deliveries = []
        for channel_id in change.rule.channels:
            kind = kinds.get(channel_id)
            if kind is None:
                continue  # deleted meanwhile
            due = max(change.at, change.not_before or change.at)
            if kind in PEOPLE_KINDS:  # join the group waiting for this channel, or start one
                due = repo.pending_group_due(conn, channel_id=channel_id, after=change.at) or (
                    change.at + self.settings.alert_group_seconds
                )
            deliveries.append(
                {
                    "org_id": change.org_id,
                    "event_id": event_id,
                    "channel_id": channel_id,
                    "state": "pending",
                    "due_at": due,
                }
            )
        repo.insert_event(
            conn,
            {
                "id": event_id,
                "org_id": change.org_id,
                "rule_id": change.rule.id,
                "rule": change.rule.name,
                "kind": change.rule.kind,
                "severity": change.rule.severity,
                "machine_id": change.machine_id,
                "event": change.event,
                "value": change.value,
                "at": change.at,
            },
            deliveries,
        )
        return True

    # -- a rule leaves machines (deleted, or narrowed to fewer machines) -------------------------------
    def retire(self, conn: Connection, row: Any, *, keep: frozenset[str] | None = None) -> int:
        """In the caller's transaction: drop the state of `row`'s rule on every machine (but those
        in `keep`), telling "resolved" where the channels were told it fires, each once. A resolution
        held back by a silence is sent at the silence's end, as one that resolved inside it would be.
        Returns how many resolutions were written (the caller wakes the notifier after its commit)."""
        rule = rule_of(row)
        now = time.time()
        org = self.orgs.get(rule.org_id) or OrgAlerts()
        told = 0
        rules: RulesSeen = {}
        for s in repo.rule_states(conn, rule_id=rule.id, lock=conn.dialect.name == "postgresql"):
            if keep is not None and s.machine_id in keep:
                continue
            old = State(s.state, s.since, s.due_at, s.value, s.notified)
            event = "resolved" if s.notified else None
            change = Change(rule.org_id, rule, s.machine_id, old, None, event, None, now)
            change.not_before = org.silenced_until(s.machine_id, now) if event else None
            if self.write_change(conn, change, rules) and event:
                told += 1
        return told

    # -- the sweep ----------------------------------------------------------------------------------------
    def sweep(self) -> tuple[dict[int, OrgAlerts], dict[int, int], list[Change]]:
        """Runs in a worker thread: reads a snapshot, decides and writes what the clock decides.
        `install_sweep` then takes the result on the event loop."""
        now = time.time()
        versions = dict(self._versions)
        last_seen: dict[tuple[int, str], float] = {}  # a machine missing here is gone
        with self.engine.connect() as conn:
            snapshot = self.load(conn, now, last_seen)
            changes = self._clock_changes(snapshot, last_seen, now)
            changes += self._offline_changes(conn, snapshot, now)
        self._write_all(changes)
        for change in changes:  # the snapshot follows what was written
            if change.applied:
                states = snapshot[change.org_id].states.setdefault(change.machine_id, {})
                if change.new is None:
                    states.pop(change.rule.id, None)
                else:
                    states[change.rule.id] = change.new
        return snapshot, versions, changes

    def _offline_changes(self, conn: Connection, snapshot: dict[int, OrgAlerts], now: float) -> list[Change]:
        """Machines silent past an offline rule's window and not yet held by it: one query per rule,
        an index range on (org_id, last_seen) that reads only the silent machines."""
        changes: list[Change] = []
        offline_after = self.settings.offline_after_seconds
        for org_id, org in snapshot.items():
            for rule in org.offline_rules:
                cutoff = now - offline_after - rule.for_seconds
                if self.started >= cutoff:
                    continue  # start-up grace: every machine gets a whole window to be heard from
                found = repo.offline_candidates(
                    conn,
                    org_id=org_id,
                    cutoff=cutoff,
                    now=now,
                    for_seconds=rule.for_seconds,
                    machine_ids=sorted(rule.machines) if rule.machines is not None else None,
                )
                for machine_id, _seen in found:
                    old = org.states.get(machine_id, {}).get(rule.id)
                    if old is not None and old.state in HELD:
                        continue  # already firing (told, or held back by a silence)
                    silenced = org.silenced(machine_id, now)
                    change = decide(rule, machine_id, old, "firing", silenced=silenced, now=now, value=None)
                    if change is not None:
                        changes.append(change)
        return changes

    def _write_all(self, changes: list[Change], chunk: int = 500) -> None:
        """A sweep's changes, a few hundred per transaction (a site outage is thousands at once);
        a chunk the database refuses is written change by change, so one bad row stops nothing."""
        for start in range(0, len(changes), chunk):
            part = changes[start : start + chunk]
            try:
                with self.engine.begin() as conn:
                    rules: RulesSeen = {}
                    for change in part:
                        change.applied = self.write_change(conn, change, rules)
                continue
            except Exception:
                log.exception("alert sweep could not write %d changes together; writing them one by one", len(part))
            for change in part:
                try:
                    with self.engine.begin() as conn:
                        change.applied = self.write_change(conn, change)
                except Exception:
                    change.applied = False
                    log.exception("alert sweep could not write a change")

    def install_sweep(self, result: tuple[dict[int, OrgAlerts], dict[int, int], list[Change]]) -> None:
        snapshot, versions, changes = result
        self._install(snapshot, versions)
        if any(c.applied and c.event for c in changes):
            self.on_event()

    def _clock_changes(
        self, snapshot: dict[int, OrgAlerts], last_seen: dict[tuple[int, str], float], now: float
    ) -> list[Change]:
        offline_after = self.settings.offline_after_seconds
        changes: list[Change] = []
        for org_id, org in snapshot.items():
            for machine_id, states in org.states.items():
                seen = last_seen.get((org_id, machine_id))
                silenced = org.silenced(machine_id, now)
                for rule_id, old in states.items():
                    rule = org.rules.get(rule_id)
                    if rule is None:
                        continue
                    target: str | None = None
                    if seen is None:
                        target = "ok"  # the machine was deleted or expired: nothing fires for it
                    elif rule.kind == "offline":
                        if old.state != "ok" and now - seen <= offline_after:
                            target = "ok"  # heard from (by another process, or before a restart)
                    elif now - seen > offline_after:
                        if old.state == "pending":
                            target = "ok"
                        elif old.state in ("firing", "silenced"):
                            target = "unknown"
                    elif old.state == "pending" and old.due_at is not None and now >= old.due_at:
                        target = "firing"
                    if target is None and not silenced:  # a silence ended: tell what still differs
                        if old.state == "silenced":
                            target = "firing"
                        elif old.state == "ok" and old.notified:
                            target = "ok"
                    if target is None:
                        continue
                    change = decide(rule, machine_id, old, target, silenced=silenced, now=now, value=old.value)
                    if change is not None:
                        changes.append(change)
        return changes


def _metrics(report: dict[str, Any]) -> dict[str, float | None]:
    """The values rules compare, read once per report (None: a sensor the agent could not read);
    disk is the fullest disk when the agent lists them all (`disks: [{"percent": ...}, ...]`)."""
    disk = report["disk_percent"]
    disks = report.get("disks")
    if isinstance(disks, list):
        for entry in disks:
            percent = entry.get("percent") if isinstance(entry, dict) else None
            if isinstance(percent, (int, float)) and 0 <= percent <= 100 and (disk is None or percent > disk):
                disk = percent
    return {"cpu": report["cpu_percent"], "ram": report["ram_percent"], "disk": disk}
