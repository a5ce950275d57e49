"""K runs of one architecture trained as the members of one pass (`train --seeds N`), each
saved as the ordinary run folder its config would leave alone: model.npz, config.yaml with its
own seed, history.csv, metrics.json, validation.csv, calibration and conformal scores on its
own validation part, and its checkpoint.

    why = population_problem(cfgs, datasets)        # None: they can train as one
    results = train_members(cfgs, datasets, [("runs/iris-seeds8", "seed_42"), ...])
"""
from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

from ..config import dump_config
from ..config.typed import Config
from ..nn.network import Network
from ..runs.folder import RunFolder, atomic_run_folder
from ..training import TrainResult
from ..training.build import build_network, check_batches
from ..training.calibration import check_calibration
from ..training.checkpoint import data_digest, save_checkpoint
from ..training.conformal import check_conformal
from ..training.population import same_shapes, train_population
from .train import write_results


def _networks(cfgs: list[Config], datasets: list) -> list[Network]:
    networks = []
    for cfg, dataset in zip(cfgs, datasets):
        network = build_network(cfg, dataset)
        check_batches(cfg, network, dataset)
        check_calibration(cfg, dataset)
        check_conformal(cfg.training.conformal, dataset.task, network.members,
                        targets=getattr(dataset, "targets", None))
        networks.append(network)
    return networks


def population_problem(cfgs: list[Config], datasets: list) -> str | None:
    """Why these runs cannot train as the members of one pass, or None when they can: their
    configs may differ only in what a member holds on its own (`MEMBER_KEYS`: the seed, the
    learning rate, l2) and their data must have one shape (each member draws its dropout masks
    from its own generator, stops early and lowers a plateau schedule's rate on its own
    validation scores, as its run alone does)."""
    first = cfgs[0]
    if first.model.ensemble > 1:
        return "each run is an ensemble already (model.ensemble > 1)"
    common = [_without_member_keys(cfg) for cfg in cfgs]
    if any(c != common[0] for c in common[1:]):
        return "their configs differ in more than " + ", ".join(MEMBER_KEYS)
    if getattr(datasets[0], "targets", None) is not None:
        return "several targets train one run at a time (each run's heads weigh their losses by its own start)"
    why = same_shapes(datasets)
    if why is not None:
        return why
    networks = _networks(cfgs, datasets)
    shapes = {tuple((name, a.shape) for name, a in n.arrays().items()) for n in networks}
    if len(shapes) > 1:  # an embedding table sized by the categories its split saw, say
        return "their networks differ in shape"
    return None


# what each member of a population may hold on its own: configs that differ only here train as one
MEMBER_KEYS = ("seed", "training.learning_rate", "training.l2")


def _without_member_keys(cfg: Config) -> dict:
    plain = cfg.to_dict()
    plain["seed"] = 0
    plain["training"] = {**plain["training"], "learning_rate": 0, "l2": 0}
    return plain


def train_members(cfgs: list[Config], datasets: list, places: list[tuple], name: str = "trial",
                  watched: dict | None = None, labels: list[str] | None = None,
                  folds: list | None = None) -> list[TrainResult]:
    """Train `cfgs` (which `population_problem` accepts) on `datasets` as one population, and
    save run k as `<places[k][0]>/<places[k][1]>` (runs_dir, folder); their TrainResults (`run`:
    the folder). Every run folder is written at once when all are trained; an error or an
    interrupt leaves none. `labels` name the runs in messages ("fold 2"; default "seed <seed>");
    `folds`: each run's (i, K) when it is a cv fold, recorded in its metrics.json as `train_config`'s."""
    networks = _networks(cfgs, datasets)
    population = Network.stack(networks)
    with one_blas_thread():
        return _train_and_save(cfgs, datasets, population, places, name, watched, labels, folds or [None] * len(cfgs))


def one_blas_thread():
    """BLAS held at one thread while the population trains (with threadpoolctl, when installed;
    else as it is), as each separate run's worker process is: a pass's products are many small
    ones, and BLAS threads that wait for a busy core's turn cost more than they share."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        from contextlib import nullcontext

        return nullcontext()
    return threadpool_limits(1, user_api="blas")


def _train_and_save(cfgs, datasets, population, places, name, watched, labels, folds) -> list[TrainResult]:
    started = time.time()
    created = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started))
    with ExitStack() as stack:
        runs = [stack.enter_context(atomic_run_folder(runs_dir, name, folder, started)) for runs_dir, folder in places]
        for run, cfg in zip(runs, cfgs):
            RunFolder(run["tmp"]).write_config(dump_config(cfg))  # first, as a run alone does
        members = train_population(population, datasets, cfgs[0].training, [cfg.seed for cfg in cfgs], watched,
                                   labels=labels, rates=[cfg.training for cfg in cfgs])
        for run, cfg, dataset, member, fold in zip(runs, cfgs, datasets, members, folds):
            files = RunFolder(run["tmp"])
            if cfg.training.checkpoint_every is not None:
                arrays, meta = member.checkpoint
                save_checkpoint(files.file(files.CHECKPOINT), arrays,
                                {"config": cfg, "name": name, "data_digest": data_digest(dataset), "created": created,
                                 "paths_as_written": {}, "resumed_from": None, **meta,
                                 "status": member.result.status})
            extra = {"created": created} if fold is None else \
                {"created": created, "fold": {"index": fold[0], "folds": fold[1]}}
            write_results(files, cfg, member.network, dataset, member.result, extra)
    results = []
    for run, member in zip(runs, members):
        member.result.run = run["final"]
        results.append(member.result)
    return results
