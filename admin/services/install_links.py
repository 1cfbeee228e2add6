"""Install links: one URL per batch of workstations that installs this server's agent and enrols it.

A link's code (the random part of its URL) is its only secret and is shown once; the server keeps
its SHA-256. The link's enrol key (scope `enroll` only, never `agent`) is derived from the code
(HMAC-SHA-256), so the server can put it in the scripts it serves for that code without storing
it anywhere: the api_key row holds only its hash, like every key.

A use is one install script served (GET /install/<code>.sh or .ps1). The plain /install/<code>
page and HEAD requests use nothing, so a chat preview of the URL costs no use. An expired, used-up
or revoked link serves a script that says why and installs nothing; once a link is revoked or has
expired, its enrol key is revoked too (machines that enrolled keep their own keys).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlmodel import Session

from admin.core import security
from admin.core.config import Settings
from admin.models import ApiKey, InstallLink
from admin.repositories import install_links as repo
from admin.services import audit as audit_log
from admin.services.accounts import AccountService
from admin.services.audit import Actor
from admin.services.errors import InvalidInput, NotFound
from common.constants import API_KEY_PREFIX, SCOPE_ENROLL

# Each link created, used and revoked is recorded here (the audit log, when there is one, too).
audit = logging.getLogger("dashfleet.audit")

DEFAULT_EXPIRES_IN_SECONDS = 86400
MIN_EXPIRES_IN_SECONDS = 60
MAX_EXPIRES_IN_SECONDS = 30 * 86400
DEFAULT_USES = 50
MAX_USES = 10_000
INSTALL_PATH = "/install/"
_ENROLL_KEY_LABEL = b"dashfleet install-link enrol key v1"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


class NoPublicUrl(InvalidInput):
    """Links cannot be made (or served) because the server does not know its public address."""


@dataclass(frozen=True)
class CreatedLink:
    link_id: int
    url: str
    expires: float
    uses: int
    commands: dict[str, str]

    def as_dict(self) -> dict[str, object]:
        return {
            "link_id": self.link_id,
            "url": self.url,
            "expires": self.expires,
            "uses": self.uses,
            "commands": self.commands,
        }


@dataclass(frozen=True)
class LinkInfo:
    """What the CLI and the web UI show of a link (never its code or its key)."""

    link_id: int
    state: str  # live | expired | used up | revoked
    created_by: str
    created_at: float
    expires_at: float
    uses_allowed: int
    uses_count: int
    last_used_at: float | None
    revoked_at: float | None

    @property
    def uses_left(self) -> int:
        return max(0, self.uses_allowed - self.uses_count)

    @classmethod
    def of(cls, link: InstallLink, now: float) -> LinkInfo:
        assert link.id is not None
        return cls(
            link.id,
            link_state(link, now),
            link.created_by,
            link.created_at,
            link.expires_at,
            link.uses_allowed,
            link.uses_count,
            link.last_used_at,
            link.revoked_at,
        )


@dataclass(frozen=True)
class LinkUse:
    """A script to serve: the link's organisation and the enrol key to put in it."""

    link_id: int
    org_id: int
    enroll_key: str
    uses_left: int
    expires: float


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def enroll_key_for(code: str) -> str:
    """The link's enrol key: `api_` + 43 URL-safe characters, from the code alone."""
    digest = hmac.new(code.encode(), _ENROLL_KEY_LABEL, hashlib.sha256).digest()
    return API_KEY_PREFIX + base64.urlsafe_b64encode(digest).decode().rstrip("=")


