"""The PyTorch peer of `nnctl train` for the benchmark: the same CSV, MLP, SGD, batch size,
epochs, shuffling and validation schedule, written as an experienced PyTorch user would (tensors
sliced directly, no DataLoader overhead). Prints the seconds spent in the training loop.

    python benchmarks/torch_mlp.py DATA.csv --layers 128 64 --batch 64 --lr 0.01 --epochs 3
"""
import argparse
import time

import numpy as np
import pandas as pd
import torch


def logged(epoch: int, epochs: int) -> bool:
    every = max(1, epochs // 200)  # as nnctl's log_every: auto
    return epoch == 1 or epoch == epochs or epoch % every == 0


def arguments(*more):
    """The command line both PyTorch peers take: DATA.csv, the layers, batch, lr, epochs,
    threads, seed, and `more` (name, kwargs) pairs."""
    parser = argparse.ArgumentParser()
    parser.add_argument("csv")
    for name, kwargs in more:
        parser.add_argument(name, **kwargs)
    parser.add_argument("--layers", type=int, nargs="+", required=True)
    parser.add_argument("--batch", type=int, default=0)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    return args


def prepared(csv, seed: int):
    """(X_train, y_train, X_val, y_val, classes) as tensors: 20% held out by the seed, the
    features standardized on the training part, as nnctl's configs do."""
    df = pd.read_csv(csv)
    y = df.pop("label").to_numpy()
    X = df.to_numpy(dtype=np.float32)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(X))
    n_val = round(0.2 * len(X))
    val, train = order[:n_val], order[n_val:]
    mean, std = X[train].mean(axis=0), X[train].std(axis=0)
    std[std == 0] = 1
    X = (X - mean) / std
    Xt, yt = torch.from_numpy(X[train]), torch.from_numpy(y[train]).long()
    Xv, yv = torch.from_numpy(X[val]), torch.from_numpy(y[val]).long()
    return Xt, yt, Xv, yv, int(y.max()) + 1


def main():
    args = arguments()
    Xt, yt, Xv, yv, classes = prepared(args.csv, args.seed)

    sizes = [Xt.shape[1]] + args.layers + [classes]
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    batch = args.batch or len(Xt)

    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        measure = logged(epoch, args.epochs)
        if batch < len(Xt):
            perm = torch.randperm(len(Xt))
            Xe, ye = Xt[perm], yt[perm]
        else:
            Xe, ye = Xt, yt
        total = 0.0
        for s in range(0, len(Xe), batch):
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xe[s:s + batch]), ye[s:s + batch])
            loss.backward()
            optimizer.step()
            if measure:
                total += loss.item() * len(Xe[s:s + batch])
        if measure:
            with torch.no_grad():
                out = model(Xv)
                val_loss = loss_fn(out, yv).item()
                val_acc = (out.argmax(1) == yv).float().mean().item()
            _ = (total / len(Xe), val_loss, val_acc)
    print(f"{time.perf_counter() - start:.6f}")


if __name__ == "__main__":
    main()
