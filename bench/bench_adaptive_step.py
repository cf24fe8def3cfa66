"""Seconds per ARN training step, plain vs --adaptive settings, measured in one process, interleaved (so the
machine's load hits every setting alike): MNIST shape, `large` width, guidance 5, K = 2, batch 64, a LeNet
target with random weights (the cost does not depend on them).

    python bench/bench_adaptive_step.py [--steps 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SETTINGS = {"plain": {}, "share.5-pgd5": {"adaptive_share": 0.5}, "share1-pgd5": {"adaptive_share": 1.0},
            "share.5-pgd10": {"adaptive_share": 0.5, "adaptive_steps": 10}}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import keras
    import numpy as np
    import tensorflow as tf

    from arnkit.defenses.arn import ARN, ARNConfig
    from arnkit.models import build

    keras.utils.set_random_seed(0)
    target = build("lenet", (28, 28, 1), 10)
    rng = np.random.default_rng(0)
    batch = {"adversarial": tf.constant(rng.uniform(size=(64, 2, 28, 28, 1)), tf.float32),
             "natural": tf.constant(rng.uniform(size=(64, 28, 28, 1)), tf.float32)}
    models = {}
    for name, changes in SETTINGS.items():
        config = ARNConfig.for_dataset("mnist", preset="large", guide_weight=5.0, learning_rate=1e-3, **changes)
        arn = ARN(image_shape=(28, 28, 1), num_attacks=2, config=config, guide=target)
        arn.compile()
        step = tf.function(arn.train_step)
        for _ in range(2):
            step(batch)  # trace and warm up
        models[name] = step
    times = {name: [] for name in SETTINGS}
    for _ in range(args.rounds):
        for name, step in models.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                logs = step(batch)
            float(logs["e_loss"])
            times[name].append((time.perf_counter() - start) / args.steps)
    plain = min(times["plain"])
    print(json.dumps({name: {"s_per_step": round(min(t), 4), "vs_plain": round(min(t) / plain, 2)}
                      for name, t in times.items()}, indent=1))


if __name__ == "__main__":
    main()
