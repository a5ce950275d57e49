"""The config's update rule: its optimizer and learning-rate schedule, built from the resolved
`training` section with plain arguments (`nn/` itself reads no config)."""
from __future__ import annotations

from functools import partial

from ..config.typed import TrainingConfig
from ..nn.optimizers import OPTIMIZERS, Optimizer
from ..nn.schedules import SCHEDULES

# optimizer name -> {argument: the `training` key it comes from}
HYPERPARAMETERS = {
    "sgd": {},
    "momentum": {"momentum": "momentum"},
    "nesterov": {"momentum": "momentum"},
    "adam": {"betas": ("beta1", "beta2"), "eps": "eps"},
    "adamw": {"betas": ("beta1", "beta2"), "eps": "eps"},
    "rmsprop": {"alpha": "alpha", "eps": "eps"},
}


def build_optimizer(params, training: TrainingConfig, decay=None) -> Optimizer:
    """The optimizer `training.optimizer` names over `params` (arrays updated in place),
    with its hyper-parameters and `l2` as weight decay; `decay`: per array, where l2 applies."""
    name = training.optimizer
    cls, fixed = OPTIMIZERS[name]
    kwargs = {arg: tuple(getattr(training, k) for k in key) if isinstance(key, tuple) else getattr(training, key)
              for arg, key in HYPERPARAMETERS[name].items()}
    return cls(params, weight_decay=training.l2, decay=decay, **fixed, **kwargs)


def network_optimizer(network, training: TrainingConfig) -> Optimizer:
    """An optimizer over a network's flat parameters: `step([network.flat_grads], lr)`."""
    return build_optimizer([network.flat_params], training, decay=[network.decay_mask])


def build_schedule(training: TrainingConfig):
    """epoch (from 0) -> learning rate, under the config's `training.schedule`."""
    schedule = training.schedule
    function, own = SCHEDULES[schedule["name"]]
    return partial(function, training.learning_rate, epochs=training.iterations,
                   **{key: schedule[key] for key in own})
