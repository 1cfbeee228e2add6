"""Messages, commands and their deliveries: one delivery row per target machine, holding its state.

A delivery is the state machine of one item on one machine (queued -> delivered -> ...); each state
change is one conditional UPDATE of its row. The item's expiry is copied onto each delivery so the
inbox and the expiry job read one indexed table, without a join.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer, String, Text
from sqlmodel import Field, SQLModel

from common.constants import MACHINE_ID_MAX_LENGTH

ITEM_ID_LENGTH = 32  # uuid4 hex: not guessable, not a count of anyone's items


class Message(SQLModel, table=True):
    """Something to tell the people at the target machines."""

    __tablename__ = "message"
    __table_args__ = (Index("ix_message_org_created", "org_id", "created"),)

    id: str = Field(primary_key=True, max_length=ITEM_ID_LENGTH)
    org_id: int = Field(foreign_key="organization.id")
    title: str = Field(max_length=120)
    body: str = Field(sa_column=Column(Text, nullable=False))
    severity: str = Field(max_length=10, description="info, warning or critical")
    created: float
    expires: float
    created_by: str = Field(max_length=400, description="who sent it: 'user <email>' or 'key <id>'")
    target_all: bool = Field(default=False, description="sent with 'all': true")
    targets: int = Field(description="deliveries created (one per target machine)")


class Command(SQLModel, table=True):
    """An action for the agents of the target machines, from a closed list of kinds."""

    __tablename__ = "command"
    __table_args__ = (Index("ix_command_org_created", "org_id", "created"),)

    id: str = Field(primary_key=True, max_length=ITEM_ID_LENGTH)
    org_id: int = Field(foreign_key="organization.id")
    kind: str = Field(max_length=20)
    args: str = Field(sa_column=Column(Text, nullable=False), description="JSON object")
    timeout: int = Field(description="seconds the agent lets it run")
    created: float
    expires: float
    created_by: str = Field(max_length=400)
    target_all: bool = False
    targets: int


class Delivery(SQLModel, table=True):
    """One message or command on one machine."""

    __tablename__ = "delivery"
    __table_args__ = (
        # The inbox, the heartbeat's hint and cancel-on-delete: a machine's deliveries in a state.
        Index("ix_delivery_org_machine_state", "org_id", "machine_id", "state"),
        # The expiry job: queued deliveries past their expiry.
        Index("ix_delivery_state_expires", "state", "expires"),
    )

    id: int | None = Field(
        default=None, sa_column=Column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    )
    org_id: int = Field(foreign_key="organization.id")
    machine_id: str = Field(max_length=MACHINE_ID_MAX_LENGTH)
    message_id: str | None = Field(
        default=None,
        sa_column=Column(String(ITEM_ID_LENGTH), ForeignKey("message.id", ondelete="CASCADE"), index=True),
    )
    command_id: str | None = Field(
        default=None,
        sa_column=Column(String(ITEM_ID_LENGTH), ForeignKey("command.id", ondelete="CASCADE"), index=True),
    )
    state: str = Field(max_length=20)
    expires: float = Field(description="the item's expiry, copied")
    created: float
    updated: float
    delivered_at: float | None = None
    finished_at: float | None = Field(default=None, description="when it reached a final state")
    exit_code: int | None = None
    output: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    output_cut: bool = Field(default=False, description="the output was longer; its end is kept")
