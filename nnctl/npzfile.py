"""Reading `.npz` files nnctl wrote (models, checkpoints) without ever unpickling: anything
that is not a whole, pickle-free archive is an NnctlError naming the file.

Every member's `.npy` header (shape, dtype) is read and judged before any data is: a header can
declare gigabytes in a file of a few kilobytes (a truncated member, or zeros deflated a
thousandfold), and NumPy would allocate the declared size before finding out. So a member must
hold at least the bytes it declares, all members together may declare at most COMPRESSION_CAP
times the file's size on disk, and the caller's `limit` sees each header first.
"""
from __future__ import annotations

import math
import os
import zipfile
from typing import Callable, NamedTuple

import numpy as np

from .errors import NnctlError

# what nnctl writes is stored uncompressed; a deflated member of float weights shrinks far less
# than this, while a member declared far beyond it is a decompression bomb
COMPRESSION_CAP = 64


class Header(NamedTuple):
    shape: tuple
    dtype: np.dtype
    fortran_order: bool

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


# limit(name, header) -> None when the member is acceptable, else what is wrong with it
Limit = Callable[[str, Header], "str | None"]


def npz_headers(path, what: str, broken: str, fix: str) -> dict[str, Header]:
    """{name: Header} of every member of the file at `path`, reading no array data; the
    file-level caps above are applied. `what`, `broken`, `fix` as for `read_npz`."""
    with _open(path, what, broken, fix) as archive:
        return _headers(archive, path, what, broken, fix)


def read_npz(path, what: str, broken: str, fix: str, limit: Limit | None = None,
             names=None) -> dict:
    """Every array of the file at `path` (or only `names`, those it has); `what` names it in
    messages ("model file"), `broken` says what a damaged one is ("corrupt or not a .npz"),
    `fix` what to do about it. `limit(name, header)` may refuse a member, by returning what is
    wrong with it, before any data is read."""
    where = str(path)
    with _open(path, what, broken, fix) as archive:
        headers = _headers(archive, path, what, broken, fix)
        wanted = [n for n in headers if names is None or n in names]
        for name in wanted:
            problem = limit(name, headers[name]) if limit is not None else None
            if problem:
                raise NnctlError(f"{what} is damaged: {problem}", where, fix)
        from .resources import require_memory

        require_memory(sum(headers[n].nbytes for n in wanted), f"{what}'s arrays", where, fix)
        try:
            arrays = {}
            for name in wanted:
                with archive.open(f"{name}.npy") as fh:
                    arrays[name] = np.lib.format.read_array(fh, allow_pickle=False)
            return arrays
        except ValueError as exc:
            raise NnctlError(f"{what} is not a valid .npz: {exc}", where)
        except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
            raise NnctlError(f"{what} is {broken} ({type(exc).__name__})", where, fix)


class _open:
    """The file as a ZipFile, or an NnctlError saying it is not one."""

    def __init__(self, path, what, broken, fix):
        self.args = path, what, broken, fix

    def __enter__(self) -> zipfile.ZipFile:
        path, what, broken, fix = self.args
        if not zipfile.is_zipfile(path):  # np.load would take other bytes for a pickle
            raise NnctlError(f"{what} is {broken}", str(path), fix)
        try:
            self.archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise NnctlError(f"{what} is {broken} ({type(exc).__name__})", str(path), fix)
        return self.archive

    def __exit__(self, *exc) -> None:
        self.archive.close()


