"""Files and folders that appear whole or not at all: written under a temporary name beside
their final place, then renamed into place. Permissions follow the user's umask like any other
tool's output (mkstemp and mkdtemp alone would make them private)."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def follow_umask(path, folder: bool = False) -> None:
    os.chmod(path, (0o777 if folder else 0o666) & ~umask())


@contextmanager
def atomic_file(path, mode: str = "w", durable: bool = False, **open_args):
    """Yields an open file to write; on success it replaces `path`, on any error it is removed
    and `path` is untouched. `durable`: fsync before the rename, so that after a crash (not
    just a killed process) the file on disk is the old one or the whole new one."""
    path = Path(path)
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
