"""This machine's own key: bought once with an enrol key, then kept where only this user reads it.

With an enrol key configured (`--enroll-token-file`, `DASHFLEET_ENROLL_TOKEN`, `enroll_token` in
agent.toml) and no machine key stored yet, the agent calls `POST /api/agent/enroll` once, stores
the key it gets, and from then on uses only that key: restarts read it back and never enrol again.

Where the key is kept: the OS credential store through `keyring` (Windows Credential Manager,
macOS Keychain, the Secret Service of a Linux desktop) when one is there, else a file in the
agent's state folder that only its user can read (0600). `keyring` is imported only to enrol and
to read a key that was put there (a marker file says so), never by an agent with a file-kept key or
an organisation key: headless agents do not pay its memory.

A stored key the server refuses (401: revoked, the machine deleted or its enrolment reset) is
dropped after REENROL_AFTER_401S refusals in a row, and the agent enrols again, at most once per
backoff period (one minute, doubling to an hour), never in a loop.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from desktop_agent.reporter import Backoff, Outcome, Reporter

log = logging.getLogger(__name__)

KEYRING_SERVICE = "dashfleet-agent"
REENROL_AFTER_401S = 3
ENROL_BACKOFF_BASE_SECONDS = 60.0
ENROL_BACKOFF_CAP_SECONDS = 3600.0
# Backends that are no OS credential store: the failing and null ones, and keyrings.alt's files.
_NOT_A_STORE = ("keyring.backends.fail", "keyring.backends.null", "keyrings.alt")


def _keyring() -> ModuleType:
    import keyring  # lazily: only enrolment and keyring-kept keys need it (about 2 MiB)

    return keyring


def os_store_available() -> bool:
    try:
        backend = _keyring().get_keyring()
    except Exception:  # noqa: BLE001 - no keyring package, or a broken backend: use the file
        return False
    return not type(backend).__module__.startswith(_NOT_A_STORE)


class KeyStore:
    """The machine key of one (server, machine id), in the OS store or in a 0600 file."""

    def __init__(self, state_dir: Path, server: str, machine_id: str) -> None:
        identity = hashlib.sha256(f"{server}\n{machine_id}".encode()).hexdigest()[:16]
        self.file = state_dir / f"machine-key-{identity}"
        self.marker = state_dir / f"machine-key-{identity}.in-keyring"  # the key is in the OS store
        self.account = f"{server} {machine_id}"

    @property
    def where(self) -> str:
        return "the OS credential store" if self.marker.is_file() else str(self.file)

    def has_key(self) -> bool:
        return self.file.is_file() or self.marker.is_file()

    def load(self) -> str | None:
        try:
            if self.file.is_file():
                return self.file.read_text(encoding="ascii").strip() or None
            if self.marker.is_file():
                key = _keyring().get_password(KEYRING_SERVICE, self.account)
                return key if isinstance(key, str) and key else None
        except Exception as exc:  # noqa: BLE001 - an unreadable store means "enrol again"
            log.warning("cannot read this machine's stored key (%s); it will enrol again", exc)
        return None

    def save(self, key: str) -> str:
        """Keep the key; returns where it went."""
        self.file.parent.mkdir(parents=True, exist_ok=True)
        if os_store_available():
            try:
                kr = _keyring()
                kr.set_password(KEYRING_SERVICE, self.account, key)
                if kr.get_password(KEYRING_SERVICE, self.account) == key:
                    self.marker.touch()
                    self.file.unlink(missing_ok=True)
                    return self.where
            except Exception as exc:  # noqa: BLE001 - a locked or broken store: fall back to the file
                log.warning("the OS credential store refused the key (%s); keeping it in a file", exc)
        self._write_private(key)
        self.marker.unlink(missing_ok=True)
        return self.where

    def _write_private(self, key: str) -> None:
        # Created 0600 from the start (never readable by others, even for a moment), then renamed
        # into place so a crash never leaves half a key.
        temporary = self.file.with_name(self.file.name + ".new")
        temporary.unlink(missing_ok=True)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, self.file)

    def forget(self) -> None:
        if self.marker.is_file():
            try:
                _keyring().delete_password(KEYRING_SERVICE, self.account)
            except Exception:  # noqa: BLE001 - already gone is as good
                pass
            self.marker.unlink(missing_ok=True)
        self.file.unlink(missing_ok=True)


class MachineCredentials:
    """Gives the reporter this machine's key: the stored one, or one bought with the enrol key."""

    def __init__(
        self,
        reporter: Reporter,
        store: KeyStore,
        *,
        enroll_token: str | None,
        machine_id: str,
        hardware_id: str,
        fallback_token: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reporter = reporter
        self.store = store
        self.enroll_token = enroll_token
        self.machine_id = machine_id
        self.hardware_id = hardware_id
        self.fallback_token = fallback_token  # an organisation key, for a server without enrolment
        self._clock = clock
        self._backoff = Backoff(ENROL_BACKOFF_BASE_SECONDS, ENROL_BACKOFF_CAP_SECONDS)
        self._next_enrolment = 0.0
        self._enrolled_at: float | None = None  # when this process last bought a key
        self._refusals = 0
        self.last_error: str | None = None
        # The report, heartbeat and inbox threads share this: one enrolment at a time (two at once
        # would buy two keys, the second revoking the first).
        self._lock = threading.Lock()
        self.key = store.load()
        if self.key:
            reporter.set_token(self.key)
            log.info("using this machine's own key (kept in %s)", store.where)

    def ensure(self) -> bool:
        """True when the reporter holds a key to send with; enrols when due (never more often
        than the backoff allows)."""
        with self._lock:
            return self._ensure()

    def _ensure(self) -> bool:
        if self.key:
            return True
        if not self.enroll_token:
            # A stored key and no enrol key: without its key the machine can only use the
            # organisation key, if it has one.
            self.key = self.fallback_token or None
            if self.key:
                self.reporter.set_token(self.key)
            self.last_error = None if self.key else "this machine's key was refused and no enrol key is configured"
            return bool(self.key)
        if self._clock() < self._next_enrolment:
            return False
        outcome = self.reporter.enroll(self.enroll_token, self.machine_id, self.hardware_id)
        key = outcome.body.get("agent_key") if outcome.ok and isinstance(outcome.body, dict) else None
        if isinstance(key, str) and key:
            where = self.store.save(key)
            self.key, self.last_error, self._refusals = key, None, 0
            self._enrolled_at = self._clock()
            self.reporter.set_token(key)
            log.info("enrolled %r; its own key is kept in %s", self.machine_id, where)
            return True
        delay = self._backoff.next_delay(outcome.retry_after)
        self._next_enrolment = self._clock() + delay
        self.last_error = f"enrolment failed: {outcome.error or 'no key in the answer'}"
        if outcome.status == 404 and self.fallback_token:
            # A server that predates enrolment: the organisation key works as before.
            log.warning("the server does not enrol machines (404); using the organisation key")
            self.key = self.fallback_token
            self.reporter.set_token(self.key)
            return True
        log.warning("%s; next try in %.0f s", self.last_error, delay)
        return False

    def note(self, outcome: Outcome) -> None:
        """Called with each answer to a request made with the key: repeated 401s drop the key, so
        the next ensure() enrols again (at most once per backoff period)."""
        with self._lock:
            self._note(outcome)

    def _note(self, outcome: Outcome) -> None:
        if outcome.status != 401:
            if outcome.ok:
                self._refusals = 0
                self._backoff.reset()  # the key works: a later loss may enrol again at once
                self._enrolled_at = None  # ... even one bought by this process (it worked)
            return
        self._refusals += 1
        if (
            self._refusals < REENROL_AFTER_401S
            or not self.key
            or self.key == self.fallback_token
            or not self.enroll_token
        ):
            return
        log.warning("the server refused this machine's key %d times (401); enrolling again", self._refusals)
        self.store.forget()
        self.key = None
        self._refusals = 0
        if self._enrolled_at is not None:
            # A key bought by this process was refused before it ever worked: wait a growing
            # period since that enrolment, so a server that keeps refusing never sees a loop.
            self._next_enrolment = max(self._next_enrolment, self._enrolled_at + self._backoff.next_delay())
