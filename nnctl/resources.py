"""Will it fit? Checked before allocating, so a data set or model too big for this machine gets
a clear error with its size instead of the operating system killing the process."""
from __future__ import annotations

import os

from .errors import NnctlError


def available_memory() -> int | None:
    """Bytes of memory available now (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def require_memory(needed: float, what: str, where: str, hint: str) -> None:
    """NnctlError if `needed` bytes exceed what is available."""
    available = available_memory()
    if available is not None and needed > available:
        raise NnctlError(f"{what} needs about {human_bytes(needed)}, but only {human_bytes(available)} is available",
                         where, hint)
