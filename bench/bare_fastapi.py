"""The ceiling: a bare FastAPI app whose routes only validate the body with the shared schemas.

No auth, no database, no rate limit. Served the way `dashfleet-admin serve` serves the real app
(uvicorn with uvloop and httptools, no access log), so the ratio between the two is the cost of
what the real server does per request, not of the server software.

    python bench/bare_fastapi.py --port 8002
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `common` without an install

import uvicorn
from fastapi import FastAPI

from common.schemas import PingIn, PingOut, ReportIn

app = FastAPI()


@app.get("/api/status")
async def status() -> dict:
    return {"status": "ok"}


@app.post("/api/fleet/report")
async def report(body: ReportIn) -> dict:
    return {"ok": True, "machine_id": body.machine_id}


@app.post("/api/fleet/ping")
async def ping(body: PingIn) -> PingOut:
    now = time.time()
    return PingOut(timestamp=now, server_time_offset=None if body.timestamp is None else now - body.timestamp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app, host=args.host, port=args.port, loop="uvloop", http="httptools", access_log=False, log_level="warning"
    )


if __name__ == "__main__":
    main()
