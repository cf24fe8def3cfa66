"""Benchmark the spatially-constrained attacks (STA_N, STA_T, FWA_N) on the paper's LeNet and MNIST.

    TF_CPP_MIN_LOG_LEVEL=2 .venv/bin/python bench/bench_spatial_attacks.py --images 1000

Trains the paper LeNet (conv 32-64, fc 200) for 3 epochs (Adam 1e-3, batch 128) unless cached at
/tmp/arnkit_bench_lenet.weights.h5, then attacks the first `--images` MNIST test images and prints the
error / target-hit rate, throughput and the mean flow loss / transport cost of each attack.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from bench_common import WEIGHTS, paper_lenet  # noqa: F401  (run as python bench/...)


def run_attack(label: str, attack, model, x, y, extra_key: str) -> dict:
    start = time.perf_counter()
    result = attack(model, x, y, seed=0)
    seconds = time.perf_counter() - start
    extra = np.asarray(result.extras[extra_key])
    ok = result.success
    row = {
        "attack": label,
        "images": len(x),
        "success_rate": round(float(ok.mean()), 4),
        "img_per_s": round(len(x) / seconds, 2),
        "seconds": round(seconds, 1),
        f"mean_{extra_key}_of_successes": round(float(extra[ok].mean()), 4) if ok.any() else None,
        "mean_l2_of_successes": round(float(np.sqrt(((result.x_adv - x) ** 2).reshape(len(x), -1).sum(1))[ok].mean()), 4)
        if ok.any() else None,
        "params": {k: v for k, v in attack.params().items()},
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--attacks", default="sta_n,sta_t,fwa_n")
    args = parser.parse_args()

    from arnkit import attacks, data

    model = paper_lenet()
    x, y, _ = data.load_arrays("mnist", "test", limit=args.images)
    clean = np.argmax(model.predict(x, batch_size=500, verbose=0), -1)
    print(json.dumps({"clean_accuracy": round(float((clean == y).mean()), 4), "images": len(x)}), flush=True)
    for key in args.attacks.split(","):
        attack = attacks.make(key, dataset="mnist")
        extra = "wasserstein" if key.startswith("fwa") else "flow"
        run_attack(key, attack, model, x, y, extra)


if __name__ == "__main__":
    main()
