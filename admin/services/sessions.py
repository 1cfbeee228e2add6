"""Web UI sessions in the database, and the sign-in throttle (docs/security.md, findings 6-11).

A session is a random token in an HttpOnly cookie; the database keeps only its keyed hash
(HMAC-SHA256 with DASHFLEET_STORAGE_SECRET, so changing that secret signs everyone out). Every
check reads the session with its user in one query and accepts it only while it carries the
user's current `session_secret`: a password or role change, "sign out everywhere" and removal
end every session of the user on every server process at once.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from admin.models import LoginFailure, User, WebSession
from admin.repositories import accounts as accounts_repo
from admin.repositories import sessions as repo

# A session older than this signs in again.
SESSION_MAX_AGE_SECONDS = 7 * 86400
# The sign-in page's one-time code, traded for the cookie by the browser straight away.
HANDOFF_SECONDS = 30.0

# Growing delays instead of a lock-out: (free failures, longest wait in seconds) per kind of key.
# The e-mail's own cap is short, so nobody can keep its owner out for longer than that; failures
# from one network (an IPv6 /64, an IPv4 address) against one e-mail or against any are slowed far more.
THROTTLE_RULES = {"pair": (3, 300.0), "net": (20, 300.0), "email": (10, 30.0)}
FIRST_DELAY_SECONDS = 1.0
# Failures are forgotten after this long without another.
FORGET_FAILURES_AFTER_SECONDS = 3600.0


@dataclass(frozen=True)
class SessionUser:
    """Who a live session belongs to, as the database knows them now."""

    session_id: int
    user_id: int
    org_id: int
    email: str
    role: str
    org_name: str


def client_network(address: str) -> str:
    """What the throttle counts a client address as: IPv6 clients by their /64 (one machine
    usually holds a whole /64 and can pick any address in it), IPv4 by the address."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def throttle_keys(email: str, address: str) -> list[str]:
    net = client_network(address)
    return [f"pair:{email}|{net}", f"net:{net}", f"email:{email}"]


def delay_after(failures: int, kind: str) -> float:
    free, cap = THROTTLE_RULES[kind]
    if failures <= free:
        return 0.0
    return float(min(cap, FIRST_DELAY_SECONDS * 2 ** (failures - free - 1)))


class WebSessionService:
    def __init__(self, engine: Engine, storage_secret: str) -> None:
        self.engine = engine
        self._key = storage_secret.encode()

    def _hash(self, value: str) -> str:
        return hmac.new(self._key, value.encode(), hashlib.sha256).hexdigest()

    def hash_token(self, token: str) -> str:
        return self._hash("session:" + token)

    # -- signing in: a one-time code, then the cookie ------------------------------------------
    def start(self, *, user: User, now: float | None = None) -> str:
        """After the password was checked: a one-time code the browser trades for its session."""
        now = time.time() if now is None else now
        code = secrets.token_urlsafe(32)
        assert user.id is not None  # a stored user
        with Session(self.engine) as session:
            session.add(
                WebSession(
                    handoff_hash=self._hash("handoff:" + code),
                    user_id=user.id,
                    org_id=user.org_id,
                    user_secret=user.session_secret,
                    created_at=now,
                    expires_at=now + HANDOFF_SECONDS,
                )
            )
            session.commit()
        return code

    def complete(self, code: str, *, now: float | None = None) -> str | None:
        """The session token for a fresh, unused code (used up here), else None."""
        now = time.time() if now is None else now
        token = secrets.token_urlsafe(32)
        with Session(self.engine) as session:
            row = repo.by_handoff(session, self._hash("handoff:" + code))
            if row is None:
                return None
            if row.expires_at <= now:
                session.delete(row)
                session.commit()
                return None
            row.handoff_hash = None
            row.token_hash = self.hash_token(token)
            row.created_at = now
            row.expires_at = now + SESSION_MAX_AGE_SECONDS
            session.add(row)
            session.commit()
        return token

    # -- checking ------------------------------------------------------------------------------
    def check(self, token: str, *, now: float | None = None) -> SessionUser | None:
        now = time.time() if now is None else now
        with Session(self.engine) as session:
            found = repo.live_session(session, token_hash=self.hash_token(token), now=now)
        if found is None:
            return None
        row, user, org = found
        assert row.id is not None and user.id is not None and org.id is not None  # stored rows
        return SessionUser(
            session_id=row.id, user_id=user.id, org_id=org.id, email=user.email, role=user.role, org_name=org.name
        )

    def alive(self, token_hashes: set[str], *, now: float | None = None) -> set[str]:
        with Session(self.engine) as session:
            return repo.live_token_hashes(session, token_hashes=token_hashes, now=time.time() if now is None else now)

    # -- ending ----------------------------------------------------------------------------------
    def end(self, token: str) -> None:
        with Session(self.engine) as session:
            repo.delete_by_token(session, self.hash_token(token))
            session.commit()

    def end_all_of(self, *, org_id: int, user_id: int) -> None:
        """Sign a user out of every browser: a new secret, and their sessions' rows go."""
        with Session(self.engine) as session:
            user = accounts_repo.user_by_id(session, org_id=org_id, user_id=user_id)
            if user is None:
                return
            renew_session_secret(session, user)
            session.commit()

    def cleanup(self, *, now: float | None = None) -> dict[str, int]:
        """Expired sessions and hand-off codes, and failures forgotten (the maintenance job)."""
        now = time.time() if now is None else now
        with Session(self.engine) as session:
            sessions = repo.delete_expired(session, now)
            failures = repo.delete_stale_failures(session, now - FORGET_FAILURES_AFTER_SECONDS)
            session.commit()
        return {"sessions": sessions, "login_failures": failures}

    # -- the sign-in throttle --------------------------------------------------------------------
    def wait_before_sign_in(self, keys: list[str], *, now: float | None = None) -> int:
        """Seconds to wait before these keys may try again (0: now)."""
        now = time.time() if now is None else now
        with Session(self.engine) as session:
            rows = repo.failures(session, keys)
        wait = max(
            (r.blocked_until - now for r in rows if r.updated_at > now - FORGET_FAILURES_AFTER_SECONDS), default=0
        )
        return max(0, int(-(-wait // 1)))

    def record_failure(self, keys: list[str], *, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for _attempt in range(3):  # another process may insert the same key at the same moment
            try:
                with Session(self.engine) as session:
                    rows = {r.key: r for r in repo.failures(session, keys)}
                    for key in keys:
                        row = rows.get(key) or LoginFailure(key=key, updated_at=now)
                        if row.updated_at <= now - FORGET_FAILURES_AFTER_SECONDS:
                            row.failures = 0
                        row.failures += 1
                        row.blocked_until = now + delay_after(row.failures, key.split(":", 1)[0])
                        row.updated_at = now
                        session.add(row)
                    session.commit()
                return
            except IntegrityError:
                continue

    def record_success(self, keys: list[str]) -> None:
        """The right password: this e-mail's failures are forgotten (its network's are not)."""
        with Session(self.engine) as session:
            repo.delete_failures(session, [k for k in keys if not k.startswith("net:")])
            session.commit()


def renew_session_secret(session: Session, user: User) -> None:
    """End every web session of `user` (in the caller's transaction)."""
    assert user.id is not None  # a stored user
    user.session_secret = secrets.token_urlsafe(24)
    session.add(user)
    repo.delete_of_user(session, user.id)
