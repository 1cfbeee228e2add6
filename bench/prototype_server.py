"""The prototype's design, rebuilt as the baseline the real server is measured against.

Faithful to what the prototype did (issue 3): Flask, the whole fleet in one in-process dict, dumped
to one JSON file on every report, served by Flask's own `app.run()` (Werkzeug's development server,
one thread per request), an API key looked up in a dict. Its bugs that do not change the cost of a
request are left out; one thing is added: a lock around the update and dump, because without it
concurrent requests corrupt the file or fail with "dictionary changed size during iteration", and
a baseline that errors would flatter the real server. So this is the design at its best.

Its cost grows with the fleet: every report re-serialises every machine.

    python bench/prototype_server.py --port 8001 --api-key KEY --data-file /tmp/fleet.json
"""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
from pathlib import Path

from flask import Flask, jsonify, request

FLEET_TTL_SECONDS = 86400


def create_app(api_key: str, data_file: Path) -> Flask:
    app = Flask(__name__)
    keys = {api_key: "bench-org"}
    fleet: dict[str, dict] = json.loads(data_file.read_text()) if data_file.exists() else {}
    lock = threading.Lock()

    def org_of_request() -> str | None:
        header = request.headers.get("Authorization", "")
        return keys.get(header.removeprefix("Bearer ").strip())

    def save() -> None:
        # The prototype's persistence: the whole fleet, pretty-printed, on every write.
        with data_file.open("w") as f:
            json.dump(fleet, f, indent=2)

    @app.get("/api/status")
    def status():
        return jsonify(status="ok")

    @app.post("/api/fleet/report")
    def report():
        org = org_of_request()
        if org is None:
            return jsonify(error="Unauthorized"), 401
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not body.get("machine_id") or not isinstance(body.get("report"), dict):
            return jsonify(error="machine_id and report are required"), 400
        with lock:
            fleet[body["machine_id"]] = {"org": org, "report": body["report"], "ts": time.time()}
            save()
        return jsonify(ok=True)

    @app.get("/api/fleet")
    def fleet_list():
        org = org_of_request()
        if org is None:
            return jsonify(error="Unauthorized"), 401
        now = time.time()
        with lock:
            expired = [m for m, entry in fleet.items() if now - entry["ts"] > FLEET_TTL_SECONDS]
            for machine in expired:
                del fleet[machine]
            if expired:
                save()
            data = [{"machine_id": m, **entry} for m, entry in sorted(fleet.items()) if entry["org"] == org]
        return jsonify(count=len(data), expired=expired, data=data)

    return app


def write_fleet_file(data_file: Path, reports: dict[str, dict]) -> None:
    """A fleet file as the prototype leaves it (for starting it with a large fleet)."""
    now = time.time()
    fleet = {machine: {"org": "bench-org", "report": report, "ts": now} for machine, report in reports.items()}
    data_file.write_text(json.dumps(fleet, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--data-file", type=Path, required=True)
    args = parser.parse_args()
    # Request logging would cost a line of terminal output per request; the others run without it.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    create_app(args.api_key, args.data_file).run(host=args.host, port=args.port, threaded=True)


if __name__ == "__main__":
    main()
