"""Run every benchmark in bench/ (what `make bench` does), one after another, each in its own process.

A benchmark is any bench/*.py script except helpers (names starting with "_"), this runner and the
servers the benchmarks start (SERVERS below). Each prints its own figures; this prints a summary
of which ran and how they ended, and exits non-zero if any failed.

    .venv/bin/python bench/run_all.py [--list] [NAME ...]     (NAME: e.g. server_throughput)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
# Programs the benchmarks start, and tools: not benchmarks themselves.
SERVERS = {"prototype_server.py", "bare_fastapi.py", "profile_hot_path.py"}


def benchmarks() -> list[Path]:
    return sorted(
        p
        for p in BENCH_DIR.glob("*.py")
        if not p.name.startswith("_") and p.name != Path(__file__).name and p.name not in SERVERS
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only these (file names without .py)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args()
    scripts = benchmarks()
    if args.names:
        unknown = set(args.names) - {p.stem for p in scripts}
        if unknown:
            sys.exit(f"unknown benchmark(s): {', '.join(sorted(unknown))}; known: {', '.join(p.stem for p in scripts)}")
        scripts = [p for p in scripts if p.stem in args.names]
    if args.list:
        print("\n".join(p.stem for p in scripts))
        return

    outcomes = []
    for script in scripts:
        print(f"\n=== {script.name} ===", flush=True)
        started = time.monotonic()
        code = subprocess.run([sys.executable, str(script)], cwd=BENCH_DIR.parent).returncode
        outcomes.append((script.name, code, time.monotonic() - started))

    print("\n=== summary ===")
    for name, code, seconds in outcomes:
        print(f"{'ok    ' if code == 0 else f'FAILED ({code})'} {name} ({seconds:.0f} s)")
    sys.exit(1 if any(code for _, code, _ in outcomes) else 0)


if __name__ == "__main__":
    main()
