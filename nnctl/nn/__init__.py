"""The math of a multilayer perceptron, and nothing else: a student reads only this folder.

- `activations.py`  hidden-layer functions, each derivative beside its function
- `losses.py`       losses with the output activation each belongs to, and the output delta
- `initializers.py` weight samplers (He, Xavier, ...)
- `layers.py`       layers as objects (`Dense`, `Activation`, `Dropout`): forward, backward, named arrays
- `normalization.py` `BatchNorm`, `LayerNorm` (PyTorch's definitions)
- `embedding.py`    `Embedding`: learned tables for categorical columns
- `numeric.py`      `Periodic`, `PiecewiseLinear`: embeddings of numeric inputs (PLR, PLE)
- `clipping.py`     gradient clipping by the global norm
- `network.py`      `Network`: the layers in order plus the loss's output head; forward, backward
- `workspace.py`    `Workspace`/`Buffers`: the arrays a pass writes, owned by the caller, not the layers
- `optimizers.py`   update rules (PyTorch's equations, plain arguments), each owning its state
- `schedules.py`    learning rate per epoch
- `gradcheck.py`    backprop against central finite differences
- `metrics.py`      scores of predictions (scikit-learn's definitions)

Nothing here imports the rest of nnctl: no config, files or command line.
"""
