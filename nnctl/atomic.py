"""Files and folders that appear whole or not at all: written under a temporary name beside
their final place, then renamed into place. Permissions follow the user's umask like any other
tool's output (mkstemp and mkdtemp alone would make them private).

Only regular files are replaced. A symlink is written through (its target is replaced, so the
link stays a link), and a FIFO, a device or anything under /dev and /proc (`/dev/stdout`) is
written directly, as a shell's `>` would: renaming over it would turn it into a plain file."""
from __future__ import annotations

import errno
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import NnctlError


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path, folder: bool = False) -> None:
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


@contextmanager
def naming_errors(path):
    """An OSError raised while writing `path` names it: a failed write() (a full disk) carries
    no file name of its own, and "No space left on device" alone does not say where."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno in DISK_FULL:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def written_directly(path: Path) -> bool:
    """True for targets that must never be renamed over: FIFOs, devices, sockets, and kernel
    files under /dev and /proc (`/dev/stdout` may resolve to whatever file the shell opened)."""
    absolute = os.path.abspath(path)
    if absolute.startswith(("/dev/", "/proc/")):
        return True
    try:
        mode = os.stat(path).st_mode  # follows symlinks: what the link points at counts
    except (FileNotFoundError, NotADirectoryError):
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


@contextmanager
def atomic_file(path, mode: str = "w", durable: bool = False, **open_args):
    """Yields an open file to write; on success it replaces `path`, on any error it is removed
    and `path` is untouched. `durable`: fsync before the rename, so that after a crash (not
    just a killed process) the file on disk is the old one or the whole new one. Special
    files are written directly and symlinks through (see the module's docstring)."""
    path = Path(path)
    with naming_errors(path):
        if written_directly(path):
            with open(path, mode, **open_args) as fh:
                yield fh
            return
        if path.is_symlink():
            path = Path(os.path.realpath(path))
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent if str(path.parent) else ".")
        try:
            with os.fdopen(fd, mode, **open_args) as fh:
                yield fh
                if durable:
                    fh.flush()
                    os.fsync(fh.fileno())
            follow_umask(tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def write_text_atomic(path, text: str) -> None:
    with atomic_file(path) as fh:
        fh.write(text)


def refuse_same_file(output, inputs, flag: str = "--output") -> None:
    """An NnctlError when `output` is one of `inputs` (the same file by inode, through links, or
    by resolved path): writing it would destroy the data being read."""
    if output is None:
        return
    for given in inputs:
        if given is None or str(given) == "-":
            continue
        try:
            same = os.path.samefile(output, given)
        except OSError:  # one of them does not exist yet: compare where they would be
            same = os.path.realpath(output) == os.path.realpath(given)
        if same:
            raise NnctlError(f"{flag} is the input file: writing it would overwrite the data being read",
                             str(output), f"give {flag} another file name")
