#!/usr/bin/env python3
"""Summarise a `mae pretrain` log.jsonl as a markdown loss curve: one row per epoch (mean train
loss, lr at the end) and the step losses averaged over tenths of each epoch.
Usage: python3 tools/loss_curve.py output_dir/log.jsonl"""
import json
import sys


def main(path):
    steps, epochs = {}, []
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["type"] == "step":
                steps.setdefault(r["epoch"], []).append(r["loss"])
            elif r["type"] == "epoch":
                epochs.append(r)
    print("| epoch | mean train loss | lr at end | step losses by tenth of the epoch |")
    print("|---|---|---|---|")
    for r in epochs:
        s = steps.get(r["epoch"], [])
        k = max(1, len(s) // 10)
        tenths = [sum(s[i:i + k]) / len(s[i:i + k]) for i in range(0, len(s), k)][:10]
        print("| %d | %.4f | %.3e | %s |" % (r["epoch"] + 1, r["train_loss"], r["train_lr"],
                                             " ".join("%.3f" % x for x in tenths)))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "output_dir/log.jsonl")
