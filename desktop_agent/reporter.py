"""HTTP to the server: timeouts, TLS verification, retries with backoff and jitter, Retry-After.

Every call returns an Outcome instead of raising, so the loops above decide what a failure means
(keep the report queued, drop a refused one, wait) and a network error can never crash the agent.
Waits go through an injected `sleep` that returns True when the agent is quitting, so a long
Retry-After never holds up Quit.
"""

from __future__ import annotations

import json
import logging
import random
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, NoReturn, cast

import httpx

from common.constants import PATH_ENROLL, PATH_PING, PATH_REPORT
from common.version import __version__

log = logging.getLogger(__name__)

# Statuses worth trying again: the server is busy, restarting or behind a proxy that is.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# The server read the body and will never take it (malformed, too large): drop it, log it.
# Anything else that is not a success (a wrong URL's 404, a revoked key's 401, a proxy's 3xx)
# says nothing about the report, so it stays queued until the configuration is fixed.
REFUSED_STATUSES = frozenset({400, 413, 422})
# Never wait longer than this for one Retry-After; a server asking for more is treated as down.
MAX_RETRY_AFTER_SECONDS = 3600.0
_JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status: int | None = None  # HTTP status; None when no answer came back
    error: str | None = None  # one line for people, None when ok
    body: Any = None
    retry_after: float | None = None  # seconds the server asked us to wait

    @property
    def reached(self) -> bool:
        return self.status is not None

    @property
    def transient(self) -> bool:
        return not self.ok and (self.status is None or self.status in TRANSIENT_STATUSES)

    @property
    def refused(self) -> bool:
        """The server will never accept this request as it is (bad data, too large)."""
        return not self.ok and self.status in REFUSED_STATUSES


# A request made after close(): a thread of the agent's (a click on Acknowledge as it quits) that
# was still at work when it stopped. Kept by the caller, like any failure, for the next start.
STOPPING = Outcome(False, error="the agent is stopping")


class Backoff:
    """Exponential backoff with jitter: base * 2**n, capped, scaled by a random 50-100 %.

    The jitter spreads a fleet that failed together (a server restart) over time; keeping at
    least half of the delay avoids hammering a server that is already struggling.
    """

    def __init__(self, base: float, cap: float, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self, retry_after: float | None = None) -> float:
        self.failures += 1
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER_SECONDS)
        ceiling = min(self.cap, self.base * 2.0 ** (self.failures - 1))
        return ceiling * self._rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: either a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        message = body.get("error") if isinstance(body, dict) else None
    except ValueError:
        message = None
    reason = response.reason_phrase or "error"
    return f"HTTP {response.status_code} {message or reason}"


class NoTLS:
    """What httpx gets instead of an SSL context for a plain http:// server.

    The agent only ever requests paths of its own server and follows no redirect, so with an
    http:// server it never makes a TLS connection. Building even an empty OpenSSL context costs
    0.4 MiB of RSS (OpenSSL 3's SSL_CTX_new), a loaded CA store about 1 MiB more. httpx hands whatever
    it is given to httpcore, which touches it only to open a TLS connection; should anything ever
    try, every use of this object raises, so the agent fails closed rather than without
    verification.
    """

    def __getattr__(self, name: str) -> NoReturn:
        raise RuntimeError(f"TLS was attempted ({name}) although the server is http://; no TLS is set up for it")


def _tls_context(server: str, ca_bundle: str | None) -> ssl.SSLContext | bool:
    """TLS is always verified, against certifi's CAs (httpx's default, the same on every OS). A CA
    bundle is trusted besides them (a private CA for an internal server), never instead. A plain
    http:// server gets NoTLS: no TLS at all."""
    if server.lower().startswith("http://"):
        return cast(ssl.SSLContext, NoTLS())  # stands in for one, and refuses to be used
    if not ca_bundle:
        return True
    import certifi  # httpx's own dependency

    context = ssl.create_default_context(cafile=certifi.where())
    context.load_verify_locations(cafile=ca_bundle)  # ssl.SSLError if it holds no certificate
    return context


def _sleep_through(seconds: float) -> bool:
    time.sleep(seconds)
    return False  # never cut short


