"""The PyTorch peer of `model.ensemble: K` for benchmarks/ensemble.py: K MLPs of one shape
stacked with `torch.func.stack_module_state` and run as one with `vmap`, as PyTorch's own
model-ensembling tutorial does, with each member's own initial weights and its own shuffle
(batches (K, batch, features)), SGD, and the ensemble's validation loss and accuracy on the
logged epochs. Prints the seconds spent in the training loop.

    python benchmarks/torch_ensemble.py DATA.csv --members 8 --layers 128 64 --batch 64 --lr 0.01 --epochs 3
"""
import copy
import time

import torch
from torch.func import functional_call, stack_module_state

from torch_mlp import arguments, logged, prepared


def main():
    args = arguments(("--members", {"type": int, "required": True}))
    Xt, yt, Xv, yv, classes = prepared(args.csv, args.seed)
    K, n = args.members, len(Xt)

    sizes = [Xt.shape[1]] + args.layers + [classes]

    def mlp():
        layers = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
        return torch.nn.Sequential(*layers[:-1])

    params, buffers = stack_module_state([mlp() for _ in range(K)])
    base = copy.deepcopy(mlp()).to("meta")

    def member(p, b, x):
        return functional_call(base, (p, b), (x,))

    shared = torch.vmap(member, in_dims=(0, 0, None))  # one input for every member
    own = torch.vmap(member, in_dims=(0, 0, 0))  # each member its own batch
    optimizer = torch.optim.SGD(list(params.values()), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss(reduction="mean")
    batch = args.batch or n

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        measure = logged(epoch, args.epochs)
        if batch < n:
            perm = torch.stack([torch.randperm(n) for _ in range(K)])  # (K, n): each member's order
            Xe, ye = Xt[perm], yt[perm]
        total = 0.0
        for s in range(0, n, batch):
            optimizer.zero_grad(set_to_none=True)
            if batch < n:
                out = own(params, buffers, Xe[:, s:s + batch])  # (K, b, classes)
                target = ye[:, s:s + batch]
            else:
                out = shared(params, buffers, Xt)
                target = yt.expand(K, -1)
            # the sum of the members' mean losses: each member's gradient is its own loss's
            loss = loss_fn(out.reshape(-1, classes), target.reshape(-1)) * K
            loss.backward()
            optimizer.step()
            if measure:
                total += loss.item() * out.shape[1] / K
        if measure:
            with torch.no_grad():
                p = torch.softmax(shared(params, buffers, Xv), dim=-1).mean(0)
                val_loss = torch.nn.functional.nll_loss(torch.log(p), yv).item()
                val_acc = (p.argmax(1) == yv).float().mean().item()
            _ = (total / n, val_loss, val_acc)
    print(f"{time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    main()
