"""The next trial of a sweep, never one whose parameters were tried before: a trial's config and
seed fix its result, so a repeat would only cost its time.

- grid: the next combination, in the seed's shuffled order, that no trial has run, enqueued
  just before it is asked for (enqueueing a whole large grid up front took minutes);
- random and tpe: first the parameters of trials an interrupted or killed run left unfinished,
  then the sampler's proposals, a repeat being set aside (failed, marked `duplicate`) and asked
  again. When ATTEMPTS proposals in a row are repeats, the space is taken as used up."""
from __future__ import annotations

from .space import grid

DUPLICATE = "duplicate"  # user attr of a proposal set aside as a repeat: not a trial of the sweep


def key(params: dict) -> tuple:
    return tuple(sorted(params.items()))


class Proposer:
    ATTEMPTS = 100

    def __init__(self, study, sweep: dict, dists: dict, tried=(), unfinished=()):
        """`tried`: Optuna params of the trials that count (finished or running); `unfinished`:
        those of trials to run again."""
        self.study, self.dists = study, dists
        self.tried = {key(p) for p in tried}
        self.order = grid(sweep) if sweep["method"] == "grid" else None
        self.cursor = 0
        self.retry = [] if self.order else list(unfinished)
        self.used_up = False

    def next(self):
        """A new Optuna trial to run, or None when every combination (or proposal) is tried."""
        from .space import journal_writes_whole, optuna_module

        fail = optuna_module().trial.TrialState.FAIL
        for _ in range(self.ATTEMPTS):
            fixed = self._fixed()
            if fixed is None and self.order is not None:
                break
            with journal_writes_whole():
                if fixed is not None:
                    self.study.enqueue_trial(fixed)
                trial = self.study.ask(self.dists)
            if key(trial.params) not in self.tried:
                self.tried.add(key(trial.params))
                return trial
            with journal_writes_whole():
                trial.set_user_attr(DUPLICATE, True)
                self.study.tell(trial, state=fail)
        self.used_up = True
        return None

    def _fixed(self) -> dict | None:
        if self.order is not None:
            while self.cursor < len(self.order) and key(self.order[self.cursor]) in self.tried:
                self.cursor += 1
            return self.order[self.cursor] if self.cursor < len(self.order) else None
        while self.retry:
            params = self.retry.pop(0)
            if key(params) not in self.tried:
                return params
        return None
