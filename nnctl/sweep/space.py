"""A sweep's parameters as an Optuna search space, and its sampler and pruner.

Listed `values` become categorical choices; since Optuna's choices must be plain scalars, each
value is written as YAML flow text (`[32, 16]`), which is also how trials.csv shows it, and
read back when a trial's config is built."""
from __future__ import annotations

import numpy as np
import yaml

from ..errors import NnctlError

INSTALL_HINT = "install the sweep extra: pip install 'nnctl[sweep]' (or pip install optuna)"


def optuna_module():
    try:
        import optuna
    except ImportError:
        raise NnctlError("nnctl sweep needs Optuna, which is not installed", "nnctl sweep", INSTALL_HINT)
    return optuna


def flow(value) -> str:
    """A value as YAML flow text: 0.01, relu, [32, 16]."""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def distributions(parameters: dict) -> dict:
    optuna = optuna_module()
    d = optuna.distributions
    out = {}
    for name, p in parameters.items():
        if "values" in p:
            out[name] = d.CategoricalDistribution([flow(v) for v in p["values"]])
        elif p["distribution"] == "int_uniform":
            out[name] = d.IntDistribution(int(p["min"]), int(p["max"]))
        else:
            out[name] = d.FloatDistribution(p["min"], p["max"], log=p["distribution"] == "log_uniform")
    return out


def decode(params: dict, parameters: dict) -> dict:
    """Optuna's params -> config values (categorical choices read back from YAML)."""
    return {k: yaml.safe_load(v) if "values" in parameters[k] else v for k, v in params.items()}


GRID_LIMIT = 10_000  # combinations; a larger grid is a job for random or tpe with `trials:`


def grid_size(parameters: dict) -> int:
    size = 1
    for p in parameters.values():
        size *= len(p["values"])
    return size


def grid(sweep: dict) -> list[dict]:
    """Every combination of the listed values, as Optuna params, in an order shuffled by the
    sweep's seed. (A grid sweep enqueues these: Optuna's GridSampler stops the study itself,
    which only works inside `optimize`, not with the ask-and-tell this driver uses.)"""
    import itertools
    import random

    names = list(sweep["parameters"])
    combos = [dict(zip(names, c)) for c in itertools.product(*([flow(v) for v in sweep["parameters"][n]["values"]]
                                                               for n in names))]
    random.Random(sweep["seed"]).shuffle(combos)
    return combos


def trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def sampler(sweep: dict):
    """The sweep's sampler, seeded afresh for each trial from (seed, trial number): a resumed
    sweep (after Ctrl-C or kill -9) goes on with the proposals the uninterrupted one would have
    made, where one sampler seeded once would start its sequence over and repeat the first trials."""
    optuna = optuna_module()
    method, seed = sweep["method"], sweep["seed"]
    if method in ("random", "grid"):  # a grid's trials are enqueued (see `grid`)
        return _per_trial(lambda number: optuna.samplers.RandomSampler(seed=trial_seed(seed, number)))
    return _per_trial(lambda number: optuna.samplers.TPESampler(seed=trial_seed(seed, number)))


def _per_trial(make):
    """An Optuna sampler that hands each trial to its own sampler, `make(trial.number)`."""
    from optuna.samplers import BaseSampler

    class PerTrial(BaseSampler):
        def __init__(self):
            self.samplers: dict = {}

        def of(self, trial):
            if trial.number not in self.samplers:
                self.samplers = {n: s for n, s in self.samplers.items() if n > trial.number - 64}
                self.samplers[trial.number] = make(trial.number)
            return self.samplers[trial.number]

        def infer_relative_search_space(self, study, trial):
            return self.of(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.of(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.of(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial):
            self.of(trial).before_trial(study, trial)

        def after_trial(self, study, trial, state, values):
            self.of(trial).after_trial(study, trial, state, values)

        def reseed_rng(self):  # the seeds are the trial numbers': nothing to reseed
            pass

    return PerTrial()


def pruner(sweep: dict, iterations: int):
    optuna = optuna_module()
    stop = sweep["early_terminate"]
    if stop is None:
        return optuna.pruners.NopPruner()
    if stop["type"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=stop["min_epochs"])
    return optuna.pruners.HyperbandPruner(min_resource=stop["min_epochs"], max_resource=max(iterations, stop["min_epochs"] + 1))


def journal_writes_whole():
    """Hold Ctrl-C and SIGTERM while Optuna writes the study's journal: a KeyboardInterrupt raised
    while its file lock is being released once left the lock half-renamed and failed the sweep
    with "No such file or directory" (exit 2) instead of stopping it (exit 130). A signal that
    comes meanwhile is acted on as the write ends (training.signals.signals_held)."""
    from ..training.signals import signals_held

    return signals_held()