def _headers(archive: zipfile.ZipFile, path, what, broken, fix) -> dict[str, Header]:
    where = str(path)
    headers, declared = {}, 0
    for info in archive.infolist():
        if not info.filename.endswith(".npy"):
            raise NnctlError(f"{what} holds `{info.filename}`, which is not an array", where, fix)
        name = info.filename[:-4]
        try:
            with archive.open(info) as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, fortran, dtype = read(fh)
                offset = fh.tell()
        except ValueError as exc:
            raise NnctlError(f"{what} has an unreadable header for `{name}`: {exc}", where, fix)
        except (zipfile.BadZipFile, OSError, EOFError, KeyError, NotImplementedError, RuntimeError) as exc:
            # RuntimeError: an encrypted member; NotImplementedError: a compression zipfile lacks
            raise NnctlError(f"{what} is {broken} ({type(exc).__name__} in `{name}`)", where, fix)
        if dtype.hasobject:
            raise NnctlError(f"{what} holds pickled objects, which nnctl never loads", where)
        header = Header(tuple(shape), dtype, fortran)
        if header.nbytes > info.file_size - offset:
            raise NnctlError(f"{what} is {broken}: `{name}` declares {header.shape} {dtype} "
                             f"({_size(header.nbytes)}) but holds {_size(max(info.file_size - offset, 0))}",
                             where, fix)
        headers[name] = header
        declared += header.nbytes
    on_disk = os.path.getsize(path)
    if declared > COMPRESSION_CAP * on_disk:
        largest = max(headers, key=lambda n: headers[n].nbytes)
        raise NnctlError(f"{what} is {broken}: its arrays declare {_size(declared)} (`{largest}` "
                         f"{_size(headers[largest].nbytes)}), more than {COMPRESSION_CAP} times its "
                         f"{_size(on_disk)} on disk", where, fix)
    return headers


def _size(n: int) -> str:
    from .resources import human_bytes

    return human_bytes(n)


# --- `meta`: the JSON object every nnctl .npz carries ------------------------------------------
def meta_array(meta: dict, text: bool = True) -> np.ndarray:
    """`meta` as an array to save: a 0-d unicode array (what model.npz's contract promises,
    `str(npz["meta"])` reads it), or with `text=False` UTF-8 bytes (a checkpoint's long history
    would take four bytes a character as unicode)."""
    from .jsonfmt import dumps

    encoded = dumps(meta)
    return np.array(encoded) if text else np.frombuffer(encoded.encode(), dtype=np.uint8)


def read_meta(arrays: dict, what: str, where: str, fmt: str, newest: int, oldest: int = 1,
              older_hint: str = "") -> dict:
    """The `meta` object of an nnctl .npz (either encoding `meta_array` writes), checked to be
    of format `fmt` and a `format_version` from `oldest` to `newest`; an NnctlError naming the
    file otherwise (`older_hint`: what to do with a version this nnctl no longer reads)."""
    import json

    array = arrays.get("meta")
    if array is None:
        raise NnctlError(f"{what} has no `meta` array", where)
    try:
        text = array.tobytes().decode() if array.dtype == np.uint8 else str(array.item())
        meta = json.loads(text)
    except (ValueError, TypeError, UnicodeDecodeError, RecursionError):
        raise NnctlError(f"{what}'s meta is not a JSON object", where)
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise NnctlError(f"not an nnctl {what} (format is {found!r})", where)
    version = meta.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version < oldest:
        raise NnctlError(f"this {what} was written by an older nnctl (format_version {version}), which this one "
                         "cannot read", where, older_hint or "use the nnctl that wrote it")
    if not isinstance(version, int) or isinstance(version, bool) or version > newest:
        raise NnctlError(f"{what} format_version {version!r} is newer than this nnctl reads ({newest})", where,
                         "upgrade nnctl: pip install -U nnctl")
    return meta


def nonfinite(arrays: dict) -> str | None:
    """'`name` holds NaN values' (or inf, or NaN and inf) for the first float array that holds
    any, or None: nnctl never saves a model or checkpoint with them, so such a file is damaged."""
    for name, values in arrays.items():
        if values.dtype.kind == "f" and not np.isfinite(values).all():
            kinds = " and ".join(k for k, test in (("NaN", np.isnan), ("inf", np.isinf)) if test(values).any())
            return f"`{name}` holds {kinds} values"
    return None
