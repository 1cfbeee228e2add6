"""Alerts as the API and the web UI see them: rules, channels, silences, what fires, the history,
acknowledgements and an agent's goodbye. Evaluation lives in alert_engine.py, sending in notifier.py.

Every function takes `org_id`: nothing of another organisation is read, counted or changed.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import Engine

from admin.core.config import Settings
from admin.repositories import alerts as repo
from admin.services import audit
from admin.services.accounts import normalise_email
from admin.services.alert_engine import AlertEngine
from admin.services.audit import UNATTRIBUTED, Actor
from admin.services.channels import (
    PEOPLE_KINDS,
    SendFailed,
    send_apprise,
    send_email,
    send_webhook,
    test_notice,
)
from admin.services.errors import InvalidInput, NotFound
from common.constants import MACHINE_ID_MAX_LENGTH

MachineId = Annotated[str, Field(min_length=1, max_length=MACHINE_ID_MAX_LENGTH, pattern=r"^[^\x00]*$")]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Percent = Annotated[float, Field(ge=0, le=100, allow_inf_nan=False)]
MAX_FOR_SECONDS = 7 * 86400


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChannelIn(_In):
    name: Name
    kind: Literal["webhook", "email", "apprise"]
    url: str | None = Field(None, max_length=2000, description="webhook: http(s) URL to POST to")
    secret: str | None = Field(None, max_length=500, description="webhook: HMAC-SHA256 key (never shown again)")
    to: list[str] | None = Field(None, max_length=20, description="email: addresses")
    urls: list[Annotated[str, Field(max_length=2000)]] | None = Field(
        None, max_length=10, description="apprise: service URLs (never shown again)"
    )

    @model_validator(mode="after")
    def _fits_kind(self) -> ChannelIn:
        if self.kind == "webhook":
            parts = urlsplit(self.url or "")
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError("a webhook needs an http:// or https:// url")
        elif self.kind == "email":
            if not self.to:
                raise ValueError("an email channel needs 'to': a list of addresses")
            try:
                self.to = [normalise_email(a) for a in self.to]
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        elif not self.urls:
            raise ValueError("an apprise channel needs 'urls': a list of Apprise URLs")
        return self


class ChannelPatch(_In):
    name: Name | None = None
    url: str | None = Field(None, max_length=2000)
    secret: str | None = Field(None, max_length=500)
    to: list[str] | None = Field(None, max_length=20)
    urls: list[Annotated[str, Field(max_length=2000)]] | None = Field(None, max_length=10)


class RuleIn(_In):
    name: Name
    kind: Literal["offline", "cpu", "ram", "disk"]
    threshold: Percent | None = Field(None, description="percent; not for offline")
    clear_below: Percent | None = Field(None, description="resolves below this; default: the threshold")
    for_seconds: int = Field(0, ge=0, le=MAX_FOR_SECONDS)
    severity: Literal["warning", "critical"] = "warning"
    channels: list[int] = Field(default_factory=list, max_length=20)
    machine_ids: list[MachineId] | None = Field(None, max_length=1000, description="null: the whole organisation")
    enabled: bool = Field(True, description="false: evaluated nowhere; turning it off resolves its alerts")

    @model_validator(mode="after")
    def _threshold_fits_kind(self) -> RuleIn:
        if self.kind == "offline":
            if self.threshold is not None or self.clear_below is not None:
                raise ValueError("an offline rule takes no threshold")
        else:
            if self.threshold is None:
                raise ValueError(f"a {self.kind} rule needs a threshold (percent)")
            if self.clear_below is not None and self.clear_below > self.threshold:
                raise ValueError("clear_below must not be above the threshold")
        return self


class RulePatch(_In):
    name: Name | None = None
    threshold: Percent | None = None
    clear_below: Percent | None = None
    for_seconds: int | None = Field(None, ge=0, le=MAX_FOR_SECONDS)
    severity: Literal["warning", "critical"] | None = None
    channels: list[int] | None = Field(None, max_length=20)
    machine_ids: list[MachineId] | None = Field(None, max_length=1000)
    all: bool | None = Field(None, description="true: the rule applies to the whole organisation again")
    enabled: bool | None = Field(None, description="false turns the rule off (its alerts resolve), true on again")


class SilenceIn(_In):
    machine_ids: list[MachineId] | None = Field(None, min_length=1, max_length=1000)
    all: bool = False
    starts: float = Field(ge=0, allow_inf_nan=False)
    ends: float = Field(ge=0, allow_inf_nan=False)
    weekly: bool = Field(False, description="repeat every week at the same hours")
    comment: str = Field("", max_length=1000)

    @model_validator(mode="after")
    def _window(self) -> SilenceIn:
        if self.all == (self.machine_ids is not None):
            raise ValueError("give either machine_ids or all: true")
        if self.ends <= self.starts:
            raise ValueError("ends must be after starts")
        if self.weekly and self.ends - self.starts >= 7 * 86400:
            raise ValueError("a weekly silence lasts less than a week")
        return self


class AckIn(_In):
    rule_id: int
    machine_id: MachineId
    expires_in: int = Field(3600, ge=60, le=30 * 86400, description="seconds")


class GoodbyeIn(BaseModel):
    model_config = ConfigDict(extra="ignore")  # newer agents may say more

    machine_id: MachineId
    reason: Literal["stop", "logoff", "shutdown", "sleep", "restart"] = "stop"
    back_in: float | None = Field(None, gt=0, le=30 * 86400, allow_inf_nan=False, description="seconds")

    @field_validator("machine_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("machine_id must be printable")
        return value


def _first_error(exc: ValidationError) -> str:
    """What a person can act on: the first problem, where it is (not pydantic's whole report)."""
    first = exc.errors()[0]
    message = str(first["msg"]).removeprefix("Value error, ")
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {message}" if where else message


def _ids(text: str | None) -> list[str] | None:
    return None if text is None else json.loads(text)


def _redacted(url: str) -> str:
    return (urlsplit(url).scheme or "?") + "://…"


class AlertService:
    def __init__(self, engine: Engine, settings: Settings, alerts: AlertEngine) -> None:
        self.engine = engine
        self.settings = settings
        self.alerts = alerts

    def _changed(self, events: int = 0) -> None:
        self.alerts.refresh()  # this process at once; the others within a sweep
        if events:
            self.alerts.on_event()  # the notices just written go out now, not at the next poll

    def _require_machines(self, conn: Any, org_id: int, machine_ids: list[str] | None) -> None:
        for machine_id in machine_ids or []:
            if not repo.machine_exists(conn, org_id=org_id, machine_id=machine_id):
                raise NotFound(f"no machine {machine_id!r} in this organisation")

    # -- channels -----------------------------------------------------------------------------------
    def create_channel(self, *, org_id: int, spec: ChannelIn, actor: Actor | str = UNATTRIBUTED) -> int:
        config, secret = _channel_parts(spec)
        with self.engine.begin() as conn:
            channel_id = repo.insert_row(
                conn,
                repo.C,
                {
                    "org_id": org_id,
                    "name": spec.name,
                    "kind": spec.kind,
                    "config": json.dumps(config),
                    "secret": json.dumps(secret),
                    "created_at": time.time(),
                },
            )
            audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="alert_channel.create",
                target=f"channel {channel_id}",
                detail={"name": spec.name, "kind": spec.kind},
            )
        self._changed()
        return channel_id

    def channels(self, *, org_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [_channel_public(r) for r in repo.rows(conn, repo.C, org_id=org_id)]

    def update_channel(
        self, *, org_id: int, channel_id: int, patch: ChannelPatch, actor: Actor | str = UNATTRIBUTED
    ) -> dict[str, Any]:
        with self.engine.begin() as conn:
            found = repo.row(conn, repo.C, org_id=org_id, row_id=channel_id)
            if found is None:
                raise NotFound("no such channel in this organisation")
            config, secret = json.loads(found.config), json.loads(found.secret)
            # What the config shows but a channel is not made of (an Apprise channel's schemes) stays out.
            shown = {key: value for key, value in config.items() if key in ChannelIn.model_fields}
            merged: dict[str, Any] = {"name": found.name, "kind": found.kind, **shown}
            if found.kind == "apprise":
                merged["urls"] = secret.get("urls")
            merged.update(patch.model_dump(exclude_unset=True, exclude={"secret"}))
            try:
                spec = ChannelIn.model_validate(merged)
            except ValidationError as exc:
                raise InvalidInput(_first_error(exc)) from None
            config, new_secret = _channel_parts(spec)
            if "secret" not in patch.model_fields_set and found.kind == "webhook":
                new_secret = secret  # kept unless replaced ("" removes it)
            elif "secret" in patch.model_fields_set:
                new_secret = {"secret": patch.secret} if patch.secret else {}
            repo.update_row(
                conn,
                repo.C,
                org_id=org_id,
                row_id=channel_id,
                values={"name": spec.name, "config": json.dumps(config), "secret": json.dumps(new_secret)},
            )
            updated = repo.row(conn, repo.C, org_id=org_id, row_id=channel_id)
            # The secret's value is never logged, only that it changed.
            audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="alert_channel.update",
                target=f"channel {channel_id}",
                detail={"changed": sorted(patch.model_fields_set)},
            )
        self._changed()
        return _channel_public(updated)

    def delete_channel(self, *, org_id: int, channel_id: int, actor: Actor | str = UNATTRIBUTED) -> None:
        with self.engine.begin() as conn:
            if not repo.delete_channel(conn, org_id=org_id, channel_id=channel_id):
                raise NotFound("no such channel in this organisation")
            audit.record(
                conn, org_id=org_id, actor=actor, action="alert_channel.delete", target=f"channel {channel_id}"
            )
        self._changed()

    def test_channel(self, *, org_id: int, channel_id: int, client: Any) -> dict[str, Any]:
        """Sends a test notice now; says whether the channel took it (nothing is stored)."""
        with self.engine.connect() as conn:
            found = repo.row(conn, repo.C, org_id=org_id, row_id=channel_id)
        if found is None:
            raise NotFound("no such channel in this organisation")
        config, secret = json.loads(found.config), json.loads(found.secret)
        try:
            if found.kind == "webhook":
                body = json.dumps(
                    {
                        "id": str(uuid.uuid4()),
                        "event": "test",
                        "rule": "test",
                        "severity": "warning",
                        "machine_id": "",
                        "value": None,
                        "at": time.time(),
                    },
                    separators=(",", ":"),
                ).encode()
                send_webhook(client, config, secret, body)
            elif found.kind == "email":
                send_email(self.settings, config, test_notice())
            else:
                send_apprise(secret, test_notice())
        except SendFailed as exc:
            return {"ok": False, "error": str(exc)}
        return {"ok": True, "error": None}

    # -- rules --------------------------------------------------------------------------------------
    def _rule_values(self, conn: Any, org_id: int, spec: RuleIn) -> dict[str, Any]:
        unknown = set(spec.channels) - repo.channel_ids(conn, org_id=org_id)
        if unknown:
            raise NotFound(f"no channel {sorted(unknown)[0]} in this organisation")
        self._require_machines(conn, org_id, spec.machine_ids)
        return {
            "name": spec.name,
            "kind": spec.kind,
            "threshold": spec.threshold,
            "clear_below": spec.clear_below,
            "for_seconds": spec.for_seconds,
            "severity": spec.severity,
            "channels": json.dumps(sorted(set(spec.channels))),
            "machine_ids": None if spec.machine_ids is None else json.dumps(sorted(set(spec.machine_ids))),
            "enabled": spec.enabled,
        }

    def create_rule(self, *, org_id: int, spec: RuleIn, actor: Actor | str = UNATTRIBUTED) -> int:
        with self.engine.begin() as conn:
            values = self._rule_values(conn, org_id, spec)
            rule_id = repo.insert_row(conn, repo.R, {"org_id": org_id, "created_at": time.time(), **values})
            audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="alert_rule.create",
                target=f"rule {rule_id}",
                detail=spec.model_dump(mode="json"),
            )
        self._changed()
        return rule_id

    def rules(self, *, org_id: int) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [_rule_public(r) for r in repo.rows(conn, repo.R, org_id=org_id)]

    def update_rule(
        self, *, org_id: int, rule_id: int, patch: RulePatch, actor: Actor | str = UNATTRIBUTED
    ) -> dict[str, Any]:
        with self.engine.begin() as conn:
            found = repo.row(conn, repo.R, org_id=org_id, row_id=rule_id)
            if found is None:
                raise NotFound("no such rule in this organisation")
            merged = _rule_public(found)
            merged.pop("rule_id")
            merged.pop("created")
            changes = patch.model_dump(exclude_unset=True, exclude={"all"})
            merged.update(changes)
            if patch.all:
                merged["machine_ids"] = None
            try:
                spec = RuleIn.model_validate(merged)
            except ValidationError as exc:
                raise InvalidInput(_first_error(exc)) from None
            values = self._rule_values(conn, org_id, spec)
            repo.update_row(conn, repo.R, org_id=org_id, row_id=rule_id, values=values)
            updated = repo.row(conn, repo.R, org_id=org_id, row_id=rule_id)
            resolved = 0
            if not updated.enabled:  # turned off (or kept off): nothing of it may keep firing
                resolved = self.alerts.retire(conn, updated)
            elif spec.machine_ids is not None and found.machine_ids != updated.machine_ids:
                # Machines the rule no longer covers would otherwise keep firing for good.
                resolved = self.alerts.retire(conn, updated, keep=frozenset(spec.machine_ids))
            audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="alert_rule.update",
                target=f"rule {rule_id}",
                detail=patch.model_dump(mode="json", exclude_unset=True),
            )
        self._changed(resolved)
        return _rule_public(updated)

    def delete_rule(self, *, org_id: int, rule_id: int, actor: Actor | str = UNATTRIBUTED) -> None:
        """Deletes the rule; what it told firing is told resolved (in the same transaction, once)."""
        with self.engine.begin() as conn:
            # The rule first, then its states: the order writers of alert rows take them in (they
            # key-share lock the rule), so the two never wait on each other in a circle.
            found = repo.row(conn, repo.R, org_id=org_id, row_id=rule_id, lock=True)
            if found is None:
                raise NotFound("no such rule in this organisation")
            resolved = self.alerts.retire(conn, found)
            # A concurrent delete of the same rule finds it gone here and rolls back what it wrote.
            if not repo.delete_rule(conn, org_id=org_id, rule_id=rule_id):
                raise NotFound("no such rule in this organisation")
            audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="alert_rule.delete",
                target=f"rule {rule_id}",
                detail={"name": found.name, "resolved": resolved},
            )
        self._changed(resolved)

    # -- silences -----------------------------------------------------------------------------------
    def create_silence(self, *, org_id: int, spec: SilenceIn, actor: Actor | str = UNATTRIBUTED) -> int:
        with self.engine.begin() as conn:
            self._require_machines(conn, org_id, spec.machine_ids)
            silence_id = repo.insert_row(
                conn,
                repo.SI,
                {
                    "org_id": org_id,
                    "machine_ids": None if spec.machine_ids is None else json.dumps(sorted(set(spec.machine_ids))),
                    "starts": spec.starts,
                    "ends": spec.ends,
                    "weekly": spec.weekly,
                    "comment": spec.comment,
                    "created_at": time.time(),
                },
            )
            audit.record(
                conn,
                org_id=org_id,
                actor=actor,
                action="silence.create",
                target=f"silence {silence_id}",
                detail=spec.model_dump(mode="json"),
            )
        self._changed()
        return silence_id

    def silences(self, *, org_id: int) -> list[dict[str, Any]]:
        now = time.time()
        with self.engine.connect() as conn:
            found = repo.rows(conn, repo.SI, org_id=org_id)
        return [
            {
                "silence_id": s.id,
                "machine_ids": _ids(s.machine_ids),
                "all": s.machine_ids is None,
                "starts": s.starts,
                "ends": s.ends,
                "weekly": s.weekly,
                "comment": s.comment,
                "active": _silence_active(s, now),
                "over": not s.weekly and s.ends <= now,
            }
            for s in found
        ]

    def delete_silence(self, *, org_id: int, silence_id: int, actor: Actor | str = UNATTRIBUTED) -> None:
        with self.engine.begin() as conn:
            if not repo.delete_silence(conn, org_id=org_id, silence_id=silence_id):
                raise NotFound("no such silence in this organisation")
            audit.record(conn, org_id=org_id, actor=actor, action="silence.delete", target=f"silence {silence_id}")
        self._changed()

    # -- what fires, what happened --------------------------------------------------------------------
    def firing(self, *, org_id: int, machine_id: str | None = None) -> list[dict[str, Any]]:
        """Alerts that fire now: `firing`, `silenced` (firing, not told) and `unknown` (its machine
        went offline while it fired)."""
        now = time.time()
        with self.engine.connect() as conn:
            found = repo.firing(conn, org_id=org_id, machine_id=machine_id)
        return [
            {
                "rule_id": r.rule_id,
                "rule": r.rule,
                "kind": r.kind,
                "severity": r.severity,
                "machine_id": r.machine_id,
                "state": r.state,
                "since": r.since,
                "value": r.value,
                "acknowledged": r.acked_until is not None and r.acked_until > now,
                "acked_until": r.acked_until if r.acked_until and r.acked_until > now else None,
                "acked_by": r.acked_by if r.acked_until and r.acked_until > now else None,
            }
            for r in found
        ]

    def history(self, *, org_id: int, machine_id: str | None, limit: int, offset: int) -> dict[str, Any]:
        with self.engine.connect() as conn:
            count, events = repo.history(conn, org_id=org_id, machine_id=machine_id, limit=limit, offset=offset)
            deliveries = repo.deliveries_of(conn, event_ids=[e.id for e in events])
        sent: dict[str, list[dict[str, Any]]] = {}
        for d in deliveries:
            sent.setdefault(d.event_id, []).append(
                {"channel_id": d.channel_id, "state": d.state, "attempts": d.attempts, "error": d.last_error}
            )
        data = [
            {
                "id": e.id,
                "event": e.event,
                "rule_id": e.rule_id,
                "rule": e.rule,
                "kind": e.kind,
                "severity": e.severity,
                "machine_id": e.machine_id,
                "value": e.value,
                "at": e.at,
                "deliveries": sent.get(e.id, []),
            }
            for e in events
        ]
        return {"count": count, "data": data}

    def acknowledge(self, *, org_id: int, spec: AckIn, by: str) -> dict[str, Any]:
        until = time.time() + spec.expires_in
        with self.engine.begin() as conn:
            if not repo.acknowledge(
                conn, org_id=org_id, rule_id=spec.rule_id, machine_id=spec.machine_id, until=until, by=by
            ):
                raise NotFound("no such alert in this organisation")
        return {"rule_id": spec.rule_id, "machine_id": spec.machine_id, "acked_until": until, "acked_by": by}

    # -- the agent's goodbye --------------------------------------------------------------------------
    def goodbye(self, *, org_id: int, spec: GoodbyeIn) -> dict[str, Any]:
        now = time.time()
        back = now + spec.back_in if spec.back_in is not None else None
        with self.engine.begin() as conn:
            if not repo.say_goodbye(conn, org_id=org_id, machine_id=spec.machine_id, now=now, expected_back=back):
                raise NotFound("no machine with that id in this organisation")
        return {"ok": True, "machine_id": spec.machine_id, "away_since": now, "expected_back": back}


