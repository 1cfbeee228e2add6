"""Organisations, API keys (with an in-process cache for the hot path) and users."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

from cachetools import TTLCache
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from admin.core import security
from admin.models import ApiKey, Organization, User
from admin.repositories import accounts as repo
from admin.repositories import sessions as sessions_repo
from admin.services import audit
from admin.services.audit import UNATTRIBUTED, Actor
from admin.services.errors import Conflict, InvalidInput, NotFound
from admin.services.sessions import renew_session_secret
from common.constants import ALL_SCOPES, SCOPE_AGENT, SCOPE_ENROLL, SCOPE_READ

ROLES = ("admin", "viewer")
# local@domain.tld, without the characters of display names, quoting or comments (<b>x</b>@ is
# refused; O'Brien@ and non-ASCII letters are not).
_EMAIL_ATOM = r'[^@\s<>()\[\]\\,;:"]+'
_EMAIL_RE = re.compile(rf"^{_EMAIL_ATOM}@{_EMAIL_ATOM}\.{_EMAIL_ATOM}$")
MIN_PASSWORD_LENGTH = 8
# Users of different organisations may share an e-mail address; a sign-in tries at most this many.
MAX_SAME_EMAIL_USERS = 5
# A key's org, scopes and revocation are cached this long: revocation reaches every server
# process within a second, and the hot path saves a query per request.
KEY_CACHE_SECONDS = 1.0
MACHINE_QUOTA_MAX = 10_000_000


@dataclass(frozen=True)
class Principal:
    """Who a valid API key speaks for, and the organisation settings its requests obey: all of it
    read by one query and cached with the key, so checking them costs the hot path nothing."""

    org_id: int
    key_id: int
    scopes: frozenset[str]
    # An enrolled machine's own key speaks only for this machine id; None: an organisation key.
    # Every agent route checks it (api/deps.py `check_machine`) before acting for a machine id.
    bound_machine_id: str | None = None
    # The organisation refuses reports and heartbeats from unbound keys.
    org_requires_enrolment: bool = False
    # The organisation's own machine quota (None: the server's default).
    org_machine_quota: int | None = None


@dataclass(frozen=True)
class CreatedKey:
    key_id: int
    api_key: str
    scopes: list[str]


def _check_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200 or not name.isprintable():
        raise InvalidInput("organisation name must be 1 to 200 printable characters")
    return name


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL_RE.match(email):
        raise InvalidInput(f"not an e-mail address: {email!r}")
    return email


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")


def _check_scopes(scopes: Iterable[str]) -> list[str]:
    scopes = list(scopes)
    unknown = [s for s in set(scopes) if s not in ALL_SCOPES]
    if unknown:
        raise InvalidInput(f"unknown scope {unknown[0]!r}; choose from {', '.join(ALL_SCOPES)}")
    chosen = sorted(set(scopes), key=ALL_SCOPES.index)
    if not chosen:
        raise InvalidInput("a key needs at least one scope")
    if SCOPE_ENROLL in chosen and len(chosen) > 1:
        # An enrol key sits in installers and install scripts: it must buy a machine key and nothing else.
        raise InvalidInput("an enroll key has the enroll scope only")
    return chosen


class AccountService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._key_cache: TTLCache[str, Principal | None] = TTLCache(maxsize=100_000, ttl=KEY_CACHE_SECONDS)
        self._cache_lock = threading.Lock()

    # -- organisations -------------------------------------------------------------------
    def create_org(self, name: str, *, actor: Actor | str = UNATTRIBUTED) -> tuple[Organization, CreatedKey]:
        """A new organisation with its first key (scopes agent and read, as in the original design)."""
        name = _check_name(name)
        with Session(self.engine) as session:
            if repo.org_by_name(session, name):
                raise Conflict(f"an organisation named {name!r} already exists")
            org = Organization(name=name)
            session.add(org)
            try:
                session.flush()
                assert org.id is not None  # given by the database at the flush
                key = self.add_key(session, org.id, [SCOPE_AGENT, SCOPE_READ])
                conn = session.connection()
                audit.record(conn, org_id=org.id, actor=actor, action="org.create", target=f"org {name}")
                audit.record(
                    conn,
                    org_id=org.id,
                    actor=actor,
                    action="key.create",
                    target=f"key {key.key_id}",
                    detail={"scopes": key.scopes},
                )
                session.commit()
            except IntegrityError:
                raise Conflict(f"an organisation named {name!r} already exists") from None
            session.refresh(org)
            return org, key

    def org_named(self, name: str) -> Organization:
        with Session(self.engine) as session:
            org = repo.org_by_name(session, name.strip())
            if org is None:
                raise NotFound(f"no organisation named {name!r}")
            return org

    def set_require_enrolment(self, *, org_id: int, required: bool, actor: Actor | str = UNATTRIBUTED) -> Organization:
        """Refuse (or accept again) reports and heartbeats from the organisation's unbound keys."""
        return self._change_org(org_id, actor, require_enrolment=required)

    def set_machine_quota(self, *, org_id: int, quota: int | None, actor: Actor | str = UNATTRIBUTED) -> Organization:
        """At most `quota` machines; None: the server's DASHFLEET_MACHINE_QUOTA."""
        if quota is not None and (isinstance(quota, bool) or not 1 <= quota <= MACHINE_QUOTA_MAX):
            raise InvalidInput(f"the machine quota must be a whole number from 1 to {MACHINE_QUOTA_MAX}")
        return self._change_org(org_id, actor, machine_quota=quota)

    def _change_org(self, org_id: int, actor: Actor | str, **values: object) -> Organization:
        with Session(self.engine) as session:
            org = repo.org_by_id(session, org_id)
            if org is None:
                raise NotFound(f"no organisation {org_id}")
            for name, value in values.items():
                setattr(org, name, value)
            session.add(org)
            audit.record(
                session.connection(),
                org_id=org_id,
                actor=actor,
                action="org.settings",
                target=f"org {org.name}",
                detail=values,
            )
            session.commit()
            session.refresh(org)
        self.forget_cached_keys()  # keys carry their organisation's settings in the cache
        return org

    def org(self, org_id: int) -> Organization:
        with Session(self.engine) as session:
            org = repo.org_by_id(session, org_id)
            if org is None:
                raise NotFound(f"no organisation {org_id}")
            return org

    # -- API keys ------------------------------------------------------------------------
    def add_key(
        self,
        session: Session,
        org_id: int,
        scopes: list[str],
        *,
        bound_machine_id: str | None = None,
        bound_hardware_id: str | None = None,
    ) -> CreatedKey:
        secret = security.new_api_key()
        row = ApiKey(
            org_id=org_id,
            key_hash=security.hash_api_key(secret),
            prefix=secret[:12],
            scopes=" ".join(scopes),
            bound_machine_id=bound_machine_id,
            bound_hardware_id=bound_hardware_id,
        )
        session.add(row)
        session.flush()
        assert row.id is not None  # given by the database at the flush
        return CreatedKey(key_id=row.id, api_key=secret, scopes=scopes)

    def create_key(self, *, org_id: int, scopes: Iterable[str], actor: Actor | str = UNATTRIBUTED) -> CreatedKey:
        chosen = _check_scopes(list(scopes))
        with Session(self.engine) as session:
            key = self.add_key(session, org_id, chosen)
            audit.record(
                session.connection(),
                org_id=org_id,
                actor=actor,
                action="key.create",
                target=f"key {key.key_id}",
                detail={"scopes": chosen},
            )
            session.commit()
            return key

    def revoke_key(self, *, org_id: int, key_id: int, actor: Actor | str = UNATTRIBUTED) -> ApiKey:
        with Session(self.engine) as session:
            key = repo.key_by_id(session, org_id=org_id, key_id=key_id)
            if key is None:
                raise NotFound(f"no key {key_id} in this organisation")
            if key.revoked_at is None:
                key.revoked_at = time.time()
                session.add(key)
                audit.record(
                    session.connection(),
                    org_id=org_id,
                    actor=actor,
                    action="key.revoke",
                    target=f"key {key_id}",
                    detail={"scopes": key.scopes.split()},
                )
                session.commit()
                session.refresh(key)
        self.forget_cached_keys()
        return key

    def forget_cached_keys(self) -> None:
        """After a revocation or an organisation setting changes: this process forgets at once;
        other processes within KEY_CACHE_SECONDS."""
        with self._cache_lock:
            self._key_cache.clear()

    def list_keys(self, *, org_id: int) -> list[ApiKey]:
        with Session(self.engine) as session:
            return list(repo.keys_of(session, org_id=org_id))

    def authenticate_key(self, secret: str) -> Principal | None:
        """The key's principal, or None when it is malformed, unknown or revoked."""
        if not security.looks_like_api_key(secret):
            return None
        key_hash = security.hash_api_key(secret)
        with self._cache_lock:
            hit = self._key_cache.get(key_hash, False)
        if hit is not False:
            return cast(Principal | None, hit)
        with Session(self.engine) as session:
            found = repo.key_and_org_by_hash(session, key_hash)
            principal = None
            if found is not None and found[0].revoked_at is None:
                row, org = found
                assert row.id is not None
                principal = Principal(
                    org_id=row.org_id,
                    key_id=row.id,
                    scopes=frozenset(row.scopes.split()),
                    bound_machine_id=row.bound_machine_id,
                    org_requires_enrolment=org.require_enrolment,
                    org_machine_quota=org.machine_quota,
                )
        with self._cache_lock:
            self._key_cache[key_hash] = principal
        return principal

    def cached_principal(self, secret: str) -> Principal | None | bool:
        """The cached answer for a key without touching the database; False when not cached."""
        if not security.looks_like_api_key(secret):
            return None
        with self._cache_lock:
            return cast(Principal | bool | None, self._key_cache.get(security.hash_api_key(secret), False))

    # -- users ---------------------------------------------------------------------------
    def create_user(
        self, *, org_id: int, email: str, password: str, role: str = "viewer", actor: Actor | str = UNATTRIBUTED
    ) -> User:
        email = normalise_email(email)
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
        # Only this organisation's users are looked at: whether the address is used in another
        # organisation is none of this one's business (docs/security.md, finding 12).
        taken = f"{email} is already a user of this organisation"
        with Session(self.engine) as session:
            if repo.user_in_org_by_email(session, org_id=org_id, email=email):
                raise Conflict(taken)
            user = User(org_id=org_id, email=email, password_hash=security.hash_password(password), role=role)
            session.add(user)
            try:
                session.flush()
                audit.record(
                    session.connection(),
                    org_id=org_id,
                    actor=actor,
                    action="user.create",
                    target=f"user {email}",
                    detail={"role": role},
                )
                session.commit()
            except IntegrityError:
                raise Conflict(taken) from None
            session.refresh(user)
            return user

    def user_by_email(self, *, email: str, org_id: int | None = None) -> User:
        """The user with this e-mail (in `org_id` when given; without it, the only one there is)."""
        email = normalise_email(email)
        with Session(self.engine) as session:
            if org_id is not None:
                user = repo.user_in_org_by_email(session, org_id=org_id, email=email)
                if user is None:
                    raise NotFound(f"no user with e-mail {email} in this organisation")
                return user
            users = repo.users_by_email(session, email, limit=2)
        if not users:
            raise NotFound(f"no user with e-mail {email}")
        if len(users) > 1:
            raise InvalidInput(f"{email} is a user of several organisations: name one with --org")
        return users[0]

    def set_password(self, *, org_id: int, user_id: int, password: str, actor: Actor | str = UNATTRIBUTED) -> None:
        """A new password; every web session of the user ends (on every server process)."""
        check_password(password)
        password_hash = security.hash_password(password)
        with Session(self.engine) as session:
            user = repo.user_by_id(session, org_id=org_id, user_id=user_id)
            if user is None:
                raise NotFound("no such user in this organisation")
            user.password_hash = password_hash
            renew_session_secret(session, user)
            audit.record(
                session.connection(), org_id=org_id, actor=actor, action="user.password", target=f"user {user.email}"
            )
            session.commit()

    def authenticate_user(self, email: str, password: str) -> User | None:
        """The user whose e-mail and password these are. An address may belong to users of
        several organisations: the oldest whose password matches is signed in (at most
        MAX_SAME_EMAIL_USERS are tried, so one sign-in never costs more than that many hashes)."""
        try:
            email = normalise_email(email)
        except InvalidInput:
            return None
        with Session(self.engine) as session:
            users = repo.users_by_email(session, email, limit=MAX_SAME_EMAIL_USERS)
        if not users:
            security.verify_password(security.dummy_password_hash(), password)  # same time either way
            return None
        for user in users:
            if security.verify_password(user.password_hash, password):
                return user
        return None

    def user(self, *, org_id: int, user_id: int) -> User:
        with Session(self.engine) as session:
            user = repo.user_by_id(session, org_id=org_id, user_id=user_id)
            if user is None:
                raise NotFound("no such user in this organisation")
            return user

    def list_users(self, *, org_id: int) -> list[User]:
        with Session(self.engine) as session:
            return list(repo.users_of(session, org_id=org_id))

    def set_role(self, *, org_id: int, user_id: int, role: str, actor: Actor | str = UNATTRIBUTED) -> User:
        if role not in ROLES:
            raise InvalidInput(f"role must be one of {', '.join(ROLES)}")
        with Session(self.engine) as session:
            user = repo.user_by_id(session, org_id=org_id, user_id=user_id)
            if user is None:
                raise NotFound("no such user in this organisation")
            if user.role == "admin" and role != "admin" and repo.count_admins(session, org_id=org_id) <= 1:
                raise Conflict("the organisation needs at least one admin")
            if user.role != role:
                renew_session_secret(session, user)  # signs in again, with the new role from the start
            before, user.role = user.role, role
            session.add(user)
            audit.record(
                session.connection(),
                org_id=org_id,
                actor=actor,
                action="user.role",
                target=f"user {user.email}",
                detail={"from": before, "to": role},
            )
            session.commit()
            session.refresh(user)
            return user

    def delete_user(self, *, org_id: int, user_id: int, actor: Actor | str = UNATTRIBUTED) -> None:
        with Session(self.engine) as session:
            user = repo.user_by_id(session, org_id=org_id, user_id=user_id)
            if user is None:
                raise NotFound("no such user in this organisation")
            if user.role == "admin" and repo.count_admins(session, org_id=org_id) <= 1:
                raise Conflict("the organisation needs at least one admin")
            assert user.id is not None  # a stored user
            sessions_repo.delete_of_user(session, user.id)
            session.delete(user)
            audit.record(
                session.connection(),
                org_id=org_id,
                actor=actor,
                action="user.delete",
                target=f"user {user.email}",
                detail={"role": user.role},
            )
            session.commit()
