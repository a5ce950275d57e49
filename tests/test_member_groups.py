"""Members in groups of threads (training/groups.py): a step split into groups of members, each
in a thread of its own, gives the same bits as the step in one thread: weights, optimizer
state, histories, run folders; the choice between the two ways may change from step to step."""
import json
import threading
from pathlib import Path

import numpy as np
import pytest

from nnctl.config import load_config
from nnctl.training import groups

from .conftest import CONFIGS
from .test_resume import iris_config


@pytest.fixture
def grouped(monkeypatch):
    """Set the way steps run: `grouped(True)` groups every step however small, alternating with
    whole steps in `pattern` (the choice by the clock, made predictable); `grouped(False)`: one
    thread. Returns the MemberGroups the runs made."""
    made = []
    enter, step = groups.MemberGroups.__enter__, groups.MemberGroups.grouped_step

    def set_way(on: bool, pattern=(True, True, False)):
        monkeypatch.setattr(groups, "MIN_WORK", 0 if on else float("inf"))
        picks = iter(pattern * 100_000)
        monkeypatch.setattr(groups._Choice, "pick", lambda self: next(picks))

        def entered(self):
            made.append(self)
            self.grouped_steps = 0
            return enter(self)

        def counted(self, *args):
            self.grouped_steps += 1
            return step(self, *args)
        monkeypatch.setattr(groups.MemberGroups, "__enter__", entered)
        monkeypatch.setattr(groups.MemberGroups, "grouped_step", counted)
        return made
    return set_way


def _train(cfg):
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network
    from nnctl.training.loop import train

    dataset = load_dataset(cfg)
    network = build_network(cfg, dataset)
    result = train(network, dataset, cfg.training, seed=cfg.seed)
    return network, result


@pytest.mark.parametrize("sets", [
    # per-member plateaus and early stopping (rates per parameter, 0 once stopped), Adam,
    # dropout, clipping; three members in groups of 2 and 1
    ["model.ensemble=3", "model.dropout=0.2", "training.grad_clip=0.5", "training.l2=0.001",
     "training.schedule={name: plateau, factor: 0.5, patience: 1}"],
    # SGD, a residual block
    ["model.ensemble=2", "training.optimizer=sgd", "model.layers=[8, 8]", "model.residual=true",
     "training.early_stopping=null"],
])
def test_an_ensemble_in_groups_of_threads_trains_the_same_bits(tmp_path, grouped, sets):
    config = iris_config(tmp_path, "adam")
    cfg = load_config(config, ["training.iterations=12", "training.batch_size=32"] + sets)
    grouped(False)
    whole, whole_result = _train(cfg)
    made = grouped(True)
    split, split_result = _train(cfg)
    assert len(made) == 1 and made[0].helper is None and made[0].grouped_steps > 5  # used, then closed
    assert [g[:2] for g in made[0].groups] in ([(0, 2), (2, 3)], [(0, 1), (1, 2)])
    assert split.flat_params.tobytes() == whole.flat_params.tobytes()
    assert split_result.history == [dict(row, seconds=split_result.history[i]["seconds"])
                                    for i, row in enumerate(whole_result.history)]
    assert split_result.metrics["train"] == whole_result.metrics["train"]


def test_seeds_in_groups_of_threads_write_the_same_run_folders(tmp_path, grouped):
    """A population (`train --seeds`) whose members stop on their own (the pass then trains the
    active ones, a smaller population cut into groups again) with their own l2."""
    from nnctl.sweep.seeds import train_seeds

    sets = ["training.iterations=25", "training.early_stopping={patience: 3}", "training.optimizer=adamw",
            "training.l2=0.001", "training.batch_size=16", "model.dropout=0.1"]
    folders = {}
    for on in (False, True):
        made = grouped(on)
        folders[on] = train_seeds(CONFIGS / "iris.yaml", 3, sets, runs_dir=tmp_path / str(on))["rows"]
    assert made and made[-1].grouped_steps > 5
    epochs = set()
    for a, b in zip(folders[True], folders[False]):
        a, b = Path(a["run"]), Path(b["run"])
        assert (a / "history.csv").read_text().splitlines()[0] == (b / "history.csv").read_text().splitlines()[0]
        drop = lambda text: [line.rsplit(",", 1)[0] for line in text.splitlines()]  # noqa: E731 (seconds last)
        assert drop((a / "history.csv").read_text()) == drop((b / "history.csv").read_text())
        with np.load(a / "model.npz") as x, np.load(b / "model.npz") as y:
            for key in y.files:
                if key != "meta":
                    np.testing.assert_array_equal(x[key], y[key], err_msg=key)
        epochs.add(json.loads((a / "metrics.json").read_text())["epochs"])
    assert len(epochs) > 1  # members stopped at different epochs: the groups were cut again


def test_a_late_helper_leaves_every_part_to_the_loops_thread():
    """The loop's thread takes the parts from the front and never waits for the helper to
    start; a part the helper runs is waited for; an error in a part comes back to the caller."""
    ran = []
    parts = [groups._Part(lambda i=i: ran.append(i) or i) for i in range(3)]
    assert [p.take() for p in parts] == [True, True, True] and ran == [0, 1, 2]
    assert [p.take() for p in parts] == [False, False, False]  # a late helper finds them taken

    helper = groups._Helper(np.geterr())
    try:
        started, finish = threading.Event(), threading.Event()
        slow = groups._Part(lambda: started.set() or finish.wait(5) and "helper's")
        first = groups._Part(lambda: "mine")
        helper.offer([first, slow])  # the helper takes from the back
        assert started.wait(5)
        assert first.take() and not slow.take()
        finish.set()
        slow.done.acquire()
        assert (first.result, slow.result) == ("mine", "helper's") and helper.taken == 1
        broken = groups._Part(lambda: 1 / 0)
        broken.take()
        assert isinstance(broken.error, ZeroDivisionError)
    finally:
        helper.close()
    assert not helper.thread.is_alive()