def _channel_parts(spec: ChannelIn) -> tuple[dict[str, Any], dict[str, Any]]:
    if spec.kind == "webhook":
        return {"url": spec.url}, ({"secret": spec.secret} if spec.secret else {})
    if spec.kind == "email":
        return {"to": spec.to}, {}
    return {"services": [_redacted(u) for u in spec.urls or []]}, {"urls": spec.urls}


def _channel_public(r: Any) -> dict[str, Any]:
    config, secret = json.loads(r.config), json.loads(r.secret)
    out: dict[str, Any] = {"channel_id": r.id, "name": r.name, "kind": r.kind, "created": r.created_at}
    if r.kind == "webhook":
        out["url"] = config["url"]
        out["has_secret"] = bool(secret.get("secret"))
    elif r.kind == "email":
        out["to"] = config["to"]
    else:
        out["services"] = config.get("services", [])
    out["grouped"] = r.kind in PEOPLE_KINDS
    return out


def _rule_public(r: Any) -> dict[str, Any]:
    return {
        "rule_id": r.id,
        "name": r.name,
        "kind": r.kind,
        "threshold": r.threshold,
        "clear_below": r.clear_below,
        "for_seconds": r.for_seconds,
        "severity": r.severity,
        "channels": json.loads(r.channels),
        "machine_ids": _ids(r.machine_ids),
        "enabled": r.enabled,
        "created": r.created_at,
    }


def _silence_active(s: Any, now: float) -> bool:
    from admin.services.alert_engine import Silence

    return Silence(None, s.starts, s.ends, s.weekly).covers("", now)