def looks_like_code(code: str) -> bool:
    return 20 <= len(code) <= 64 and all(c.isascii() and (c.isalnum() or c in "-_") for c in code)


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def link_base_url(settings: Settings, request_base: str | None = None) -> str:
    """Where links point: DASHFLEET_PUBLIC_URL; without it, only this machine (localhost), for
    the demo and trials. http:// to another host only with DASHFLEET_INSTALL_LINKS_ALLOW_HTTP."""
    base = (settings.public_url or "").strip().rstrip("/")
    if not base:
        if request_base and is_loopback(urlsplit(request_base).hostname):
            return request_base.rstrip("/")
        raise NoPublicUrl(
            "install links need DASHFLEET_PUBLIC_URL (the https:// address workstations reach this server at); "
            "without it they work only on this machine, through http://127.0.0.1"
        )
    parts = urlsplit(base)
    if not base.isascii() or not base.isprintable() or " " in base:
        raise NoPublicUrl(
            f"DASHFLEET_PUBLIC_URL must be plain ASCII (a non-ASCII host name in its xn-- form): {base!r}"
        )
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise NoPublicUrl(f"DASHFLEET_PUBLIC_URL is not an http(s) URL: {base!r}")
    if parts.scheme == "http" and not is_loopback(parts.hostname) and not settings.install_links_allow_http:
        raise NoPublicUrl(
            "DASHFLEET_PUBLIC_URL is http://: install scripts and their enrol keys would cross the network "
            "unencrypted. Serve the server over https:// (docs/deploy.md), or set "
            "DASHFLEET_INSTALL_LINKS_ALLOW_HTTP=true on a network you trust"
        )
    return base


def commands_for(url: str) -> dict[str, str]:
    """What an administrator pastes on a workstation, per OS (docs/install-agent.md says more).

    No `curl -f`: an expired or revoked link answers 410 with a script that says why, and that
    script must reach sh. PowerShell's `irm` throws on 410, so the command reads the body then.
    """
    from admin.services.install_scripts import ps_quote, sh_quote

    if url.startswith("https://"):
        sh = f"curl --proto '=https' --tlsv1.2 -sSL {sh_quote(url + '.sh')} | sudo sh"
        allow_http = ""
    else:
        # The scripts refuse a plain http:// server unless the person running them says so: the
        # command says it, visibly (only links the server's administrator allowed are http://).
        sh = f"curl -sSL {sh_quote(url + '.sh')} | sudo env DASHFLEET_ALLOW_HTTP=1 sh"
        allow_http = "$env:DASHFLEET_ALLOW_HTTP = '1'; "
    ps1 = (
        "[Net.ServicePointManager]::SecurityProtocol = [Net.ServicePointManager]::SecurityProtocol -bor 3072; "
        f"{allow_http}$s = try {{ irm -UseBasicParsing {ps_quote(url + '.ps1')} }} catch {{ $_.ErrorDetails.Message }}; "
        "iex $s"
    )
    return {"linux": sh, "macos": sh, "windows": ps1}


def link_state(link: InstallLink, now: float) -> str:
    if link.revoked_at is not None:
        return "revoked"
    if link.expires_at <= now:
        return "expired"
    if link.uses_count >= link.uses_allowed:
        return "used up"
    return "live"


