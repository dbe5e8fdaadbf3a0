#!/usr/bin/env python3
"""Summarise a `mae pretrain` run as a markdown loss curve: one row per epoch (mean train loss and
lr at the end, from output_dir/log.txt) and the step losses averaged over tenths of each epoch
(from steps.jsonl).
Usage: python3 tools/loss_curve.py [output_dir [log_dir]]"""
import json
import os
import sys


def main(out_dir, log_dir):
    steps = {}
    with open(os.path.join(log_dir, "steps.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            steps.setdefault(r["epoch"], []).append(r["loss"])
    with open(os.path.join(out_dir, "log.txt")) as f:
        epochs = [json.loads(line) for line in f]
    print("| epoch | mean train loss | lr at end | step losses by tenth of the epoch |")
    print("|---|---|---|---|")
    for r in epochs:
        s = steps.get(r["epoch"], [])
        k = max(1, len(s) // 10)
        tenths = [sum(s[i:i + k]) / len(s[i:i + k]) for i in range(0, len(s), k)][:10]
        print("| %d | %.4f | %.3e | %s |" % (r["epoch"] + 1, r["train_loss"], r["train_lr"],
                                             " ".join("%.3f" % x for x in tenths)))


if __name__ == "__main__":
    out = sys.argv[1] if len(sys.argv) > 1 else "output_dir"
    main(out, sys.argv[2] if len(sys.argv) > 2 else out)
