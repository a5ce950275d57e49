"""The config's update rule: its optimizer and learning-rate schedule, built from the resolved
`training` section with plain arguments (`nn/` itself reads no config)."""
from __future__ import annotations

from functools import partial

from ..config.typed import TrainingConfig
from ..nn.optimizers import OPTIMIZERS, Optimizer
from ..nn.schedules import SCHEDULES, Plateau, warmed_up

# optimizer name -> {argument: the `training` key it comes from}
HYPERPARAMETERS = {
    "sgd": {},
    "momentum": {"momentum": "momentum"},
    "nesterov": {"momentum": "momentum"},
    "adam": {"betas": ("beta1", "beta2"), "eps": "eps"},
    "adamw": {"betas": ("beta1", "beta2"), "eps": "eps"},
    "rmsprop": {"alpha": "alpha", "eps": "eps"},
}


def build_optimizer(params, training: TrainingConfig, decay=None, weight_decay=None) -> Optimizer:
    """The optimizer `training.optimizer` names over `params` (arrays updated in place),
    with its hyper-parameters and `l2` as weight decay (`weight_decay` instead: (K, 1) per
    member of (K, P) params); `decay`: per array, where l2 applies."""
    name = training.optimizer
    cls, fixed = OPTIMIZERS[name]
    kwargs = {arg: tuple(getattr(training, k) for k in key) if isinstance(key, tuple) else getattr(training, key)
              for arg, key in HYPERPARAMETERS[name].items()}
    l2 = training.l2 if weight_decay is None else weight_decay
    return cls(params, weight_decay=l2, decay=decay, **fixed, **kwargs)


def network_optimizer(network, training: TrainingConfig) -> Optimizer:
    """An optimizer over a network's flat parameters: `step([network.flat_grads], lr)`."""
    return build_optimizer([network.flat_params], training, decay=[network.decay_mask])


def build_schedule(training: TrainingConfig) -> "LearningRate":
    """epoch (from 0) -> learning rate, under the config's `training.schedule` and `warmup`."""
    return LearningRate(training)


class LearningRate:
    """The learning rate of each epoch: `rate(epoch)` (also by calling it); `watched` is the
    logged value a plateau schedule reduces on (None for the others), given to `observe` each
    measured epoch; `state`/`load_state` carry the plateau's reductions through checkpoints."""

    def __init__(self, training: TrainingConfig, metric: str = "val_loss", maximize: bool = False):
        schedule = training.schedule
        function, own = SCHEDULES[schedule["name"]]
        own = {key: schedule.get(key, default) for key, default in own.items()}
        base = partial(function, training.learning_rate, **own)
        self.epoch_rate = warmed_up(lambda epoch, epochs: base(epoch, epochs), training.warmup or 0, training.iterations)
        self.plateau = Plateau(own["factor"], own["patience"], own["min_lr"], maximize) \
            if schedule["name"] == "plateau" else None
        self.watched = metric if self.plateau is not None else None

    def __call__(self, epoch: int) -> float:
        lr = self.epoch_rate(epoch)
        return self.plateau.rate(lr) if self.plateau is not None else lr

    def observe(self, log: dict) -> None:
        if self.plateau is not None and self.watched in log:
            self.plateau.observe(log[self.watched])

    def state(self) -> dict | None:
        return self.plateau.state() if self.plateau is not None else None

    def load_state(self, state: dict | None) -> None:
        if self.plateau is not None and state:
            self.plateau.load_state(state)
