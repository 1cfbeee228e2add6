"""Install links of an organisation, and taking one use of a link atomically."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import update
from sqlmodel import Session, col, select

from admin.models import ApiKey, InstallLink


def link_by_code_hash(session: Session, code_hash: str) -> InstallLink | None:
    return session.exec(select(InstallLink).where(InstallLink.code_hash == code_hash)).first()


def link_by_id(session: Session, *, org_id: int, link_id: int) -> InstallLink | None:
    return session.exec(select(InstallLink).where(InstallLink.org_id == org_id, InstallLink.id == link_id)).first()


def links_of(session: Session, *, org_id: int) -> Sequence[InstallLink]:
    return session.exec(
        select(InstallLink).where(InstallLink.org_id == org_id).order_by(col(InstallLink.id).desc())
    ).all()


def take_use(session: Session, *, link_id: int, now: float) -> bool:
    """Count one use if the link is still live; one statement, so two machines running the last
    use at the same moment cannot both get it."""
    done = session.execute(
        update(InstallLink)
        .where(
            col(InstallLink.id) == link_id,
            col(InstallLink.revoked_at).is_(None),
            col(InstallLink.expires_at) > now,
            col(InstallLink.uses_count) < col(InstallLink.uses_allowed),
        )
        .values(uses_count=InstallLink.uses_count + 1, last_used_at=now)
    )
    return done.rowcount == 1


def expired_unrevoked_key_ids(session: Session, *, now: float) -> Sequence[tuple[int, int]]:
    """(org_id, enroll_key_id) of links past their expiry whose enrol key is not revoked yet."""
    rows = session.exec(
        select(InstallLink.org_id, InstallLink.enroll_key_id)
        .join(ApiKey, col(ApiKey.id) == col(InstallLink.enroll_key_id))
        .where(col(InstallLink.expires_at) <= now, col(ApiKey.revoked_at).is_(None))
    ).all()
    return [(org_id, key_id) for org_id, key_id in rows]
