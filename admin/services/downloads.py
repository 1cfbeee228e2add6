"""The agent packages this server hands out (GET /downloads/), each with its SHA-256.

The folder is DASHFLEET_DOWNLOADS_DIR (default <data_dir>/downloads). `make demo` and the
deployment (installers/server/build-downloads.sh) put the wheel and the .deb there; CI or the
operator add the Windows and macOS installers. Only files named as our build scripts name them
are served, so a stray file in the folder is never handed to a workstation.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from common.version import __version__

# The names the build scripts give (pip wheel, installers/linux/build-deb.sh, the Inno Setup
# script, installers/macos/build-pkg.sh). A version is digits, letters, dots, + and ~ only.
_VERSION = r"(?P<version>[0-9][0-9A-Za-z.+~]*)"
PATTERNS: dict[str, re.Pattern[str]] = {
    "wheel": re.compile(rf"^dashfleet-{_VERSION}-py3-none-any\.whl$"),
    "deb": re.compile(rf"^dashfleet-agent_{_VERSION}_(?P<arch>[a-z0-9]+)\.deb$"),
    "windows": re.compile(rf"^dashfleet-agent-setup-{_VERSION}\.exe$"),
    "macos": re.compile(rf"^dashfleet-agent-{_VERSION}\.pkg$"),
}
KINDS = tuple(PATTERNS)
HASH_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class Package:
    name: str
    kind: str  # wheel | deb | windows | macos
    version: str
    arch: str  # the .deb's Debian architecture; "any" for the others
    size: int
    sha256: str

    def as_dict(self) -> dict[str, object]:
        return {**asdict(self), "url": f"/downloads/{self.name}"}


def classify(name: str) -> tuple[str, str, str] | None:
    """(kind, version, arch) for a package name, or None when it is not one of ours."""
    for kind, pattern in PATTERNS.items():
        match = pattern.match(name)
        if match:
            return kind, match["version"], match.groupdict().get("arch") or "any"
    return None


class Downloads:
    """The packages in one folder. Hashes are remembered per (name, size, mtime), so a listing
    reads the files again only when one changed (a .deb is ~30 MB: about 0.1 s to hash)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._hashes: dict[tuple[str, int, int], str] = {}
        self._lock = threading.Lock()

    def packages(self) -> list[Package]:
        """Every package in the folder, newest version first within a kind, by name otherwise."""
        if not self.folder.is_dir():
            return []
        found = []
        for path in sorted(self.folder.iterdir()):
            known = classify(path.name)
            if known is None or not path.is_file():
                continue
            kind, version, arch = known
            stat = path.stat()
            found.append(Package(path.name, kind, version, arch, stat.st_size, self._sha256(path, stat)))
        return found

    def own_version(self) -> list[Package]:
        """The packages of this server's own version: what install scripts hand out."""
        return [p for p in self.packages() if p.version == __version__]

    def path_of(self, name: str) -> Path | None:
        """The file for a name listed by packages(), else None (no other path is ever served)."""
        if classify(name) is None:
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def _sha256(self, path: Path, stat: os.stat_result) -> str:
        key = (path.name, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            known = self._hashes.get(key)
        if known is not None:
            return known
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
        with self._lock:
            self._hashes = {k: v for k, v in self._hashes.items() if k[0] != path.name}
            self._hashes[key] = digest.hexdigest()
        return digest.hexdigest()
