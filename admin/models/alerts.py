"""Alert tables: rules, channels, silences, the state of each rule on each machine, the outbox.

One state machine per thing, in the database (docs/alerts.md): `alert_state` holds one row per
rule and machine that ever left `ok`; each change of it writes an `alert_event` (the history, and
the webhook's `id`) and one `alert_delivery` per channel (the outbox) in the same transaction. The
notifier claims due deliveries, sends them and marks them sent; a crash in between sends again
with the same event id, never loses one.
"""

from __future__ import annotations

import time

from sqlalchemy import Boolean, Column, Index, Text, UniqueConstraint, true
from sqlmodel import Field, SQLModel

from common.constants import MACHINE_ID_MAX_LENGTH


def _now() -> float:
    return time.time()


class AlertChannel(SQLModel, table=True):
    """Where notices go: a webhook, e-mail addresses or Apprise URLs (config and secret as JSON)."""

    __tablename__ = "alert_channel"

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20, description="webhook, email or apprise")
    # What may be shown again (the webhook URL, the e-mail addresses), as JSON.
    config: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    # What is never shown again after saving (HMAC secret, Apprise URLs with their tokens), as JSON.
    secret: str = Field(default="{}", sa_column=Column(Text, nullable=False))
    created_at: float = Field(default_factory=_now)


class AlertRule(SQLModel, table=True):
    __tablename__ = "alert_rule"

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    name: str = Field(max_length=200)
    kind: str = Field(max_length=20, description="offline, cpu, ram or disk")
    threshold: float | None = None
    clear_below: float | None = Field(default=None, description="resolves below this (hysteresis)")
    for_seconds: int = 0
    severity: str = Field(max_length=20)
    channels: str = Field(default="[]", sa_column=Column(Text, nullable=False))  # JSON list of channel ids
    machine_ids: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON list; null: all
    # Off: evaluated nowhere, its alerts resolved when it was turned off (docs/alerts.md).
    enabled: bool = Field(default=True, sa_column=Column(Boolean, nullable=False, server_default=true()))
    created_at: float = Field(default_factory=_now)


class AlertSilence(SQLModel, table=True):
    """A maintenance window: once, or every week at the same hours (`weekly`)."""

    __tablename__ = "alert_silence"

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id", index=True)
    machine_ids: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # JSON list; null: all
    starts: float
    ends: float
    weekly: bool = False
    comment: str = Field(default="", max_length=1000)
    created_at: float = Field(default_factory=_now)


class AlertState(SQLModel, table=True):
    """One rule on one machine: ok, pending, firing, silenced (firing, not told) or unknown.

    `notified` says what the channels were last told: True after a firing notice, False after a
    resolved one (or none). A silence's end compares the two and tells what still differs.
    """

    __tablename__ = "alert_state"
    __table_args__ = (
        UniqueConstraint("rule_id", "machine_id", name="uq_alert_state_rule_machine"),
        Index("ix_alert_state_org_state", "org_id", "state"),
    )

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    rule_id: int = Field(foreign_key="alert_rule.id", index=True)
    machine_id: str = Field(max_length=MACHINE_ID_MAX_LENGTH)
    state: str = Field(max_length=20)
    since: float  # when it entered this state
    due_at: float | None = None  # pending: when it fires if nothing changes
    value: float | None = None
    notified: bool = False
    acked_until: float | None = None
    acked_by: str | None = Field(default=None, max_length=320)


class AlertEvent(SQLModel, table=True):
    """A firing or a resolution: the alert history, and the body every channel is sent."""

    __tablename__ = "alert_event"
    __table_args__ = (Index("ix_alert_event_org_at", "org_id", "at"),)

    id: str = Field(primary_key=True, max_length=36)  # the webhook's `id`, the same on every repeat
    org_id: int = Field(foreign_key="organization.id")
    rule_id: int | None = None  # kept after the rule is deleted, for the history
    rule: str = Field(max_length=200)
    kind: str = Field(max_length=20)
    severity: str = Field(max_length=20)
    machine_id: str = Field(max_length=MACHINE_ID_MAX_LENGTH)
    event: str = Field(max_length=20, description="firing or resolved")
    value: float | None = None
    at: float


class AlertDelivery(SQLModel, table=True):
    """The outbox: one event to one channel, sent once it is due, retried with backoff."""

    __tablename__ = "alert_delivery"
    __table_args__ = (Index("ix_alert_delivery_state_due", "state", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    org_id: int = Field(foreign_key="organization.id")
    event_id: str = Field(foreign_key="alert_event.id", index=True, max_length=36)
    channel_id: int = Field(foreign_key="alert_channel.id", index=True)
    state: str = Field(default="pending", max_length=20, description="pending, sent or failed")
    due_at: float
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=1000)
    sent_at: float | None = None