def test_blas_threads_are_put_back_after_training(tmp_path, grouped):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def blas():
        return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]

    before = blas()
    made = grouped(True)
    _train(load_config(iris_config(tmp_path, "sgd"), ["training.iterations=2", "model.ensemble=2"]))
    assert made and blas() == before


def test_the_choice_follows_the_faster_way_and_tries_the_other():
    choice = groups._Choice()
    assert choice.pick() is True
    choice.record(True, 1.0)
    assert choice.pick() is False
    choice.record(False, 2.0)
    picks = [choice.pick() for _ in range(2 * choice.EXPLORE)]
    assert picks.count(False) == 2 and picks.count(True) == 2 * choice.EXPLORE - 2
    for _ in range(20):
        choice.record(True, 5.0)  # the groups got slow (another job took the second core)
    assert [choice.pick() for _ in range(3)] == [False, False, False]
    for _ in range(20):
        choice.record(True, 1.95)  # about as fast: one thread, the safe side
    assert [choice.pick() for _ in range(3)] == [False, False, False]


def test_member_views_share_the_rows_they_train(tmp_path):
    from nnctl.data import load_dataset
    from nnctl.nn.optimizers import Adam
    from nnctl.training.build import build_network

    cfg = load_config(iris_config(tmp_path, "adam"), ["model.ensemble=4", "model.dropout=0.2"])
    network = build_network(cfg, load_dataset(cfg))
    view = network.members_view(1, 3)
    assert view.members == 2 and np.shares_memory(view.flat_params, network.flat_params)
    assert view.layers[0].W.base is not None and view.layers[0].W[0].tobytes() == network.layers[0].W[1].tobytes()
    dropout = next(layer for layer in view.layers if layer.rng is not None)
    assert dropout.rng.generators == next(layer for layer in network.layers if layer.rng).rng.generators[1:3]
    # an optimizer's view steps its rows as the whole optimizer steps them (per-member l2 too)
    K = network.members
    params = network.flat_params.reshape(K, -1)
    grads = np.random.default_rng(0).normal(size=params.shape).astype(params.dtype)
    copy = params.copy()
    whole = Adam([copy], weight_decay=np.array([[0.1], [0.0], [0.01], [0.2]]))
    part = Adam([params], weight_decay=np.array([[0.1], [0.0], [0.01], [0.2]])).members_view(1, 3, K)
    whole.step([grads.copy()], 0.01)
    part.step([grads[1:3].copy()], 0.01)
    assert params[1:3].tobytes() == copy[1:3].tobytes()


def test_layers_with_state_keep_one_thread(tmp_path):
    from nnctl.data import load_dataset
    from nnctl.training.build import build_network

    cfg = load_config(iris_config(tmp_path, "adam"), ["model.ensemble=2", "model.normalization=batch"])
    network = build_network(cfg, load_dataset(cfg))
    with pytest.raises(ValueError, match="no state arrays"):
        network.members_view(0, 1)


def test_members_own_rows_are_scored_in_pieces_with_the_bits_of_one_pass(tmp_path):
    """A population's validation rows, (K, rows, inputs), pass CHUNK / K rows at a time (K
    members' arrays of a whole chunk leave the cache); each chunk's outputs and losses are
    those of one pass over it."""
    from nnctl.data import load_dataset
    from nnctl.nn.network import Network
    from nnctl.training.build import build_network

    cfgs = [load_config(iris_config(tmp_path, "adam"), [f"seed={s}", "model.layers=[8]"]) for s in (1, 2, 3, 4)]
    networks = [build_network(cfg, load_dataset(cfg)) for cfg in cfgs]
    network = Network.stack(networks)
    X = np.random.default_rng(0).normal(size=(4, 150, 4)).astype(network.dtype)
    t = np.eye(3, dtype=network.dtype)[np.random.default_rng(1).integers(0, 3, size=(4, 150))]
    ws, whole = network.workspace(), network.workspace()
    starts = []
    for start, out in network.forward_chunks(X, 64, ws):  # chunks of 64 rows in pieces of 16
        n = out.shape[1]
        one = network.forward(np.ascontiguousarray(X[:, start:start + n]), ws=whole)
        assert out.tobytes() == one.tobytes()
        assert network.member_losses(t[:, start:start + n], ws=ws).tobytes() == \
            network.member_losses(t[:, start:start + n], ws=whole).tobytes()
        starts.append(start)
    assert starts == [0, 64, 128]


def test_an_input_the_members_share_keeps_one_thread(tmp_path, grouped):
    """Without a shuffle the members share each batch, and a dense layer's product with it takes
    one way or another by the number of members (which can differ in the last bit): such steps
    run whole, so the choice of way cannot change a run's bits."""
    made = grouped(True)
    cfg = load_config(iris_config(tmp_path, "sgd"), ["training.iterations=3", "model.ensemble=2",
                                                      "training.shuffle=false"])
    _train(cfg)
    assert made and made[0].grouped_steps == 0
