"""Sending notices: a webhook POST (the contract's body, HMAC-signed), e-mail over SMTP, Apprise.

Each sender takes one channel row and a list of events and raises on failure (the notifier then
retries with backoff). Webhooks are sent one event per POST, always; e-mail and Apprise take a
group of events as one message (docs/alerts.md, "Noise control").
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import httpx

from admin.core.config import Settings

SEND_TIMEOUT_SECONDS = 10.0
SIGNATURE_HEADER = "X-DashFleet-Signature"
CHANNEL_KINDS = ("webhook", "email", "apprise")
PEOPLE_KINDS = frozenset({"email", "apprise"})  # grouped; webhooks get every event, one POST each


class SendFailed(Exception):
    """The channel did not take the notice; the message says why (kept on the delivery)."""


@dataclass(frozen=True)
class Notice:
    """What people read: a subject and a body, made from one or more events."""

    subject: str
    body: str


def webhook_body(event: Any) -> bytes:
    """The contract's body: exactly these keys; `id` is the event's, the same on every repeat."""
    return json.dumps(
        {
            "id": event.id,
            "event": event.event,
            "rule": event.rule,
            "severity": event.severity,
            "machine_id": event.machine_id,
            "value": event.value,
            "at": event.at,
        },
        separators=(",", ":"),
    ).encode()


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(client: httpx.Client, config: dict[str, Any], secret: dict[str, Any], body: bytes) -> None:
    headers = {"Content-Type": "application/json", "User-Agent": "DashFleet"}
    if secret.get("secret"):
        headers[SIGNATURE_HEADER] = signature(secret["secret"], body)
    try:
        resp = client.post(config["url"], content=body, headers=headers, timeout=SEND_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        raise SendFailed(f"{type(exc).__name__}: {exc}") from None
    if not 200 <= resp.status_code < 300:
        raise SendFailed(f"HTTP {resp.status_code}")


def send_email(settings: Settings, config: dict[str, Any], notice: Notice) -> None:
    if not settings.smtp_host:
        raise SendFailed("no SMTP server configured (DASHFLEET_SMTP_HOST)")
    message = EmailMessage()
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(config["to"])
    message["Subject"] = notice.subject
    message.set_content(notice.body)
    try:
        with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=SEND_TIMEOUT_SECONDS) as smtp:
            if settings.smtp_starttls:
                smtp.starttls()
            if settings.smtp_username:
                password = settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                smtp.login(settings.smtp_username, password)
            smtp.send_message(message)
    except (OSError, smtplib.SMTPException) as exc:
        raise SendFailed(f"SMTP: {exc}") from None


def send_apprise(secret: dict[str, Any], notice: Notice) -> None:
    import apprise  # only the servers that use it pay for importing it

    sender = apprise.Apprise()
    for url in secret.get("urls", []):
        sender.add(url)
    if not sender.notify(title=notice.subject, body=notice.body):
        raise SendFailed("Apprise: no service accepted the notice")


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _line(event: Any) -> str:
    what = "FIRING" if event.event == "firing" else "resolved"
    value = "" if event.value is None else f" ({event.value:.1f}%)"
    return f"[{event.severity}] {what}: {event.rule} on {event.machine_id}{value} at {_when(event.at)}"


def notice_for(events: list[Any], *, outage: tuple[int, int] | None = None) -> Notice:
    """One message for a group of events; with `outage` (offline, machines), the machines that went
    offline are summed up in one line instead of one line each."""
    lines: list[str] = []
    shown = events
    if outage is not None:
        offline = [e for e in events if e.kind == "offline" and e.event == "firing"]
        shown = [e for e in events if not (e.kind == "offline" and e.event == "firing")]
        names = ", ".join(sorted({e.machine_id for e in offline})[:20])
        more = "" if len(offline) <= 20 else f" and {len(offline) - 20} more"
        lines.append(f"SITE OUTAGE: {outage[0]} of {outage[1]} machines went offline ({names}{more})")
    lines.extend(_line(e) for e in shown)
    if outage is not None:
        subject = f"[DashFleet] Site outage: {outage[0]} of {outage[1]} machines offline"
    elif len(events) == 1:
        subject = "[DashFleet] " + lines[0]
    else:
        firing = sum(1 for e in events if e.event == "firing")
        subject = f"[DashFleet] {firing} firing, {len(events) - firing} resolved"
    return Notice(subject=subject[:200], body="\n".join(lines) + "\n")


def test_notice() -> Notice:
    return Notice(subject="[DashFleet] Test notice", body="This channel works: DashFleet can reach it.\n")
