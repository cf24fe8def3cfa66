"""Sanity check of the pixel attacks at ARN's MNIST settings against an undefended paper LeNet (>= 99% clean).

On the first `--images` MNIST test images: success and error rates of PGD_N, PGD_T, CW_N and DDN_N (registry
names, `dataset="mnist"` defaults), mean L2 / L-inf of the adversarial examples, and whether doubling the PGD
iterations (40 -> 80, same step) changes the success rate by less than 0.5 points (it should have converged).

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/sanity_pixel_attacks.py          # ~10 min on 2 cores

Error rate = share of all images whose adversarial example is misclassified (the paper's metric, clean errors
included); success = misclassified (untargeted) or classified as the seeded random target (targeted).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402
from bench_pixel_attacks import accuracy, trained_lenet  # noqa: E402

from arnkit import data  # noqa: E402
from arnkit.attacks import make  # noqa: E402
from arnkit.attacks.base import norms  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=5)  # 3 epochs gave 98.88%, 5 gave 99.01%
    args = parser.parse_args()

    model = trained_lenet(args.epochs)
    x_all, y_all, _ = data.load_arrays("mnist", "test")
    clean_acc = accuracy(model, x_all, y_all)
    x, y = x_all[: args.images], y_all[: args.images]
    print(f"# Paper LeNet, {args.epochs} epochs of Adam 1e-3 batch 128: clean test accuracy {clean_acc:.4f} "
          f"(10,000 images); attacks on the first {len(x)} test images\n")

    runs = [
        ("PGD_N (40 it.)", "pgd_n", {}),
        ("PGD_N (80 it.)", "pgd_n", {"steps": 80}),
        ("PGD_T (40 it.)", "pgd_t", {}),
        ("PGD_T (80 it.)", "pgd_t", {"steps": 80}),
        ("CW_N", "cw_n", {}),
        ("DDN_N", "ddn_n", {}),
    ]
    rows, success = [], {}
    for label, key, overrides in runs:
        attack = make(key, dataset="mnist", **overrides)
        start = time.perf_counter()
        result = attack(model, x, y, seed=0)
        seconds = time.perf_counter() - start
        dist = norms(x, result.x_adv)
        error = float(np.mean(result.pred != y))
        success[label] = result.success_rate
        rows.append((label, f"{100 * result.success_rate:.2f}", f"{100 * error:.2f}",
                     f"{dist['l2'][result.success].mean():.3f}", f"{dist['linf'].max():.3f}", f"{seconds:.0f}",
                     repr(attack)))

    print("| attack | success % | error rate % | mean L2 (successes) | max Linf | seconds | parameters |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print()
    for name in ("PGD_N", "PGD_T"):
        delta = 100 * (success[f"{name} (80 it.)"] - success[f"{name} (40 it.)"])
        verdict = "converged (< 0.5 points)" if abs(delta) < 0.5 else "NOT converged (>= 0.5 points)"
        print(f"- {name}: doubling the iterations changes success by {delta:+.2f} points: {verdict}")


if __name__ == "__main__":
    main()
