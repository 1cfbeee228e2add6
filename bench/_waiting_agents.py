"""Simulated agents for bench/messaging.py: N machines each holding the inbox long poll open.

One process, one asyncio task and one keep-alive connection per machine, plain HTTP/1.1 over
asyncio streams (an HTTP client library per connection would cost the load generator more than
the server). Each agent asks `GET /api/agent/inbox?wait=25` again as soon as an answer comes; with
--ack it posts `delivered` for every item it gets, on the same connection, and notes when the
server accepted it. Reads commands on stdin: `dump [N]` (once N answers were noted) prints {"accepted": {message_id: [Unix times
`delivered` was accepted]}, "received": {message_id: [Unix times the inbox answered with it]}} as
one JSON line and exits. Prints `ready N` once every agent has sent its first request.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict
from urllib.parse import quote, urlsplit


class Agent:
    def __init__(
        self, host: str, port: int, key: str, machine_id: str, ack: bool, accepted: dict, received: dict
    ) -> None:
        self.host, self.port, self.key, self.machine_id = host, port, key, machine_id
        self.ack, self.accepted, self.received = ack, accepted, received
        self.asked = asyncio.Event()

    async def _request(self, reader, writer, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nAuthorization: Bearer {self.key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        writer.write(head.encode() + body)
        await writer.drain()
        self.asked.set()
        status_line = await reader.readline()
        length = 0
        while True:
            line = await reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await reader.readexactly(length)

    async def run(self) -> None:
        inbox = f"/api/agent/inbox?machine_id={quote(self.machine_id, safe='')}&wait=25"
        while True:
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port, limit=2**20)
                while True:
                    status, body = await self._request(reader, writer, "GET", inbox)
                    if status != 200:
                        await asyncio.sleep(1)
                        continue
                    got = time.time()
                    for item in json.loads(body)["items"]:
                        if item["type"] == "message":
                            self.received[item["message"]["message_id"]].append(got)
                        if not self.ack:
                            continue
                        post = json.dumps({"machine_id": self.machine_id, "state": "delivered"}).encode()
                        status, _ = await self._request(
                            reader, writer, "POST", f"/api/agent/deliveries/{item['delivery_id']}", post
                        )
                        if status == 200 and item["type"] == "message":
                            self.accepted[item["message"]["message_id"]].append(time.time())
            except (OSError, asyncio.IncompleteReadError, ValueError):
                await asyncio.sleep(0.5)  # reconnect, as an agent does


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--machines", type=int, required=True)
    parser.add_argument("--prefix", default="bench-")
    parser.add_argument("--ack", action="store_true")
    parser.add_argument("--spread", type=float, default=25.0, help="seconds over which the agents start")
    args = parser.parse_args()
    url = urlsplit(args.url)
    accepted: dict[str, list[float]] = defaultdict(list)
    received: dict[str, list[float]] = defaultdict(list)
    agents = [
        Agent(url.hostname, url.port, args.key, f"{args.prefix}{i:05d}", args.ack, accepted, received)
        for i in range(args.machines)
    ]
    # Spread over --spread seconds, as a fleet's agents are (they start at different times), so the
    # re-asks every 25 s are spread too.
    tasks = []
    step = args.spread / max(1, len(agents))
    started = time.monotonic()
    for n, agent in enumerate(agents):
        tasks.append(asyncio.create_task(agent.run()))
        delay = started + (n + 1) * step - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    for agent in agents:
        await agent.asked.wait()
    print(f"ready {len(agents)}", flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        command, _, count = line.strip().partition(" ")
        if not line or command == "dump":
            # The server may have committed the last `delivered` before its answer reached the
            # agent: wait (up to 30 s) until the agents have noted `count` answers, else the slowest
            # ones would be left out of the figures.
            deadline = time.monotonic() + 30
            while sum(map(len, accepted.values())) < int(count or 0) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            print(json.dumps({"accepted": accepted, "received": received}), flush=True)
            return


if __name__ == "__main__":
    asyncio.run(main())
