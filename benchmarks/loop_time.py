"""Seconds of nnctl's training loop on a config, printed on the last line: what bench.py's
`--baseline` peer runs with PYTHONPATH pointing at another revision's source tree.

    python benchmarks/loop_time.py CONFIG EPOCHS [KEY=VALUE ...]

It imports the training loop from today's layout, or from the flat layout of revisions before
nnctl was split into parts, so one script times both sides of a refactor.
"""
import os
import sys
import time


def main(config: str, epochs: int, overrides=()) -> float:
    import nnctl
    from nnctl.config import load_config
    from nnctl.data import load_dataset

    # decided by the files, not by trying imports: an editable install of another tree would
    # answer an import that this tree cannot
    if os.path.isdir(os.path.join(os.path.dirname(nnctl.__file__), "training")):
        from nnctl.training import train
        from nnctl.training.build import build_network
        from nnctl.ui.progress import PlainLines
    else:  # the flat layout: nnctl/api.py, trainer.py, report.py
        from nnctl.api import build_network
        from nnctl.report import PlainLines
        from nnctl.trainer import train

    cfg = load_config(config, [f"training.iterations={epochs}", *overrides])
    dataset = load_dataset(cfg)
    network = build_network(cfg, dataset)
    with open(os.devnull, "w") as devnull:
        start = time.perf_counter()
        # a typed config (cfg.training) since layers became objects; a dict in older revisions
        training, seed = (cfg.training, cfg.seed) if hasattr(cfg, "training") else (cfg["training"], cfg["seed"])
        train(network, dataset, training, seed=seed, callback=PlainLines(devnull))
        return time.perf_counter() - start


if __name__ == "__main__":
    print(main(sys.argv[1], int(sys.argv[2]), sys.argv[3:]))
