"""Rotating log files in the platform's log folder (platformdirs), plus warnings on stderr."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

import platformdirs

from desktop_agent.config import APP_NAME

LOG_FILE_NAME = "agent.log"
# A year of quiet operation fits; a noisy failure cannot fill the disk.
MAX_BYTES = 1_000_000
BACKUP_COUNT = 3
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class OneLineFormatter(logging.Formatter):
    """`dashfleet-agent: warning: ...`: one line per record, tracebacks only in the log file."""

    def format(self, record: logging.LogRecord) -> str:
        return f"dashfleet-agent: {record.levelname.lower()}: {record.getMessage()}"


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(APP_NAME, appauthor=False))


def setup_logging(directory: Path | None = None, *, verbose: bool = False) -> Path | None:
    """Sends the agent's log to <log dir>/agent.log; returns that path, or None if unwritable."""
    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    # httpx logs every request at INFO: one line a minute per request is noise, not news.
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    if sys.stderr is not None:  # none under pythonw
        console = logging.StreamHandler(sys.stderr)
        console.setLevel(logging.DEBUG if verbose else logging.WARNING)
        console.setFormatter(OneLineFormatter())
        root.addHandler(console)

    directory = directory or log_dir()
    path = directory / LOG_FILE_NAME
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(
            path, maxBytes=MAX_BYTES, backupCount=BACKUP_COUNT, encoding="utf-8"
        )
    except OSError as exc:
        logging.getLogger(__name__).warning("cannot write the log file %s (%s); logging to stderr only", path, exc)
        return None
    handler.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(handler)
    return path
