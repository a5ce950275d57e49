"""npzfile: every member's header is judged before any of its data is read."""
import io
import zipfile

import numpy as np
import pytest

from nnctl.errors import NnctlError
from nnctl.npzfile import COMPRESSION_CAP, npz_headers, read_npz

ARGS = ("test file", "damaged", "make it again")


@pytest.fixture
def npz(tmp_path):
    path = tmp_path / "a.npz"
    np.savez(path, meta=np.array('{"a": 1}'), W0=np.ones((3, 4), np.float32), b0=np.zeros(4))
    return path


@pytest.fixture
def no_data_reads(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("array data was read")
    monkeypatch.setattr(np.lib.format, "read_array", refuse)


def test_headers_give_shapes_and_dtypes_without_reading_data(npz, no_data_reads):
    headers = npz_headers(npz, *ARGS)
    assert headers["W0"].shape == (3, 4) and headers["W0"].dtype == np.float32 and headers["W0"].nbytes == 48
    assert headers["b0"].shape == (4,) and headers["b0"].dtype == np.float64
    assert headers["meta"].shape == () and headers["meta"].dtype.kind == "U"


def test_a_limit_refuses_before_any_data_is_read(npz, no_data_reads):
    seen = []

    def limit(name, header):
        seen.append(name)
        return f"`{name}` is too wide" if header.shape == (3, 4) else None

    with pytest.raises(NnctlError) as err:
        read_npz(npz, *ARGS, limit=limit)
    assert err.value.message == "test file is damaged: `W0` is too wide" and err.value.where == str(npz)
    assert "W0" in seen


def test_names_reads_only_those_members(npz):
    arrays = read_npz(npz, *ARGS, names=("b0", "missing"))
    assert list(arrays) == ["b0"] and arrays["b0"].tolist() == [0.0] * 4


def test_a_member_declaring_more_than_it_holds_is_refused(tmp_path, no_data_reads):
    path = tmp_path / "short.npz"
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False, "shape": (1000, 1000)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("W0.npy", header.getvalue() + b"\0" * 80)
    with pytest.raises(NnctlError, match=r"`W0` declares \(1000, 1000\) float64 \(7.6 MB\) but holds 80 B"):
        read_npz(path, *ARGS)


def test_members_declaring_far_more_than_the_file_are_refused(tmp_path, no_data_reads):
    path = tmp_path / "bomb.npz"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        buffer = io.BytesIO()
        np.lib.format.write_array(buffer, np.zeros(2 ** 21))  # 16 MB of zeros deflate ~1000-fold
        archive.writestr("W0.npy", buffer.getvalue())
    assert path.stat().st_size * COMPRESSION_CAP < 2 ** 24
    with pytest.raises(NnctlError, match=f"more than {COMPRESSION_CAP} times its"):
        read_npz(path, *ARGS)


@pytest.mark.parametrize("content, fragment", [
    ({"notes.txt": b"hello"}, "`notes.txt`, which is not an array"),
    ({"W0.npy": b"\x93NUMPY\x01\x00"}, "unreadable header for `W0`"),
])
def test_members_that_are_not_arrays_are_refused(tmp_path, content, fragment):
    path = tmp_path / "odd.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in content.items():
            archive.writestr(name, data)
    with pytest.raises(NnctlError, match=fragment.replace("(", r"\(")):
        read_npz(path, *ARGS)


def test_object_arrays_are_refused_from_their_header(tmp_path, no_data_reads):
    path = tmp_path / "pickle.npz"
    np.savez(path, meta=np.array([{"a": 1}], dtype=object))
    with pytest.raises(NnctlError, match="pickled objects"):
        read_npz(path, *ARGS)
