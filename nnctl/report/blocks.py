"""The model's blocks as the report shows them, read from the run's model.npz: the widths with
what follows each dense layer (`4 → 16 [batch norm, relu, dropout 0.2] → 3 [softmax]`), and the
kind of each trainable layer, which is what diagnostics.csv's `layer` column counts."""
from __future__ import annotations

from dataclasses import dataclass

# the rule diagnostics.csv's dead_fraction follows, so the labels match its rows
from ..nn.diagnostics import _activation_fed
from ..nn.layers import Dense


@dataclass
class Trainable:
    kind: str  # "dense", "batch norm", "layer norm", ...
    relu: str | None  # the ReLU-family activation it feeds, whose dead units its diagnostics row counts


def blocks(layers: list, n_inputs: int, output: str) -> str:
    """Each dense layer's width with the layers after it, up to the next dense, in brackets;
    the output head closes the last bracket."""
    widths, extras = [str(n_inputs)], [[]]
    for layer in layers:
        inner = [leaf for _, leaf in layer.leaves()]
        for leaf in inner:
            if isinstance(leaf, Dense):
                widths.append(str(leaf.settings()["units"]))
                extras.append([])
            else:
                extras[-1].append(leaf.describe())
        if inner != [layer]:  # a composite (a residual block): its kind closes its block
            extras[-1].append(layer.type)
    extras[-1].append(output)
    # extras[0] holds what would sit before the first dense layer (none today): shown after the inputs too
    return " → ".join(w + (f" [{', '.join(e)}]" if e else "") for w, e in zip(widths, extras))


def trainable(layers: list) -> list[Trainable]:
    """One entry per layer with params, in the order diagnostics.csv numbers them (a
    composite's children in its place)."""
    found = []
    layers = [leaf for layer in layers for _, leaf in layer.leaves()]
    for i, layer in enumerate(layers):
        if layer.params:
            relu = _activation_fed(layers[i + 1:])
            found.append(Trainable(layer.type.replace("_", " "), relu.name if relu is not None else None))
    return found
