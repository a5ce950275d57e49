"""Will it fit? Checked before allocating, so a data set or model too big for this machine gets
a clear error with its size instead of the operating system killing the process."""
from __future__ import annotations

import os
import re

from .errors import NnctlError

_UNITS = {"": 1, "b": 1, "kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30, "tb": 1 << 40}
MEMORY_VARIABLE = "NNCTL_MEMORY_LIMIT"
# cgroup v2 ("max" when unlimited), then v1 (a huge number when unlimited)
CGROUP_LIMITS = ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
FALLBACK_MEMORY = 2 << 30  # assumed available where the system does not say
# NNCTL_MEMORY_LIMIT's range: a value under 64KB is a slip (0, or `1` meant as 1GB: plain numbers
# are bytes) — reading chunks have a floor far above it, so it would only force streaming — and one
# over 64TB is more than any one machine holds
MEMORY_LIMIT_RANGE = (64 << 10, 64 << 40)
MEMORY_LIMIT_TEXT = "64KB and 64TB"


def parse_size(text: str, variable: str, example: str) -> int:
    """Bytes from a size as people write it: `500MB`, `2GB`, `1.5G`, `123` (bytes); units are
    powers of 1024. A bad value is an NnctlError naming the environment `variable`."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?b?)", text.strip(), re.IGNORECASE)
    if not match:
        raise NnctlError(f"{variable} must be a size such as 500MB or 2GB, got {text!r}", variable,
                         f"set it to a size, e.g. export {variable}={example}")
    number, unit = match.groups()
    unit = unit.lower()
    size = float(number) * _UNITS[unit if unit in _UNITS else unit + "b"]
    if size >= 2 ** 63:  # no machine has it; int() of an infinite one would not even convert
        raise NnctlError(f"{variable} is far too large, got {text!r}", variable,
                         f"set it to a size, e.g. export {variable}={example}")
    return int(size)


def cgroup_limit() -> int | None:
    """The container's memory limit in bytes, or None when there is none."""
    for path in CGROUP_LIMITS:
        try:
            with open(path) as fh:
                text = fh.read().strip()
        except OSError:
            continue
        return int(text) if text.isdigit() else None
    return None


def memory_budget() -> int:
    """Bytes the data may take in memory: `$NNCTL_MEMORY_LIMIT` (`500MB`, `2GB`, plain bytes),
    by default half of what is available now, or of the container's limit when that is smaller
    (MemAvailable does not know about cgroups)."""
    text = os.environ.get(MEMORY_VARIABLE, "").strip()
    if text:
        budget = parse_size(text, MEMORY_VARIABLE, "2GB")
        low, high = MEMORY_LIMIT_RANGE
        if not low <= budget <= high:
            raise NnctlError(f"{MEMORY_VARIABLE} must be a size between {MEMORY_LIMIT_TEXT}, got {text!r} "
                             f"({budget:,} bytes)", MEMORY_VARIABLE,
                             f"set it to the memory nnctl's data may use, e.g. export {MEMORY_VARIABLE}=2GB, or unset "
                             "it to use half of the memory available")
        return budget
    available = [n for n in (available_memory(), cgroup_limit()) if n]
    return (min(available) if available else FALLBACK_MEMORY) // 2


def encoded_bytes_estimate(cfg, scan_or_header) -> int:
    """Bytes of the encoded training data (features and targets in the config's dtype), from a
    first pass's `Scan` (exact: its training rows and inputs), or before one from an estimate
    with `.rows` and `.inputs` (`data.scan.estimate_size`: rows from the file's size or Parquet
    metadata, one input per used column). Validation rows are not counted: they are encoded in
    chunks."""
    itemsize = 8 if str(cfg.training.dtype) == "float64" else 4
    estimate = scan_or_header
    rows = getattr(estimate, "train_rows", None)
    rows = estimate.rows if rows is None else rows
    inputs = estimate.n_inputs if hasattr(estimate, "n_inputs") else estimate.inputs
    # class indices are int64; a regression's targets are in the dtype, one per output
    target = 8 if getattr(estimate, "task", "classification") == "classification" else \
        getattr(estimate, "n_outputs", 1) * itemsize
    return int(rows * (inputs * itemsize + target))


# a forward pass that scores or predicts in chunks of rows keeps the chunk's buffers under
# budget / SCORING_SHARE: a periodic embedding of 60 inputs writes 15 KB a row, 30 MB for 2,048
# rows, which the streaming budget never saw. And its widest buffer under CACHE_BYTES whatever the
# budget: that embedding's 60 per-input products ran several times slower per row in chunks of
# 2,048 rows than of 512 (docs/large-data.md), while a plain MLP's buffers stay far below it
SCORING_SHARE = 16
CACHE_BYTES = 4 << 20
# chunks in whole blocks of rows, the blocks runs/model.py pads a prediction's rows to: the same BLAS kernels
ROW_MULTIPLE = 64


def chunk_rows(row_bytes: int, widest_bytes: int, most: int) -> int:
    """Rows per forward pass for a network whose passes write `row_bytes` a row, `widest_bytes`
    of it in one array: `most`, fewer when the buffers would pass 1/SCORING_SHARE of the memory
    budget or the widest one CACHE_BYTES; a multiple of ROW_MULTIPLE, at least one block."""
    fit = min(memory_budget() // SCORING_SHARE // max(int(row_bytes), 1), CACHE_BYTES // max(int(widest_bytes), 1))
    return int(max(ROW_MULTIPLE, min(most, fit) // ROW_MULTIPLE * ROW_MULTIPLE))


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


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int, sig: int) -> None:
    """Have this process get `sig` when the process `parent` ends, however it ends (kill -9
    included: Linux's PR_SET_PDEATHSIG), or exit now if it has already ended. For the worker
    processes of `sweep` and `serve`: an orphan would go on serving, or writing into a folder
    nobody owns any more."""
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig)
        except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
            pass
    if os.getppid() != parent:  # the parent died before the death signal was armed
        os._exit(1)
