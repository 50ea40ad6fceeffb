"""A disk that fills up, for fault tests: a tmpfs of its own, a few megabytes (root can mount
one), and a filler file that takes its free space and gives it back.

When a test cannot have the fault it needs it calls `unavailable(reason)`: in CI (`CI=true`)
that FAILS the test, elsewhere it skips, so a fault test never passes by not running.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path
from typing import NoReturn

import pytest

FILLER = ".filler"
_CHUNKS = (1 << 20, 1 << 16, 1 << 12, 512, 1)


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def unavailable(reason: str) -> NoReturn:
    """No way to cause this fault here: fail in CI, skip elsewhere."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set, so this fault test may not be skipped)", pytrace=False)
    pytest.skip(reason)


class Tmpfs:
    """A tmpfs of `size_bytes` mounted at `path`; `mount` returns None (and `why_not` says why)
    where mounting is not allowed."""

    why_not = ""

    def __init__(self, path: Path, size_bytes: int) -> None:
        self.path = path
        self.size_bytes = size_bytes
        self.filler = path / FILLER

    @classmethod
    def mount(cls, path: Path, size_bytes: int) -> Tmpfs | None:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            cls.why_not = "mounting a tmpfs needs root and mount(8)"
            return None
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            cls.why_not = f"mount -t tmpfs failed: {done.stderr.strip()}"
            return None
        return cls(path, size_bytes)

    def free_bytes(self) -> int:
        stats = os.statvfs(self.path)
        return stats.f_bavail * stats.f_frsize

    def fill(self, *, leave: int = 0) -> int:
        """Take the free space but `leave` bytes (about: tmpfs counts in pages); returns the
        filler's size. With `leave=0` the next write that needs a new page fails (ENOSPC)."""
        budget = max(self.free_bytes() - leave, 0)
        fd = os.open(self.filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        written = 0
        try:
            for chunk in _CHUNKS:
                block = b"\0" * chunk
                while written + chunk <= budget:
                    try:
                        written += os.write(fd, block)
                    except OSError as full:
                        if full.errno != errno.ENOSPC:
                            raise
                        break
        finally:
            os.close(fd)
        return written

    def release(self) -> None:
        """Give the filler's space back."""
        self.filler.unlink(missing_ok=True)

    def grow(self, size_bytes: int) -> None:
        """Remount with more room, files and open handles kept (what an operator may do)."""
        subprocess.run(
            ["mount", "-o", f"remount,size={size_bytes}", str(self.path)],
            capture_output=True,
            check=True,
        )
        self.size_bytes = size_bytes

    def unmount(self) -> None:
        """Unmount; lazily if something still holds a file open there (it must not stay)."""
        done = subprocess.run(["umount", str(self.path)], capture_output=True, check=False)
        if done.returncode != 0:
            subprocess.run(["umount", "-l", str(self.path)], capture_output=True, check=True)
