"""Composite layers: a layer made of child layers, and the residual block built from one.

A composite holds its children in `body`, run in order, and keeps the layer contract itself, so
everything that walks a network (the flat parameter array, gradcheck, trace, checkpoints,
model.npz, the member axis) walks it as one layer. Its children are named recursively: child j's
arrays are the composite's `body.<j>.<name>`, so in a network the composite at index 3 has
`layers.3.body.0.W`, `layers.3.body.0.b`, ... (a composite inside a composite: `body.1.body.0.W`).
`params`, `grads`, `state` and `decay` are the children's under those names; setting an entry of
`state` or `decay` sets the child's.

Buffers: a composite's `Buffers` holds each child's arrays under the same names (`body.0.out`),
which the workspace allocates with the rest of the network's (in one pass, for the largest batch)
and hands to the child as a `Buffers` of its own (`buf.children["body.0"]`): a child never knows
it is inside another layer.
"""
from __future__ import annotations

import numpy as np

from .layers import LAYERS, Layer, register

GROUP = "body"  # the children's name in array and buffer names: body.<j>.<name>


class _Joined(dict):
    """The children's arrays of one kind (`state`, `decay`) under their nested names; setting an
    entry sets the child's own (the network re-casts state arrays to its dtype this way)."""

    def __init__(self, owner: "Composite", kind: str):
        super().__init__((f"{GROUP}.{j}.{name}", value)
                         for j, child in enumerate(owner.body) for name, value in getattr(child, kind).items())
        self.owner, self.kind = owner, kind

    def __setitem__(self, name, value):
        child, own = self.owner.child(name)
        getattr(child, self.kind)[own] = value
        super().__setitem__(name, value)


