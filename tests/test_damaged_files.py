"""A compressed table that cannot be read to its end (truncated, a bad CRC, trailing garbage) is
one clear error naming the file, from the in-memory reader, the streamed one and predict alike."""
import gzip
import io
import zipfile

import pytest

from .cli_helpers import assert_clean_error, cli

# iris's columns, so that the iris model predicts from them too
ROWS = "sepal_length,sepal_width,petal_length,petal_width,species\n" + "".join(
    f"{i % 8}.1,{i % 5}.2,{i % 7}.3,{i % 3}.4,{('setosa', 'versicolor', 'virginica')[i % 3]}\n" for i in range(50_000))


def _zip(text: str) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.csv", text)
    return out.getvalue()


def _bad_crc(data: bytes) -> bytes:
    """The zip with one byte of its compressed data changed, far from the start."""
    data = bytearray(data)
    data[len(data) // 2] ^= 0xFF
    return bytes(data)


GZ = gzip.compress(ROWS.encode())
DAMAGED = {
    "truncated.csv.gz": (GZ[:len(GZ) * 3 // 4], "it ends before its compressed data does"),
    "garbage.csv.gz": (GZ + b"trailing garbage", "bytes after its compressed data are not gzip"),
    "truncated.zip": (_zip(ROWS)[:-40], "its table of contents is missing"),
    "bad-crc.zip": (_bad_crc(_zip(ROWS)), "cannot decompress the zip file"),
}


@pytest.fixture(params=sorted(DAMAGED))
def damaged(request, tmp_path):
    content, message = DAMAGED[request.param]
    path = tmp_path / request.param
    path.write_bytes(content)
    return path, message


@pytest.mark.parametrize("streaming", [False, True], ids=["in-memory", "streamed"])
def test_training_on_a_damaged_compressed_file_names_it(damaged, streaming, tmp_path):
    path, message = damaged
    config = tmp_path / "config.yaml"
    config.write_text(f"data:\n  path: {path}\n  target: species\n  streaming: {str(streaming).lower()}\n"
                      "training:\n  iterations: 1\n")
    result = cli("train", config, "--runs-dir", tmp_path / "runs", "--quiet", "--no-cache")
    assert_clean_error(result, message, str(path), "copy or download it again")
    assert "bug in nnctl" not in result.stderr


def test_predict_on_a_damaged_compressed_file_names_it(damaged, tmp_path, iris_run):
    path, message = damaged
    result = cli("predict", iris_run, path)
    assert_clean_error(result, message, str(path))
