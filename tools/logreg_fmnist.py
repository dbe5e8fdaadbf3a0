#!/usr/bin/env python3
"""Baseline for docs/RESULTS.md: multinomial logistic regression on raw Fashion-MNIST pixels
(official train/test split, pixels / 255, no augmentation), full-batch L-BFGS with a small L2
penalty, in PyTorch (Debian's python3-torch). Prints the test accuracy."""
import gzip
import sys
import time

import numpy as np
import torch

D = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"


def idx(path, images):
    with gzip.open(path, "rb") as f:
        b = f.read()
    if images:
        n, h, w = np.frombuffer(b, ">i4", 3, 4)
        return np.frombuffer(b, np.uint8, n * h * w, 16).reshape(n, h * w)
    n = np.frombuffer(b, ">i4", 1, 4)[0]
    return np.frombuffer(b, np.uint8, n, 8)


xtr = torch.tensor(idx(f"{D}/train-images-idx3-ubyte.gz", True), dtype=torch.float64) / 255
ytr = torch.tensor(idx(f"{D}/train-labels-idx1-ubyte.gz", False), dtype=torch.long)
xte = torch.tensor(idx(f"{D}/t10k-images-idx3-ubyte.gz", True), dtype=torch.float64) / 255
yte = torch.tensor(idx(f"{D}/t10k-labels-idx1-ubyte.gz", False), dtype=torch.long)
torch.manual_seed(0)
W = torch.zeros(784, 10, dtype=torch.float64, requires_grad=True)
b = torch.zeros(10, dtype=torch.float64, requires_grad=True)
l2 = float(sys.argv[2]) if len(sys.argv) > 2 else 1e-4
opt = torch.optim.LBFGS([W, b], lr=1, max_iter=500, history_size=20, line_search_fn="strong_wolfe")


def closure():
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(xtr @ W + b, ytr) + l2 * (W * W).sum()
    loss.backward()
    return loss


t0 = time.time()
opt.step(closure)
with torch.no_grad():
    acc_tr = ((xtr @ W + b).argmax(1) == ytr).double().mean().item() * 100
    acc = ((xte @ W + b).argmax(1) == yte).double().mean().item() * 100
print(f"logistic regression on raw pixels (L2 {l2:g}, L-BFGS 500 iterations, {time.time() - t0:.0f} s): "
      f"train {acc_tr:.2f}%, test {acc:.2f}%")
