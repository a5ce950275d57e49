"""Reading `.npz` files nnctl wrote (models, checkpoints) without ever unpickling: anything
that is not a whole, pickle-free archive is an NnctlError naming the file."""
from __future__ import annotations

import zipfile

import numpy as np

from .errors import NnctlError


def read_npz(path, what: str, broken: str, fix: str) -> dict:
    """Every array of the file at `path`; `what` names it in messages ("model file"), `broken`
    says what a damaged one is ("corrupt or not a .npz"), `fix` what to do about it."""
    where = str(path)
    if not zipfile.is_zipfile(path):  # np.load would take other bytes for a pickle
        raise NnctlError(f"{what} is {broken}", where, fix)
    try:
        with np.load(path, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise NnctlError(f"{what} holds pickled objects, which nnctl never loads", where)
        raise NnctlError(f"{what} is not a valid .npz: {exc}", where)
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as exc:
        raise NnctlError(f"{what} is {broken} ({type(exc).__name__})", where, fix)
