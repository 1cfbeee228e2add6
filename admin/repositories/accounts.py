"""Organisations, API keys and users (ORM sessions: these are not hot paths)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Connection, update
from sqlmodel import Session, col, func, select

from admin.models import ApiKey, Machine, Organization, User


def org_by_name(session: Session, name: str) -> Organization | None:
    return session.exec(select(Organization).where(Organization.name == name)).first()


def org_by_id(session: Session, org_id: int) -> Organization | None:
    return session.get(Organization, org_id)


def key_by_hash(session: Session, key_hash: str) -> ApiKey | None:
    return session.exec(select(ApiKey).where(ApiKey.key_hash == key_hash)).first()


def key_and_org_by_hash(session: Session, key_hash: str) -> tuple[ApiKey, Organization] | None:
    """A key with its organisation, in one query (the hot path's only one, and then cached)."""
    row = session.exec(
        select(ApiKey, Organization)
        .join(Organization, Organization.id == ApiKey.org_id)
        .where(ApiKey.key_hash == key_hash)
    ).first()
    return None if row is None else (row[0], row[1])


def key_by_id(session: Session, *, org_id: int, key_id: int) -> ApiKey | None:
    return session.exec(select(ApiKey).where(ApiKey.org_id == org_id, ApiKey.id == key_id)).first()


def keys_of(session: Session, *, org_id: int) -> Sequence[ApiKey]:
    return session.exec(select(ApiKey).where(ApiKey.org_id == org_id).order_by(ApiKey.id)).all()


def users_by_email(session: Session, email: str, *, limit: int) -> Sequence[User]:
    """The users with this e-mail across organisations (an e-mail is unique within one only)."""
    return session.exec(select(User).where(User.email == email).order_by(User.id).limit(limit)).all()


def user_in_org_by_email(session: Session, *, org_id: int, email: str) -> User | None:
    return session.exec(select(User).where(User.org_id == org_id, User.email == email)).first()


def user_by_id(session: Session, *, org_id: int, user_id: int) -> User | None:
    return session.exec(select(User).where(User.org_id == org_id, User.id == user_id)).first()


def users_of(session: Session, *, org_id: int) -> Sequence[User]:
    return session.exec(select(User).where(User.org_id == org_id).order_by(User.email)).all()


def count_admins(session: Session, *, org_id: int) -> int:
    return session.exec(select(func.count()).where(User.org_id == org_id, User.role == "admin")).one()


def count_machines(session: Session, *, org_id: int) -> int:
    return session.exec(select(func.count()).select_from(Machine).where(Machine.org_id == org_id)).one()


def live_machine_keys(session: Session, *, org_id: int, machine_id: str) -> Sequence[ApiKey]:
    """The unrevoked keys bound to one machine (at most one: a unique index says so)."""
    return session.exec(
        select(ApiKey).where(
            ApiKey.org_id == org_id, ApiKey.bound_machine_id == machine_id, col(ApiKey.revoked_at).is_(None)
        )
    ).all()


def enrolled_keys(session: Session, *, org_id: int) -> Sequence[ApiKey]:
    """The organisation's enrolled machines: their unrevoked bound keys, by machine id."""
    return session.exec(
        select(ApiKey)
        .where(ApiKey.org_id == org_id, col(ApiKey.bound_machine_id).is_not(None), col(ApiKey.revoked_at).is_(None))
        .order_by(col(ApiKey.bound_machine_id))
    ).all()


def revoke_machine_keys(conn: Connection | Session, *, org_id: int, machine_id: str, now: float) -> int:
    """Revoke every key bound to the machine (enrolment reset, machine deleted); how many."""
    result = conn.execute(
        update(ApiKey)
        .where(
            col(ApiKey.org_id) == org_id,
            col(ApiKey.bound_machine_id) == machine_id,
            col(ApiKey.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    return result.rowcount or 0
