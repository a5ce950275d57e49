"""rowwise.add_bias: members' bias rows added through a tile give the broadcast's bits."""
import numpy as np
import pytest

from nnctl.nn.rowwise import TILE_ROWS, add_bias, tile_rows


@pytest.mark.parametrize("rows, units", [(120, 16), (120, 3), (97, 5), (64, 128), (1, 4), (30, 1)])
def test_add_bias_is_the_broadcast_add_bit_for_bit(rows, units):
    rng = np.random.default_rng(rows)
    out = rng.normal(size=(3, rows, units)).astype(np.float32)
    b = rng.normal(size=(3, units)).astype(np.float32)
    want = out + b[:, None, :]
    tile = np.full((3, TILE_ROWS * units), np.nan, dtype=np.float32)
    assert add_bias(out, b, tile) is out
    assert out.tobytes() == want.tobytes()


def test_tile_rows_divides_the_batch_with_the_fewest_loops():
    assert tile_rows(120) in (10, 12) and tile_rows(97) == 1 and tile_rows(64) == 8 and tile_rows(1) == 1
    assert all(rows % tile_rows(rows) == 0 and tile_rows(rows) <= TILE_ROWS for rows in range(1, 300))


def test_add_bias_keeps_its_views_for_the_same_output_and_adds_into_a_strided_one():
    class Buf:
        pass

    rng = np.random.default_rng(0)
    out = rng.normal(size=(2, 12, 4)).astype(np.float32)
    tile = np.empty((2, TILE_ROWS * 4), dtype=np.float32)
    buf = Buf()
    for _ in range(2):  # the second call reuses the first one's views, with the bias of now
        b = rng.normal(size=(2, 4)).astype(np.float32)
        want = out + b[:, None, :]
        add_bias(out, b, tile, buf)
        assert out.tobytes() == want.tobytes() and buf.bias_views[0] is out
    strided = np.zeros((2, 24, 4), dtype=np.float32)[:, ::2]  # no reshape of it is a view
    add_bias(strided, b, tile)
    np.testing.assert_array_equal(strided, np.broadcast_to(b[:, None, :], strided.shape))