class Reporter:
    def __init__(
        self,
        server: str,
        token: str,
        *,
        ca_bundle: str | None = None,
        timeout: float = 10.0,
        max_attempts: int = 3,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_inline_wait: float = 30.0,
        sleep: Callable[[float], bool] | None = None,
        transport: httpx.BaseTransport | None = None,
        rng: random.Random | None = None,
    ):
        self.server = server
        self.max_attempts = max_attempts
        self.max_inline_wait = max_inline_wait
        # One generator for every request's backoff: a new random.Random() seeds itself from the OS
        # each time (about 2 % of a report's CPU, measured with py-spy).
        shared_rng = rng or random.Random()
        self._backoff: Callable[[], Backoff] = lambda: Backoff(backoff_base, backoff_cap, shared_rng)
        # sleep(seconds) -> True when the agent is quitting and the wait was cut short.
        self._sleep = sleep or _sleep_through
        self._client = httpx.Client(
            base_url=server,
            headers={"Authorization": f"Bearer {token}", "User-Agent": f"dashfleet-agent/{__version__}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            verify=_tls_context(server, ca_bundle),
            transport=transport,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def set_token(self, token: str) -> None:
        """Send with this key from now on (this machine's own, once enrolled)."""
        self._client.headers["Authorization"] = f"Bearer {token}"

    def enroll(self, enroll_token: str, machine_id: str, hardware_id: str) -> Outcome:
        """POST /api/agent/enroll with the enrol key (one attempt: the caller backs off). A 201
        carries `agent_key` in the body."""
        body = {"machine_id": machine_id, "hardware_id": hardware_id}
        response = self._request("POST", PATH_ENROLL, json=body, headers={"Authorization": f"Bearer {enroll_token}"})
        if isinstance(response, Outcome):
            return response
        if response.status_code == 201:
            try:
                return Outcome(True, 201, body=response.json())
            except ValueError:
                return Outcome(False, 201, "HTTP 201 but not a DashFleet answer (check the server URL)")
        retry_after = parse_retry_after(response.headers.get("Retry-After")) if response.status_code == 429 else None
        return Outcome(False, response.status_code, _error_text(response), retry_after=retry_after)

    def send_report(self, machine_id: str, report: dict[str, Any] | str) -> Outcome:
        """POST /api/fleet/report; `report` may be a dict or already JSON text (from the queue)."""
        if isinstance(report, str):
            body = f'{{"machine_id":{json.dumps(machine_id)},"report":{report}}}'.encode()
            return self.post(PATH_REPORT, body)
        return self.post(PATH_REPORT, {"machine_id": machine_id, "report": report})

    def ping(self, machine_id: str, hardware_id: str | None) -> Outcome:
        body = {"machine_id": machine_id, "hardware_id": hardware_id, "timestamp": time.time()}
        return self.post(PATH_PING, body)

    def get(self, path: str, params: dict[str, str | int] | None = None, timeout: float | None = None) -> Outcome:
        """One GET, not retried (its callers poll and back off themselves); ok for a 2xx answer
        with a JSON object, whose `body` it is. `timeout` is the wait for the answer (a long poll's)."""
        response = self._request(
            "GET", path, params=params, timeout=httpx.USE_CLIENT_DEFAULT if timeout is None else timeout
        )
        if isinstance(response, Outcome):
            return response
        body = _json_or_none(response)
        if response.is_success:
            if isinstance(body, dict):
                return Outcome(True, response.status_code, body=body)
            return Outcome(False, response.status_code, f"HTTP {response.status_code} but not a DashFleet answer")
        retry_after = (
            parse_retry_after(response.headers.get("Retry-After")) if response.status_code in (429, 503) else None
        )
        return Outcome(False, response.status_code, _error_text(response), body=body, retry_after=retry_after)

    def post(self, path: str, body: dict[str, Any] | bytes, *, attempts: int | None = None) -> Outcome:
        """One request, retried on transient failures (up to `attempts`, by default the reporter's
        max_attempts); returns the last outcome."""
        tries = self.max_attempts if attempts is None else attempts
        backoff = self._backoff()
        for attempt in range(1, tries + 1):
            outcome = self._post_once(path, body)
            if not outcome.transient or attempt == tries or outcome is STOPPING:
                return outcome
            delay = backoff.next_delay(outcome.retry_after)
            if delay > self.max_inline_wait:
                return outcome  # the caller keeps the report and tries again later
            log.info("%s failed (%s); attempt %d of %d in %.1f s", path, outcome.error, attempt + 1, tries, delay)
            if self._sleep(delay):
                return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response | Outcome:
        """The server's answer, or the failed Outcome that stands for none."""
        try:
            return self._client.request(method, path, **kwargs)
        except RuntimeError:
            if self._client.is_closed:
                return STOPPING
            raise
        except httpx.TimeoutException:
            return Outcome(False, error="server unreachable (timed out)")
        except httpx.HTTPError as exc:
            # Connection refused, DNS failure, TLS failure, ...: say which, in one line.
            detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Outcome(False, error=f"server unreachable ({detail})")

    def _post_once(self, path: str, body: dict[str, Any] | bytes) -> Outcome:
        if isinstance(body, bytes):
            response = self._request("POST", path, content=body, headers=_JSON)
        else:
            response = self._request("POST", path, json=body)
        if isinstance(response, Outcome):
            return response
        if response.is_success:
            return self._accepted(response)
        retry_after = None
        if response.status_code in (429, 503):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
        # The error's body too: a delivery's 409 says the state it is in.
        body = _json_or_none(response)
        return Outcome(False, response.status_code, _error_text(response), body=body, retry_after=retry_after)

    @staticmethod
    def _accepted(response: httpx.Response) -> Outcome:
        # A captive portal or a wrong URL can answer 200 with a web page: only the API's
        # {"ok": true} counts as accepted, so a report is never deleted on such an answer.
        try:
            body = response.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("ok") is True:
            return Outcome(True, response.status_code, body=body)
        return Outcome(
            False,
            response.status_code,
            f"HTTP {response.status_code} but not a DashFleet answer (check the server URL)",
        )