class InstallLinkService:
    def __init__(self, engine: Engine, settings: Settings, accounts: AccountService) -> None:
        self.engine = engine
        self.settings = settings
        self.accounts = accounts

    def create(
        self,
        *,
        org_id: int,
        actor: Actor | str,
        expires_in: int = DEFAULT_EXPIRES_IN_SECONDS,
        uses: int = DEFAULT_USES,
        request_base: str | None = None,
    ) -> CreatedLink:
        if not MIN_EXPIRES_IN_SECONDS <= expires_in <= MAX_EXPIRES_IN_SECONDS:
            raise InvalidInput(
                f"expires_in must be {MIN_EXPIRES_IN_SECONDS} to {MAX_EXPIRES_IN_SECONDS} seconds (30 days)"
            )
        if not 1 <= uses <= MAX_USES:
            raise InvalidInput(f"uses must be 1 to {MAX_USES}")
        base = link_base_url(self.settings, request_base)  # refuses before anything is stored
        code = secrets.token_urlsafe(24)
        enroll_key = enroll_key_for(code)
        now = time.time()
        with Session(self.engine) as session:
            key = ApiKey(
                org_id=org_id,
                key_hash=security.hash_api_key(enroll_key),
                prefix=enroll_key[:12],
                scopes=SCOPE_ENROLL,
            )
            session.add(key)
            session.flush()
            assert key.id is not None  # given by the database at the flush
            link = InstallLink(
                org_id=org_id,
                code_hash=hash_code(code),
                enroll_key_id=key.id,
                created_by=str(actor),
                created_at=now,
                expires_at=now + expires_in,
                uses_allowed=uses,
            )
            session.add(link)
            session.flush()
            assert link.id is not None
            audit_log.record(
                session.connection(),
                org_id=org_id,
                actor=actor,
                action="install_link.create",
                target=f"install link {link.id}",
                detail={"uses": uses, "expires_in": expires_in, "enroll_key_id": key.id},
            )
            session.commit()
            link_id, key_id, expires_at = link.id, key.id, link.expires_at
        audit.info(
            "install link created: org %s link %s by %s (enrol key %s, %d uses, expires in %d s)",
            org_id, link_id, actor, key_id, uses, expires_in,
        )  # fmt: skip
        url = base + INSTALL_PATH + code
        return CreatedLink(link_id, url, expires_at, uses, commands_for(url))

    def list(self, *, org_id: int) -> list[LinkInfo]:
        """The organisation's links, newest first."""
        now = time.time()
        with Session(self.engine) as session:
            return [LinkInfo.of(link, now) for link in repo.links_of(session, org_id=org_id)]

    def revoke(self, *, org_id: int, link_id: int, actor: Actor | str) -> LinkInfo:
        with Session(self.engine) as session:
            link = repo.link_by_id(session, org_id=org_id, link_id=link_id)
            if link is None:
                raise NotFound(f"no install link {link_id} in this organisation")
            if link.revoked_at is None:
                link.revoked_at = time.time()
                session.add(link)
                audit_log.record(
                    session.connection(),
                    org_id=org_id,
                    actor=actor,
                    action="install_link.revoke",
                    target=f"install link {link_id}",
                )
                session.commit()
                session.refresh(link)
                audit.info("install link revoked: org %s link %s by %s", org_id, link_id, actor)
            info = LinkInfo.of(link, time.time())
            key_id = link.enroll_key_id
        # Scripts already served carry the enrol key: it goes with the link.
        self.accounts.revoke_key(org_id=org_id, key_id=key_id, actor=actor)
        return info

    def use(self, code: str, *, client: str) -> tuple[LinkUse | None, str]:
        """Take one use of the link with this code: (the use, "live"), or (None, why not):
        "unknown", "expired", "used up" or "revoked"."""
        if not looks_like_code(code):
            return None, "unknown"
        now = time.time()
        with Session(self.engine) as session:
            link = repo.link_by_code_hash(session, hash_code(code))
            if link is None:
                return None, "unknown"
            assert link.id is not None  # a stored row
            taken = repo.take_use(session, link_id=link.id, now=now)
            if taken:
                audit_log.record(
                    session.connection(),
                    org_id=link.org_id,
                    actor=Actor("install script", client),
                    action="install_link.use",
                    target=f"install link {link.id}",
                )
            session.commit()
            session.refresh(link)
        if not taken:
            state = link_state(link, now)
            audit.info("install link refused: org %s link %s (%s) for %s", link.org_id, link.id, state, client)
            return None, state
        audit.info(
            "install link used: org %s link %s by %s (%d of %d)",
            link.org_id, link.id, client, link.uses_count, link.uses_allowed,
        )  # fmt: skip
        return (
            LinkUse(link.id, link.org_id, enroll_key_for(code), link.uses_allowed - link.uses_count, link.expires_at),
            "live",
        )

    def state_of(self, code: str) -> str:
        """The link's state ("live", "unknown", "expired", "used up", "revoked"), using nothing."""
        if not looks_like_code(code):
            return "unknown"
        with Session(self.engine) as session:
            link = repo.link_by_code_hash(session, hash_code(code))
        return "unknown" if link is None else link_state(link, time.time())

    def expire(self) -> int:
        """Revoke the enrol keys of links that expired (the maintenance job runs this)."""
        with Session(self.engine) as session:
            due = repo.expired_unrevoked_key_ids(session, now=time.time())
        for org_id, key_id in due:
            self.accounts.revoke_key(org_id=org_id, key_id=key_id, actor="server (install link expired)")
        return len(due)
