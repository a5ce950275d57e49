"""Runs of one architecture (`train --seeds N`'s seeds, `cv`'s folds) trained as the members of
one pass in this process, each into the run folder its job would leave alone, with results as
`cv.run_all` gives a job's; and how many of a sweep's trials one job may train as members
(`members_per_job`; the job itself: `jobs.run_members`).

    datasets, note = members_or_why(cfgs, load, ray_address, "seeds")
    results = train_jobs_as_members(cfgs, datasets, jobs, callback, "seeds", "seeds")
"""
from __future__ import annotations

import socket
import time
from pathlib import Path

from ..config.typed import Config


def members_or_why(cfgs: list[Config], load, ray_address: str | None, noun: str, cache: bool = True):
    """(the runs' datasets, None) when `cfgs` can train as the members of one pass, else (None,
    why not, as the note the user reads). `load()` gives the datasets, one per config; it is
    called only when nothing else has ruled the population out."""
    from ..commands.population import population_problem
    from ..data import load_dataset

    if ray_address:
        return None, f"the {noun} run as separate Ray tasks (--ray-address)"
    if getattr(load_dataset(cfgs[0], cache=cache), "streamed", False):  # before reading N parts of it
        return None, f"the {noun} train one at a time on streamed data"
    datasets = load()
    why = population_problem(cfgs, datasets)
    return (None, f"the {noun} train as separate runs: {why}") if why else (datasets, None)


def train_jobs_as_members(cfgs: list[Config], datasets: list, jobs: list[dict], callback, noun: str,
                          what: str) -> list[dict]:
    """The jobs' runs trained as one population into their folders (`runs_dir`/`folder` of each
    job): a result per job as `run_all` gives them (`value`: the job's metric; `seconds`: the
    run's share of the population's). An interrupt is `Stopped`, and no run folder is left."""
    from ..commands.population import train_members
    from .cv import Stopped
    from .jobs import metric_value

    start = time.perf_counter()
    metric = jobs[0]["metric"]["name"]
    try:
        trained = train_members(cfgs, datasets, [(job["runs_dir"], job["folder"]) for job in jobs],
                                watched={metric: "metric.name"}, labels=[job["label"] for job in jobs],
                                folds=[job.get("fold") for job in jobs])
    except KeyboardInterrupt:
        raise Stopped(f"interrupted after 0 of {len(jobs)} {noun}; the {what} folder was removed "
                      f"(its {noun} only count together)")
    seconds = (time.perf_counter() - start) / len(jobs)  # each run's share of the pass
    results = [{"state": "complete", "value": metric_value(result.metrics, metric), "epochs": result.epochs,
                "seconds": seconds, "node": socket.gethostname(), "run": str(Path(result.run)), "error": None}
               for result in trained]
    try:
        for job, out in zip(jobs, results):
            if callback:
                callback(job["key"], out)
    except KeyboardInterrupt:  # every run is in its folder: nothing was left to stop (as run_all)
        pass
    return results


MEMBERS_PER_JOB = 8  # the most trials one job trains as the members of one pass


def members_per_job(sweep: dict, ray_address: str | None) -> tuple[int, str | None]:
    """(how many trials a job may train as the members of one pass, why only one, or None): the
    trials may be members when every swept key is one a member holds on its own
    (`MEMBER_KEYS`: seed, learning rate, l2; or has one value) and the base config's runs can be
    (`population_problem`: not ensembles, not several targets, ...)."""
    from ..commands.population import MEMBER_KEYS, population_problem
    from ..data import load_dataset
    from ..errors import NnctlError
    from .spec import trial_config

    other = [key for key, options in sweep["parameters"].items()
             if key not in MEMBER_KEYS and len(options.get("values", (0, 1))) != 1]  # one value: the same in all
    if other:
        return 1, None  # the common case of a sweep of architectures: nothing to say
    why = None
    if ray_address:
        why = "each trial runs as its own Ray task (--ray)"
    elif sweep["early_terminate"]:
        why = "early_terminate prunes each trial on its own"
    elif sweep["folds"]:
        why = "each trial's folds train within its own job"
    else:  # the base config with the parameters every trial has, as a trial's runs are
        try:
            cfg = trial_config(sweep, {key: options["values"][0] for key, options in sweep["parameters"].items()
                                       if len(options.get("values", ())) == 1})
        except NnctlError:  # every trial fails alike, one per job, each saying why
            return 1, None
        data = load_dataset(cfg)
        why = "the data is streamed from disk" if getattr(data, "streamed", False) else \
            population_problem([cfg, cfg], [data, data])
    return (1, f"the trials train one per job: {why}") if why else (MEMBERS_PER_JOB, None)


def group_size(members: int, left: int, free: int) -> int:
    """Trials for the next job: the trials left shared out over the free workers, at most `members`."""
    return max(1, min(members, -(-left // max(free, 1))))
