"""Real receivers for the alert tests: an HTTP server that records webhook POSTs (and can be told
to fail), and an SMTP server (aiosmtpd) that records mails. Both listen on 127.0.0.1."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class WebhookReceiver:
    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []  # every POST that arrived, answered or not
        self.fail_with = 0  # answer this status (e.g. 500) instead of 200 while not 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.fail_with or 200
                with receiver._lock:
                    receiver.posts.append(
                        {
                            "path": self.path,
                            "raw": raw,
                            "body": json.loads(raw),
                            "signature": self.headers.get("X-DashFleet-Signature"),
                            "status": status,
                        }
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def accepted(self, path: str | None = None) -> list[dict[str, Any]]:
        """Bodies of the POSTs answered 200 (to `path` only, if given)."""
        with self._lock:
            return [p["body"] for p in self.posts if p["status"] == 200 and (path is None or p["path"] == path)]

    def wait_for(self, check: Callable[[list[dict[str, Any]]], bool], path: str, timeout: float = 15) -> list[dict]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            bodies = self.accepted(path)
            if check(bodies):
                return bodies
            time.sleep(0.1)
        raise AssertionError(f"webhook {path}: condition not met in {timeout} s; got {self.accepted(path)}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify(secret: str, raw: bytes, header: str | None) -> bool:
    expected = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(expected, header)


class SmtpReceiver:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.mails: list[Message] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                message = message_from_bytes(envelope.original_content)
                message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
                receiver.mails.append(message)
                return "250 OK"

        from tests.helpers.servers import free_port

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait_for(self, count: int, timeout: float = 15) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.mails) < count:
            time.sleep(0.1)
        return list(self.mails)

    def close(self) -> None:
        self.controller.stop()
