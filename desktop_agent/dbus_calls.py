"""The two things the agent's D-Bus users (sni.py on the session bus, power.py on the system bus)
do the same way with jeepney's blocking connection: call a method and wait for its reply while
handling whatever else arrives, and serve incoming messages until stopped. Imported only where a
bus is in use (jeepney is not loaded otherwise)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from jeepney import HeaderFields, Message, MessageType
from jeepney.io.threading import DBusConnection, ReceiveStopped

SETUP_TIMEOUT_SECONDS = 5.0


def call(conn: DBusConnection, message: Message, handle: Callable[[Message], object]) -> tuple[Any, ...]:
    """Sends `message` and returns its reply's body; what arrives before the reply goes to
    `handle`. An error reply raises RuntimeError; no reply within the timeout, TimeoutError."""
    serial = next(conn.outgoing_serial)
    conn.send(message, serial=serial)
    deadline = time.monotonic() + SETUP_TIMEOUT_SECONDS
    while True:
        reply = conn.receive(timeout=max(0.0, deadline - time.monotonic()))
        if reply.header.fields.get(HeaderFields.reply_serial) == serial:
            if reply.header.message_type == MessageType.error:
                raise RuntimeError(f"{reply.header.fields.get(HeaderFields.error_name)}: {reply.body}")
            return tuple(reply.body)
        handle(reply)


def serve(conn: DBusConnection, handle: Callable[[Message], object], stopping: Callable[[], bool]) -> None:
    """Hands each incoming message to `handle` until stopping() (checked every second) or the
    connection is closed."""
    try:
        while not stopping():
            try:
                message = conn.receive(timeout=1.0)
            except TimeoutError:
                continue
            handle(message)
    except (ReceiveStopped, OSError):
        pass  # closed