class Composite(Layer):
    """Child layers run in order, x -> body[0] -> body[1] -> ... -> out, as one layer: its
    derivative is the chain's, each child turning dL/d(its output) into dL/d(its input). The
    base of layers that hold others; the residual block adds its skip."""

    def __init__(self, body: list[Layer]):  # no super().__init__(): the arrays are the children's
        if not body:
            raise ValueError(f"a {self.type} layer needs at least one child layer")
        self.body = list(body)
        counts = {child.members for child in self.body if child.params}
        if len(counts) > 1:
            raise ValueError(f"the child layers have different member counts: {sorted(counts, key=str)}")
        self.members = counts.pop() if counts else None

    # --- the children's arrays under nested names --------------------------------------------
    def child(self, name: str) -> tuple[Layer, str]:
        """(the child, its own name) of a nested array name: `body.0.W` -> (body[0], `W`)."""
        group, j, own = name.split(".", 2)
        return self.body[int(j)], own

    def _joined(self, kind: str) -> dict:
        return {f"{GROUP}.{j}.{name}": value for j, child in enumerate(self.body)
                for name, value in getattr(child, kind).items()}

    @property
    def params(self):
        return self._joined("params")

    @property
    def grads(self):
        return self._joined("grads")

    @property
    def state(self):
        return _Joined(self, "state")

    @property
    def decay(self):
        return _Joined(self, "decay")

    @decay.setter
    def decay(self, decay: dict):
        for name, value in decay.items():
            child, own = self.child(name)
            child.decay[own] = value

    def attach(self, params, grads):
        for j, child in enumerate(self.body):
            prefix = f"{GROUP}.{j}."
            child.attach({name: params[prefix + name] for name in child.params},
                         {name: grads[prefix + name] for name in child.params})

    @property
    def rng(self):
        """The generator the random children draw from (in a network, the one they all share)."""
        return next((child.rng for child in self.body if child.rng is not None), None)

    @rng.setter
    def rng(self, rng):
        for child in self.body:
            if child.rng is not None:
                child.rng = rng

    @property
    def min_rows(self):
        return max(child.min_rows for child in self.body)

    @property
    def fan_in(self) -> int:
        return self.body[0].fan_in

    def leaves(self, path: tuple = ()):
        for j, child in enumerate(self.body):
            yield from child.leaves(path + (f"{GROUP}.{j}",))

    # --- saving ------------------------------------------------------------------------------
    def settings(self):
        return {GROUP: [{"type": child.type, **child.settings()} for child in self.body]}

    @classmethod
    def from_saved(cls, settings, arrays):
        specs = settings.get(GROUP)
        if not isinstance(specs, list) or not specs or not all(isinstance(s, dict) for s in specs):
            raise ValueError(f"`{GROUP}` is not a list of layers")
        body = []
        for j, spec in enumerate(specs):
            kind, prefix = spec.get("type"), f"{GROUP}.{j}."
            if kind not in LAYERS:
                raise ValueError(f"child layer {j} is of type {kind!r}, which this nnctl does not know")
            own = {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}
            try:
                body.append(LAYERS[kind].from_saved({k: v for k, v in spec.items() if k != "type"}, own))
            except KeyError as exc:  # a missing array, named as the file names it
                raise KeyError(prefix + str(exc.args[0])) from None
        return cls(body, **{k: v for k, v in settings.items() if k != GROUP})

    def describe(self):
        return f"{self.type} ({', '.join(child.describe() for child in self.body)})"

    # --- shapes and buffers ------------------------------------------------------------------
    def _widths(self, fan_in: int) -> list[int]:
        widths = [fan_in]
        for child in self.body:
            widths.append(child.units(widths[-1]))
        return widths

    def units(self, fan_in):
        return self._widths(fan_in)[-1]

    def _each(self, fan_in, specs) -> dict:
        """{body.<j>.<name>: ...} of what `specs(j, child, its fan_in)` gives each child."""
        return {f"{GROUP}.{j}.{name}": value for j, (child, width) in enumerate(zip(self.body, self._widths(fan_in)))
                for name, value in specs(j, child, width).items()}

    def buffers(self, fan_in):
        return self._each(fan_in, lambda j, child, width: child.buffers(width))

    def backward_buffers(self, fan_in, input_delta=True):
        # only the first child's dL/dx may be skipped: the others' feed the child before them
        return self._each(fan_in, lambda j, child, width: child.backward_buffers(width, input_delta or j > 0))

    def scratch(self, fan_in):
        return self._each(fan_in, lambda j, child, width: child.scratch(width))

    def shared_input_buffers(self, fan_in):
        # only the first child sees the input the members share
        per_row, fixed = self.body[0].shared_input_buffers(fan_in)
        return ({f"{GROUP}.0.{name}": n for name, n in per_row.items()},
                {f"{GROUP}.0.{name}": shape for name, shape in fixed.items()})

    def _kids(self, buf) -> list:
        """The children's Buffers in order, found once per Buffers."""
        kids = buf.__dict__.get("kids")
        if kids is None:
            kids = buf.kids = [buf.child(f"{GROUP}.{j}") for j in range(len(self.body))]
            kids[0].input_delta = buf.input_delta
        return kids

    # --- the chain ---------------------------------------------------------------------------
    def _body_forward(self, x, training, buf):
        a = x
        for child, b in zip(self.body, self._kids(buf)):
            a = child.forward(a, training, b)
        return a

    def _body_backward(self, delta, buf):
        for child, b in zip(reversed(self.body), reversed(self._kids(buf))):
            delta = child.backward(delta, b)
        return delta

    def forward(self, x, training=False, buf=None):
        return self._body_forward(x, training, self.begin(x, buf))

    def backward(self, delta, buf):
        return self._body_backward(delta, buf)

    def record(self, buf):
        """The children's records, under their nested names (`body.3.mask_zeros`)."""
        return {f"{GROUP}.{j}.{key}": value for j, (child, b) in enumerate(zip(self.body, self._kids(buf)))
                for key, value in child.record(b).items()}


@register
class Residual(Composite):
    """out = x + f(x), f the body (a hidden block: dense → [norm] → activation → [dropout]); the
    input and output widths must match. With members, f(x) is (K, rows, units), and a shared
    input (rows, units) is added to every member's.

    backward: dL/dx = delta + f'(x)ᵀ·delta: the delta as it arrives (kept in `dx` first, since
    the body may overwrite it) plus what the body gives back; for an input the members share, the
    sum over the members of both. As `torch`'s `x + block(x)`."""

    type = "residual"

    def units(self, fan_in):
        units = super().units(fan_in)
        if units != fan_in:
            raise ValueError(f"a residual block's body must give back its {fan_in} input columns, not {units}")
        return units

    def buffers(self, fan_in):
        return {"out": fan_in, **super().buffers(fan_in)}

    def backward_buffers(self, fan_in, input_delta=True):
        return {**({"dx": fan_in} if input_delta else {}), **super().backward_buffers(fan_in, input_delta)}

    def forward(self, x, training=False, buf=None):
        buf = self.begin(x, buf)
        return np.add(x, self._body_forward(x, training, buf), out=buf.out)

    def backward(self, delta, buf):
        if not buf.input_delta:
            self._body_backward(delta, buf)
            return None
        if delta.ndim > buf.x.ndim:  # an input the members share: the sum of their deltas
            skip = delta.sum(axis=0)
        else:
            skip = buf.dx
            np.copyto(skip, delta)
        skip += self._body_backward(delta, buf)
        return skip
